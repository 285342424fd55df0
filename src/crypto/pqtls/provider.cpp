// In-process OpenSSL 3 provider "qkdgate-pq" supplying the TLS 1.3 group X25519MLKEM768 on
// OpenSSL < 3.5: a key manager and a KEM named "X25519MLKEM768" over hybrid_kem.cpp, and the
// "TLS-GROUP" capability that makes libssl offer and accept group 0x11EC.
//
// How libssl 3.0 drives a KEM group (ssl/s3_lib.c, ssl/statem/extensions_{clnt,srvr}.c):
//   client: EVP_PKEY_keygen (group name set) -> EVP_PKEY_get1_encoded_public_key -> key_share;
//           later EVP_PKEY_decapsulate(server share) -> shared secret.
//   server: EVP_PKEY_paramgen -> EVP_PKEY_set1_encoded_public_key(client share) ->
//           EVP_PKEY_encapsulate -> (server share, shared secret).
#include "qkd/common/openssl_error.hpp"
#include "provider.hpp"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/prov_ssl.h>
#include <openssl/provider.h>

#include <cstring>
#include <new>
#include <optional>

#include "hybrid_kem.hpp"
#include "qkd/crypto/pq_tls.hpp"

namespace qkd::pqtls {
namespace {

constexpr const char* kProviderName = "qkdgate-pq";
constexpr const char* kAlgName = "X25519MLKEM768";

// ---- key object ------------------------------------------------------------------------------

struct HybridKey {
    std::optional<hybrid::ClientKey> priv;  // our own key pair (client side)
    std::vector<std::uint8_t> peer_share;   // a peer's public share (server side)
    bool has_public() const { return priv.has_value() || !peer_share.empty(); }
    const std::vector<std::uint8_t>& public_share() const { return priv ? priv->share : peer_share; }
};

void* key_new(void*) { return new (std::nothrow) HybridKey(); }
void key_free(void* k) { delete static_cast<HybridKey*>(k); }

int key_has(const void* kd, int selection) {
    const auto* k = static_cast<const HybridKey*>(kd);
    if (k == nullptr) return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && !k->priv) return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0 && !k->has_public()) return 0;
    return 1;
}

int key_get_params(void* kd, OSSL_PARAM params[]) {
    auto* k = static_cast<HybridKey*>(kd);
    OSSL_PARAM* p;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) != nullptr && !OSSL_PARAM_set_int(p, 192 * 2))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) != nullptr && !OSSL_PARAM_set_int(p, 192))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE)) != nullptr &&
        !OSSL_PARAM_set_int(p, static_cast<int>(hybrid::kServerShareSize)))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY)) != nullptr) {
        if (!k->has_public()) return 0;
        const auto& share = k->public_share();
        if (!OSSL_PARAM_set_octet_string(p, share.data(), share.size())) return 0;
    }
    return 1;
}

const OSSL_PARAM* key_gettable_params(void*) {
    static const OSSL_PARAM table[] = {
        OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
        OSSL_PARAM_END,
    };
    return table;
}

// The server receives the client's key share here; a malformed share fails the handshake with
// illegal_parameter (libssl maps a failure to SSL_R_BAD_ECPOINT).
int key_set_params(void* kd, const OSSL_PARAM params[]) {
    auto* k = static_cast<HybridKey*>(kd);
    const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY);
    if (p == nullptr) return 1;
    const void* data = nullptr;
    std::size_t len = 0;
    if (!OSSL_PARAM_get_octet_string_ptr(p, &data, &len)) return 0;
    std::span<const std::uint8_t> share(static_cast<const std::uint8_t*>(data), len);
    if (!hybrid::client_share_valid(share)) return 0;  // length 1216 and ML-KEM modulus check
    k->priv.reset();
    k->peer_share.assign(share.begin(), share.end());
    return 1;
}

const OSSL_PARAM* key_settable_params(void*) {
    static const OSSL_PARAM table[] = {
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
        OSSL_PARAM_END,
    };
    return table;
}

struct GenCtx {
    int selection;
};

void* gen_init(void*, int selection, const OSSL_PARAM[]) { return new (std::nothrow) GenCtx{selection}; }
void gen_cleanup(void* g) { delete static_cast<GenCtx*>(g); }

int gen_set_params(void*, const OSSL_PARAM params[]) {
    const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME);
    if (p == nullptr) return 1;
    const char* name = nullptr;
    if (!OSSL_PARAM_get_utf8_string_ptr(p, &name)) return 0;
    return OPENSSL_strcasecmp(name, kAlgName) == 0 ? 1 : 0;
}

const OSSL_PARAM* gen_settable_params(void*, void*) {
    static const OSSL_PARAM table[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
        OSSL_PARAM_END,
    };
    return table;
}

// paramgen (server, before the client share is set) yields an empty key; keygen a key pair.
void* gen(void* g, OSSL_CALLBACK*, void*) {
    auto* ctx = static_cast<GenCtx*>(g);
    auto* key = new (std::nothrow) HybridKey();
    if (key == nullptr) return nullptr;
    if ((ctx->selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0) {
        auto k = hybrid::generate();
        if (!k) {
            delete key;
            return nullptr;
        }
        key->priv.emplace(std::move(*k));
    }
    return key;
}

const char* key_query_operation_name(int operation_id) {
    return operation_id == OSSL_OP_KEM ? kAlgName : nullptr;
}

#define QKD_FN(type, fn) reinterpret_cast<void (*)(void)>(static_cast<type*>(fn))

const OSSL_DISPATCH kKeymgmt[] = {
    {OSSL_FUNC_KEYMGMT_NEW, QKD_FN(OSSL_FUNC_keymgmt_new_fn, key_new)},
    {OSSL_FUNC_KEYMGMT_FREE, QKD_FN(OSSL_FUNC_keymgmt_free_fn, key_free)},
    {OSSL_FUNC_KEYMGMT_HAS, QKD_FN(OSSL_FUNC_keymgmt_has_fn, key_has)},
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, QKD_FN(OSSL_FUNC_keymgmt_get_params_fn, key_get_params)},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, QKD_FN(OSSL_FUNC_keymgmt_gettable_params_fn, key_gettable_params)},
    {OSSL_FUNC_KEYMGMT_SET_PARAMS, QKD_FN(OSSL_FUNC_keymgmt_set_params_fn, key_set_params)},
    {OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, QKD_FN(OSSL_FUNC_keymgmt_settable_params_fn, key_settable_params)},
    {OSSL_FUNC_KEYMGMT_GEN_INIT, QKD_FN(OSSL_FUNC_keymgmt_gen_init_fn, gen_init)},
    {OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, QKD_FN(OSSL_FUNC_keymgmt_gen_set_params_fn, gen_set_params)},
    {OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS,
     QKD_FN(OSSL_FUNC_keymgmt_gen_settable_params_fn, gen_settable_params)},
    {OSSL_FUNC_KEYMGMT_GEN, QKD_FN(OSSL_FUNC_keymgmt_gen_fn, gen)},
    {OSSL_FUNC_KEYMGMT_GEN_CLEANUP, QKD_FN(OSSL_FUNC_keymgmt_gen_cleanup_fn, gen_cleanup)},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,
     QKD_FN(OSSL_FUNC_keymgmt_query_operation_name_fn, key_query_operation_name)},
    {0, nullptr},
};

// ---- KEM -------------------------------------------------------------------------------------

struct KemCtx {
    HybridKey* key = nullptr;
};

void* kem_newctx(void*) { return new (std::nothrow) KemCtx(); }
void kem_freectx(void* c) { delete static_cast<KemCtx*>(c); }
void* kem_dupctx(void* c) { return new (std::nothrow) KemCtx(*static_cast<KemCtx*>(c)); }

int kem_encapsulate_init(void* c, void* kd, const OSSL_PARAM[]) {
    auto* key = static_cast<HybridKey*>(kd);
    if (key == nullptr || key->peer_share.empty()) return 0;
    static_cast<KemCtx*>(c)->key = key;
    return 1;
}

int kem_decapsulate_init(void* c, void* kd, const OSSL_PARAM[]) {
    auto* key = static_cast<HybridKey*>(kd);
    if (key == nullptr || !key->priv) return 0;
    static_cast<KemCtx*>(c)->key = key;
    return 1;
}

// Server: out = server share (1120), secret = ML-KEM K || X25519 secret (64).
int kem_encapsulate(void* c, unsigned char* out, std::size_t* outlen, unsigned char* secret,
                    std::size_t* secretlen) {
    auto* ctx = static_cast<KemCtx*>(c);
    if (ctx->key == nullptr || outlen == nullptr || secretlen == nullptr) return 0;
    if (out == nullptr) {  // size query
        *outlen = hybrid::kServerShareSize;
        *secretlen = hybrid::kSecretSize;
        return 1;
    }
    if (secret == nullptr || *outlen < hybrid::kServerShareSize || *secretlen < hybrid::kSecretSize) return 0;
    auto enc = hybrid::encapsulate(ctx->key->peer_share);
    if (!enc) return 0;
    std::memcpy(out, enc->server_share.data(), hybrid::kServerShareSize);
    std::memcpy(secret, enc->secret.data(), hybrid::kSecretSize);
    *outlen = hybrid::kServerShareSize;
    *secretlen = hybrid::kSecretSize;
    return 1;
}

// Client: in = server share, out = shared secret (64).
int kem_decapsulate(void* c, unsigned char* out, std::size_t* outlen, const unsigned char* in, std::size_t inlen) {
    auto* ctx = static_cast<KemCtx*>(c);
    if (ctx->key == nullptr || !ctx->key->priv || outlen == nullptr) return 0;
    if (out == nullptr) {
        *outlen = hybrid::kSecretSize;
        return 1;
    }
    if (*outlen < hybrid::kSecretSize) return 0;
    auto k = hybrid::decapsulate(*ctx->key->priv, {in, inlen});
    if (!k) return 0;
    std::memcpy(out, k->data(), hybrid::kSecretSize);
    *outlen = hybrid::kSecretSize;
    return 1;
}

const OSSL_DISPATCH kKem[] = {
    {OSSL_FUNC_KEM_NEWCTX, QKD_FN(OSSL_FUNC_kem_newctx_fn, kem_newctx)},
    {OSSL_FUNC_KEM_FREECTX, QKD_FN(OSSL_FUNC_kem_freectx_fn, kem_freectx)},
    {OSSL_FUNC_KEM_DUPCTX, QKD_FN(OSSL_FUNC_kem_dupctx_fn, kem_dupctx)},
    {OSSL_FUNC_KEM_ENCAPSULATE_INIT, QKD_FN(OSSL_FUNC_kem_encapsulate_init_fn, kem_encapsulate_init)},
    {OSSL_FUNC_KEM_ENCAPSULATE, QKD_FN(OSSL_FUNC_kem_encapsulate_fn, kem_encapsulate)},
    {OSSL_FUNC_KEM_DECAPSULATE_INIT, QKD_FN(OSSL_FUNC_kem_decapsulate_init_fn, kem_decapsulate_init)},
    {OSSL_FUNC_KEM_DECAPSULATE, QKD_FN(OSSL_FUNC_kem_decapsulate_fn, kem_decapsulate)},
    {0, nullptr},
};

// ---- provider --------------------------------------------------------------------------------

const OSSL_ALGORITHM kKeymgmtAlgs[] = {
    {kAlgName, "provider=qkdgate-pq", kKeymgmt, "X25519MLKEM768 hybrid key (qkdgate)"},
    {nullptr, nullptr, nullptr, nullptr},
};
const OSSL_ALGORITHM kKemAlgs[] = {
    {kAlgName, "provider=qkdgate-pq", kKem, "X25519MLKEM768 hybrid KEM (qkdgate)"},
    {nullptr, nullptr, nullptr, nullptr},
};

const OSSL_ALGORITHM* query_operation(void*, int operation_id, int* no_cache) {
    *no_cache = 0;
    switch (operation_id) {
        case OSSL_OP_KEYMGMT: return kKeymgmtAlgs;
        case OSSL_OP_KEM: return kKemAlgs;
        default: return nullptr;
    }
}

// draft-ietf-tls-ecdhe-mlkem: TLS 1.3 only, 192-bit security (ML-KEM-768 category 3).
unsigned int g_group_id = kHybridGroupId;
unsigned int g_secbits = 192;
int g_min_tls = TLS1_3_VERSION;
int g_max_tls = 0;
int g_min_dtls = -1;
int g_max_dtls = -1;
unsigned int g_is_kem = 1;

int get_capabilities(void*, const char* capability, OSSL_CALLBACK* cb, void* arg) {
    if (OPENSSL_strcasecmp(capability, "TLS-GROUP") != 0) return 0;
    const OSSL_PARAM group[] = {
        OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME, const_cast<char*>(kAlgName), std::strlen(kAlgName)),
        OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL, const_cast<char*>(kAlgName),
                               std::strlen(kAlgName)),
        OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_ALG, const_cast<char*>(kAlgName), std::strlen(kAlgName)),
        OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_ID, &g_group_id),
        OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS, &g_secbits),
        OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_TLS, &g_min_tls),
        OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_TLS, &g_max_tls),
        OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_DTLS, &g_min_dtls),
        OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_DTLS, &g_max_dtls),
        OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_IS_KEM, &g_is_kem),
        OSSL_PARAM_END,
    };
    return cb(group, arg);
}

void teardown(void*) {}

const OSSL_DISPATCH kProviderDispatch[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, QKD_FN(OSSL_FUNC_provider_teardown_fn, teardown)},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, QKD_FN(OSSL_FUNC_provider_query_operation_fn, query_operation)},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, QKD_FN(OSSL_FUNC_provider_get_capabilities_fn, get_capabilities)},
    {0, nullptr},
};

int provider_init(const OSSL_CORE_HANDLE*, const OSSL_DISPATCH*, const OSSL_DISPATCH** out, void** provctx) {
    *out = kProviderDispatch;
    *provctx = nullptr;
    return 1;
}

using qkd::openssl_errors;

}  // namespace

qkd::Result<void, std::string> load_hybrid_provider() {
    // Loading any provider explicitly stops OpenSSL from loading "default" implicitly, so load it
    // first; our KEM uses its X25519 and TLS needs everything else from it.
    // Both stay loaded for the life of the process (the handles are kept, not leaked).
    static OSSL_PROVIDER* default_prov = nullptr;
    static OSSL_PROVIDER* pq_prov = nullptr;
    if (default_prov == nullptr && (default_prov = OSSL_PROVIDER_load(nullptr, "default")) == nullptr)
        return qkd::Err{"cannot load OpenSSL provider 'default': " + openssl_errors()};
    if (pq_prov == nullptr) {
        if (OSSL_PROVIDER_add_builtin(nullptr, kProviderName, provider_init) != 1)
            return qkd::Err{"cannot register provider qkdgate-pq: " + openssl_errors()};
        if ((pq_prov = OSSL_PROVIDER_load(nullptr, kProviderName)) == nullptr)
            return qkd::Err{"cannot load provider qkdgate-pq: " + openssl_errors()};
    }
    return {};
}

}  // namespace qkd::pqtls
