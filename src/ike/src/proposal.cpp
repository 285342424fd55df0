// strongSwan-style proposal strings (what swanctl.conf users write), e.g.
// "aes256gcm16-prfsha512-ecp521" for IKE and "aes256gcm16-ecp521-esn" for ESP.
#include <algorithm>
#include <array>

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
struct KeToken { std::string_view token; KeGroup group; };
constexpr std::array kKe = {
    KeToken{"modp2048", KeGroup::Modp2048}, KeToken{"ecp256", KeGroup::Ecp256}, KeToken{"ecp384", KeGroup::Ecp384},
    KeToken{"ecp521", KeGroup::Ecp521},     KeToken{"curve25519", KeGroup::Curve25519}, KeToken{"x25519", KeGroup::Curve25519},
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

ProposalError err(ProposalErrc c, std::string m) { return ProposalError{c, std::move(m)}; }

const char* kKnownIke = "aes128gcm16, aes256gcm16, prfsha256, prfsha384, prfsha512, modp2048, ecp256, ecp384, ecp521, curve25519";
const char* kKnownEsp = "aes128gcm16, aes256gcm16, modp2048, ecp256, ecp384, ecp521, curve25519, esn, noesn";

}  // namespace

Result<std::vector<IkeProposal>, ProposalError> parse_ike_proposals(std::string_view text) {
    std::vector<IkeProposal> out;
    for (auto prop : split(text, ',')) {
        if (prop.empty()) return Err{err(ProposalErrc::Empty, "empty IKE proposal in \"" + std::string(text) + "\"")};
        IkeProposal p;
        for (auto tok : split(prop, '-')) {
            if (auto* e = find(kEncr, tok)) p.encr.push_back(e->alg);
            else if (auto* f = find(kPrf, tok)) p.prf.push_back(f->alg);
            else if (auto* k = find(kKe, tok)) p.ke.push_back(k->group);
            else
                return Err{err(ProposalErrc::UnknownToken, "unknown algorithm \"" + std::string(tok) + "\" in IKE proposal \"" +
                                                               std::string(prop) + "\"; expected one of " + kKnownIke)};
        }
        if (p.encr.empty() || p.prf.empty() || p.ke.empty())
            return Err{err(ProposalErrc::Missing, "IKE proposal \"" + std::string(prop) +
                                                      "\" needs an encryption algorithm, a PRF and a key exchange "
                                                      "method, e.g. aes256gcm16-prfsha512-ecp521")};
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
            if (auto* e = find(kEncr, tok)) p.encr.push_back(e->alg);
            else if (auto* k = find(kKe, tok)) p.ke.push_back(k->group);
            else if (tok == "esn") p.esn.push_back(true);
            else if (tok == "noesn") p.esn.push_back(false);
            else
                return Err{err(ProposalErrc::UnknownToken, "unknown algorithm \"" + std::string(tok) + "\" in ESP proposal \"" +
                                                               std::string(prop) + "\"; expected one of " + kKnownEsp)};
        }
        if (p.encr.empty())
            return Err{err(ProposalErrc::Missing, "ESP proposal \"" + std::string(prop) +
                                                      "\" needs an AEAD algorithm, e.g. aes256gcm16")};
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
}  // namespace

std::string ike_proposal_string(EncrAlg e, PrfAlg p, KeGroup g) {
    std::string prf = p == PrfAlg::HmacSha256 ? "prfsha256" : p == PrfAlg::HmacSha384 ? "prfsha384" : "prfsha512";
    return encr_token(e) + "-" + prf + "-" + ke_token(g);
}

std::string esp_proposal_string(EncrAlg e, KeGroup pfs, bool esn) {
    std::string s = encr_token(e);
    if (pfs != KeGroup::None) {
        s += '-';
        s += ke_token(pfs);
    }
    if (esn) s += "-esn";
    return s;
}

std::string algorithm_string(EncrAlg e, KeGroup g) {
    return "PSK/DH" + std::to_string(static_cast<unsigned>(g)) + "/AES" + std::to_string(e.key_bits) + "-GCM16";
}

std::string esp_algorithm_string(EncrAlg e, KeGroup pfs) {
    std::string s = "AES" + std::to_string(e.key_bits) + "-GCM16";
    if (pfs != KeGroup::None) s += "/DH" + std::to_string(static_cast<unsigned>(pfs));
    return s;
}

}  // namespace qkd::ike
