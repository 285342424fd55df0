// Group preference lists for TLS 1.3 and the name of the negotiated group.
#include "qkd/common/openssl_error.hpp"
#include "qkd/crypto/pq_tls.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/opensslv.h>
#include <spdlog/spdlog.h>

#include <array>
#include <mutex>
#include <string_view>

#include "provider.hpp"

namespace qkd::pqtls {
namespace {

struct KnownGroup {
    std::string_view name;     // our configuration name
    std::string_view openssl;  // name given to SSL_CTX_set1_groups_list
    int nid;                   // NID returned by SSL_get_negotiated_group, 0 for provider groups
    unsigned group_id;         // IANA TLS Supported Groups codepoint
    bool hybrid;
};

constexpr std::array<KnownGroup, 6> kGroups{{
    {"X25519MLKEM768", "X25519MLKEM768", 0, kHybridGroupId, true},
    {"X25519", "X25519", NID_X25519, 0x001D, false},
    {"X448", "X448", NID_X448, 0x001E, false},
    {"P-256", "P-256", NID_X9_62_prime256v1, 0x0017, false},
    {"P-384", "P-384", NID_secp384r1, 0x0018, false},
    {"P-521", "P-521", NID_secp521r1, 0x0019, false},
}};

const KnownGroup* find_group(std::string_view name) {
    for (const auto& g : kGroups)
        if (g.name == name) return &g;
    return nullptr;
}

using qkd::openssl_errors;

// Does this process's OpenSSL accept the hybrid group name in a group list?
bool hybrid_group_usable() {
    SSL_CTX* probe = SSL_CTX_new(TLS_method());
    if (probe == nullptr) return false;
    const bool ok = SSL_CTX_set1_groups_list(probe, kHybridGroup) == 1;
    SSL_CTX_free(probe);
    ERR_clear_error();
    return ok;
}

}  // namespace

bool is_hybrid_group(const std::string& name) {
    const KnownGroup* g = find_group(name);
    return g != nullptr && g->hybrid;
}

std::string known_group_names() {
    std::string out;
    for (const auto& g : kGroups) {
        if (!out.empty()) out += ", ";
        out += g.name;
    }
    return out;
}

qkd::Result<void, std::string> ensure_hybrid_group() {
    static std::mutex mu;
    static bool done = false;
    static std::string error;
    std::lock_guard lock(mu);
    if (done) {
        if (error.empty()) return {};
        return qkd::Err{error};
    }
    done = true;
    // OpenSSL >= 3.5 has X25519MLKEM768 built in (default provider); use it.
    if (OpenSSL_version_num() >= 0x30500000L && hybrid_group_usable()) return {};
    auto loaded = load_hybrid_provider();
    if (!loaded) {
        error = "cannot provide TLS group X25519MLKEM768 on OpenSSL " +
                std::string(OpenSSL_version(OPENSSL_VERSION_STRING)) + ": " + loaded.error();
        return qkd::Err{error};
    }
    if (!hybrid_group_usable()) {
        error = "provider loaded but OpenSSL does not accept group X25519MLKEM768: " + openssl_errors();
        return qkd::Err{error};
    }
    return {};
}

qkd::Result<void, std::string> configure_groups(SSL_CTX* ctx, const GroupConfig& cfg) {
    if (ctx == nullptr) return qkd::Err{std::string("configure_groups: SSL_CTX is null")};
    if (cfg.groups.empty())
        return qkd::Err{"tls_groups is empty; expected a list of: " + known_group_names()};

    std::vector<const KnownGroup*> chosen;
    for (const auto& name : cfg.groups) {
        const KnownGroup* g = find_group(name);
        if (g == nullptr)
            return qkd::Err{"unknown TLS group '" + name + "' in tls_groups; expected one of: " +
                            known_group_names()};
        bool dup = false;
        for (const auto* c : chosen) dup = dup || c == g;
        if (dup) return qkd::Err{"TLS group '" + name + "' appears twice in tls_groups"};
        if (cfg.pq_only && !g->hybrid) continue;  // pq_only: classical groups are never offered
        chosen.push_back(g);
    }
    if (chosen.empty())
        return qkd::Err{std::string("pq_only is set but tls_groups has no hybrid group; expected "
                                    "X25519MLKEM768 in the list")};

    bool wants_hybrid = false;
    for (const auto* g : chosen) wants_hybrid = wants_hybrid || g->hybrid;
    if (wants_hybrid) {
        auto hybrid = ensure_hybrid_group();
        // libssl reads provider groups in SSL_CTX_new: a context made before the provider was
        // loaded does not know the group even though the process now does.
        if (hybrid && SSL_CTX_set1_groups_list(ctx, kHybridGroup) != 1) {
            ERR_clear_error();
            hybrid = qkd::Err{std::string("this SSL_CTX was created before the X25519MLKEM768 provider was "
                                          "loaded; call qkd::pqtls::ensure_hybrid_group() before SSL_CTX_new")};
        }
        if (!hybrid) {
            if (cfg.pq_only) return qkd::Err{"pq_only is set but " + hybrid.error()};
            spdlog::warn("TLS group X25519MLKEM768 unavailable, falling back to classical groups: {}",
                         hybrid.error());
            std::erase_if(chosen, [](const KnownGroup* g) { return g->hybrid; });
            if (chosen.empty())
                return qkd::Err{"tls_groups has only X25519MLKEM768, which is unavailable: " +
                                hybrid.error()};
        }
    }

    std::string list;
    for (const auto* g : chosen) {
        if (!list.empty()) list += ':';
        list += g->openssl;
    }
    if (SSL_CTX_set1_groups_list(ctx, list.c_str()) != 1)
        return qkd::Err{"OpenSSL refused TLS group list '" + list + "': " + openssl_errors()};
    // Hybrid groups exist only in TLS 1.3; a pq_only endpoint must not fall back to TLS 1.2.
    if (cfg.pq_only && SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1)
        return qkd::Err{"cannot require TLS 1.3 for pq_only: " + openssl_errors()};
    return {};
}

namespace {
// Load the group at program start, so that SSL_CTX objects created before the first
// configure_groups() call already know it. Failures are kept and reported by configure_groups.
[[maybe_unused]] const bool kHybridLoadedAtStart = ensure_hybrid_group().ok();
}  // namespace

std::string negotiated_group(SSL* ssl) {
    if (ssl == nullptr) return "";
    const int nid = SSL_get_negotiated_group(ssl);
    if (nid == 0 || nid == NID_undef) return "";
    // OpenSSL 3.0 reports groups that have no NID (provider groups) as TLSEXT_nid_unknown | id.
    if ((nid & TLSEXT_nid_unknown) != 0) {
        const unsigned id = static_cast<unsigned>(nid) & 0xFFFFu;
        for (const auto& g : kGroups)
            if (g.group_id == id) return std::string(g.name);
        return "";
    }
    for (const auto& g : kGroups)
        if (g.nid != 0 && g.nid == nid) return std::string(g.name);
    const char* sn = OBJ_nid2sn(nid);
    return sn != nullptr ? std::string(sn) : "";
}

}  // namespace qkd::pqtls
