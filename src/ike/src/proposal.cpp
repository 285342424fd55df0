// strongSwan-style proposal strings (what swanctl.conf users write), e.g.
// "aes256gcm16-prfsha512-ecp521" for IKE, "aes256gcm16-ecp521-esn" for ESP, and strongSwan 6's
// RFC 9370 syntax "ke<n>_<method>" for the additional key exchanges ("...-ecp521-ke1_mlkem768",
// "ke1_none" for an optional round).
#include <algorithm>
#include <array>
#include <optional>

#include "qkd/ike/proposal.hpp"

namespace qkd::ike {
namespace {

using crypto::KeGroup;
using crypto::PrfAlg;

struct EncrToken { std::string_view token; EncrAlg alg; };
constexpr std::array kEncr = {
    EncrToken{"aes256gcm16", {EncrId::AesGcm16, 256}}, EncrToken{"aes128gcm16", {EncrId::AesGcm16, 128}},
    EncrToken{"aes256gcm", {EncrId::AesGcm16, 256}},   EncrToken{"aes128gcm", {EncrId::AesGcm16, 128}},
};
struct PrfToken { std::string_view token; PrfAlg alg; };
constexpr std::array kPrf = {
    PrfToken{"prfsha256", PrfAlg::HmacSha256}, PrfToken{"prfsha384", PrfAlg::HmacSha384},
    PrfToken{"prfsha512", PrfAlg::HmacSha512},
    // strongSwan accepts an integrity token in AEAD proposals to name the PRF.
    PrfToken{"sha256", PrfAlg::HmacSha256}, PrfToken{"sha384", PrfAlg::HmacSha384}, PrfToken{"sha512", PrfAlg::HmacSha512},
};
// The first token of a method is the one printed; "x25519" is strongSwan 6's alias of curve25519.
struct KeToken { std::string_view token; KeGroup group; };
constexpr std::array kKe = {
    KeToken{"modp2048", KeGroup::Modp2048}, KeToken{"ecp256", KeGroup::Ecp256},       KeToken{"ecp384", KeGroup::Ecp384},
    KeToken{"ecp521", KeGroup::Ecp521},     KeToken{"curve25519", KeGroup::Curve25519}, KeToken{"x25519", KeGroup::Curve25519},
    KeToken{"mlkem512", KeGroup::MlKem512}, KeToken{"mlkem768", KeGroup::MlKem768},   KeToken{"mlkem1024", KeGroup::MlKem1024},
    // QKD key from the KME (private use 65516, the QURSA plugin's token), e.g. "...-ke2_qkd".
    KeToken{"qkd", KeGroup::Qkd},
};

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        auto pos = s.find(sep, start);
        auto part = s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
        out.push_back(part);
        if (pos == std::string_view::npos) break;
        start = pos + 1;
    }
    return out;
}

template <class Arr>
auto find(const Arr& arr, std::string_view tok) -> const typename Arr::value_type* {
    for (const auto& e : arr)
        if (e.token == tok) return &e;
    return nullptr;
}

template <class T>
void add_once(std::vector<T>& v, T x) {
    if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

ProposalError err(ProposalErrc c, std::string m) { return ProposalError{c, std::move(m)}; }

constexpr std::string_view kMethods = "modp2048, ecp256, ecp384, ecp521, curve25519 (x25519), mlkem512, mlkem768, mlkem1024, qkd";
const std::string kKnownIke = "aes128gcm16, aes256gcm16, prfsha256, prfsha384, prfsha512, " + std::string(kMethods) +
                              ", ke1_<method> .. ke7_<method>, ke1_none .. ke7_none";
const std::string kKnownEsp = "aes128gcm16, aes256gcm16, " + std::string(kMethods) +
                              ", ke1_<method> .. ke7_<method>, ke1_none .. ke7_none, esn, noesn";

// "ke<n>_<method>" (RFC 9370 ADDKE<n>, strongSwan 6 syntax). Returns false if `tok` is not of
// that form; sets `error` if it is but names a bad slot or method.
bool parse_addke(std::string_view tok, std::string_view what, std::string_view prop, AdditionalKe& addke,
                 std::optional<ProposalError>& error) {
    if (tok.size() < 4 || tok.substr(0, 2) != "ke" || tok[3] != '_' || tok[2] < '0' || tok[2] > '9') return false;
    const unsigned n = static_cast<unsigned>(tok[2] - '0');
    const std::string where = "\"" + std::string(tok) + "\" in " + std::string(what) + " proposal \"" + std::string(prop) + "\"";
    if (n < 1 || n > kMaxAdditionalKe) {
        error = err(ProposalErrc::UnknownToken,
                    "additional key exchange " + where + " names round " + std::to_string(n) + ", expected ke1_ .. ke7_");
        return true;
    }
    const auto method = tok.substr(4);
    if (method == "none") {
        add_once(addke[n - 1], KeGroup::None);
    } else if (auto* k = find(kKe, method)) {
        add_once(addke[n - 1], k->group);
    } else {
        error = err(ProposalErrc::UnknownToken, "unknown key exchange method \"" + std::string(method) + "\" " + where +
                                                    "; expected one of " + std::string(kMethods) + " or none");
    }
    return true;
}

// RFC 9370 2.2.1: additional exchanges follow a first one; "ke<n>_none" alone offers nothing.
std::optional<ProposalError> check_addke(const AdditionalKe& addke, bool has_ke, std::string_view what, std::string_view prop) {
    bool any = false;
    for (const auto& slot : addke) any |= !slot.empty();
    if (any && !has_ke)
        return err(ProposalErrc::Missing, std::string(what) + " proposal \"" + std::string(prop) +
                                              "\" has additional key exchanges (ke<n>_) but no key exchange method for "
                                              "the first one, e.g. ecp521-ke1_mlkem768");
    return std::nullopt;
}

}  // namespace

Result<std::vector<IkeProposal>, ProposalError> parse_ike_proposals(std::string_view text) {
    std::vector<IkeProposal> out;
    for (auto prop : split(text, ',')) {
        if (prop.empty()) return Err{err(ProposalErrc::Empty, "empty IKE proposal in \"" + std::string(text) + "\"")};
        IkeProposal p;
        for (auto tok : split(prop, '-')) {
            std::optional<ProposalError> bad;
            if (auto* e = find(kEncr, tok)) add_once(p.encr, e->alg);
            else if (auto* f = find(kPrf, tok)) add_once(p.prf, f->alg);
            else if (auto* k = find(kKe, tok)) add_once(p.ke, k->group);
            else if (parse_addke(tok, "IKE", prop, p.addke, bad)) {
                if (bad) return Err{*bad};
            } else
                return Err{err(ProposalErrc::UnknownToken, "unknown algorithm \"" + std::string(tok) + "\" in IKE proposal \"" +
                                                               std::string(prop) + "\"; expected one of " + kKnownIke)};
        }
        if (p.encr.empty() || p.prf.empty() || p.ke.empty())
            return Err{err(ProposalErrc::Missing, "IKE proposal \"" + std::string(prop) +
                                                      "\" needs an encryption algorithm, a PRF and a key exchange "
                                                      "method, e.g. aes256gcm16-prfsha512-ecp521")};
        if (auto bad = check_addke(p.addke, true, "IKE", prop)) return Err{*bad};
        out.push_back(std::move(p));
    }
    return out;
}

Result<std::vector<EspProposal>, ProposalError> parse_esp_proposals(std::string_view text) {
    std::vector<EspProposal> out;
    for (auto prop : split(text, ',')) {
        if (prop.empty()) return Err{err(ProposalErrc::Empty, "empty ESP proposal in \"" + std::string(text) + "\"")};
        EspProposal p;
        p.esn.clear();
        for (auto tok : split(prop, '-')) {
            std::optional<ProposalError> bad;
            if (auto* e = find(kEncr, tok)) add_once(p.encr, e->alg);
            else if (auto* k = find(kKe, tok)) add_once(p.ke, k->group);
            else if (tok == "esn") add_once(p.esn, true);
            else if (tok == "noesn") add_once(p.esn, false);
            else if (parse_addke(tok, "ESP", prop, p.addke, bad)) {
                if (bad) return Err{*bad};
            } else
                return Err{err(ProposalErrc::UnknownToken, "unknown algorithm \"" + std::string(tok) + "\" in ESP proposal \"" +
                                                               std::string(prop) + "\"; expected one of " + kKnownEsp)};
        }
        if (p.encr.empty())
            return Err{err(ProposalErrc::Missing, "ESP proposal \"" + std::string(prop) +
                                                      "\" needs an AEAD algorithm, e.g. aes256gcm16")};
        if (auto bad = check_addke(p.addke, !p.ke.empty(), "ESP", prop)) return Err{*bad};
        if (p.esn.empty()) p.esn.push_back(false);
        out.push_back(std::move(p));
    }
    return out;
}

namespace {
std::string encr_token(EncrAlg e) { return e.key_bits == 128 ? "aes128gcm16" : "aes256gcm16"; }
std::string ke_token(KeGroup g) {
    for (const auto& k : kKe)
        if (k.group == g) return std::string(k.token);
    return "ke" + std::to_string(static_cast<unsigned>(g));
}
std::string addke_tokens(const AdditionalKeChoice& addke) {
    std::string s;
    for (std::size_t i = 0; i < addke.size(); ++i)
        if (addke[i] != KeGroup::None) s += "-ke" + std::to_string(i + 1) + "_" + ke_token(addke[i]);
    return s;
}
// "DH21+MLKEM768": the first exchange, then each additional one in order.
std::string ke_chain(KeGroup g, const AdditionalKeChoice& addke) {
    std::string s = ke_method_label(g);
    for (auto a : addke)
        if (a != KeGroup::None) s += "+" + ke_method_label(a);
    return s;
}
}  // namespace

std::string ke_method_label(KeGroup g) {
    switch (g) {
        case KeGroup::MlKem512: return "MLKEM512";
        case KeGroup::MlKem768: return "MLKEM768";
        case KeGroup::MlKem1024: return "MLKEM1024";
        case KeGroup::Qkd: return "QKD";
        default: return "DH" + std::to_string(static_cast<unsigned>(g));
    }
}

std::string ike_proposal_string(EncrAlg e, PrfAlg p, KeGroup g, const AdditionalKeChoice& addke) {
    std::string prf = p == PrfAlg::HmacSha256 ? "prfsha256" : p == PrfAlg::HmacSha384 ? "prfsha384" : "prfsha512";
    return encr_token(e) + "-" + prf + "-" + ke_token(g) + addke_tokens(addke);
}

std::string esp_proposal_string(EncrAlg e, KeGroup pfs, bool esn, const AdditionalKeChoice& addke) {
    std::string s = encr_token(e);
    if (pfs != KeGroup::None) s += "-" + ke_token(pfs) + addke_tokens(addke);
    if (esn) s += "-esn";
    return s;
}

std::string algorithm_string(EncrAlg e, KeGroup g, const AdditionalKeChoice& addke) {
    // The seed's notation for a QKD key mixed into the key schedule: ".../AES256-GCM16/COMBINED".
    bool qkd = g == KeGroup::Qkd;
    for (auto a : addke) qkd |= a == KeGroup::Qkd;
    return "PSK/" + ke_chain(g, addke) + "/AES" + std::to_string(e.key_bits) + "-GCM16" + (qkd ? "/COMBINED" : "");
}

std::string esp_algorithm_string(EncrAlg e, KeGroup pfs, const AdditionalKeChoice& addke) {
    std::string s = "AES" + std::to_string(e.key_bits) + "-GCM16";
    if (pfs != KeGroup::None) s += "/" + ke_chain(pfs, addke);
    return s;
}

}  // namespace qkd::ike
