#include "qkd/kme/identity.hpp"

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "qkd/common/encoding.hpp"

namespace qkd::kme {

CertNames cert_names(X509* cert) {
    CertNames n;
    if (!cert) return n;
    char buf[512];
    int len = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
    if (len > 0) n.cn.assign(buf, static_cast<std::size_t>(len));
    auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
            if (g->type == GEN_URI || g->type == GEN_DNS) {
                const ASN1_IA5STRING* s = g->type == GEN_URI ? g->d.uniformResourceIdentifier : g->d.dNSName;
                std::string v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s)));
                (g->type == GEN_URI ? n.san_uri : n.san_dns).push_back(std::move(v));
            }
        }
        GENERAL_NAMES_free(sans);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1) n.sha256_hex = hex_encode(std::span<const std::uint8_t>(md, mdlen));
    return n;
}

std::optional<std::string> sae_id_from_cert(const Config& cfg, const CertNames& n) {
    switch (cfg.identity_rule) {
        case IdentityRule::CommonName:
            if (!n.cn.empty()) return n.cn;
            return std::nullopt;
        case IdentityRule::SanDns:
            if (!n.san_dns.empty()) return n.san_dns.front();
            return std::nullopt;
        case IdentityRule::SanUri:
            for (const auto& u : n.san_uri) {
                if (cfg.identity_uri_prefix.empty()) return u;
                if (u.rfind(cfg.identity_uri_prefix, 0) == 0 && u.size() > cfg.identity_uri_prefix.size())
                    return u.substr(cfg.identity_uri_prefix.size());
            }
            return std::nullopt;
        case IdentityRule::Fingerprint:
            if (auto it = cfg.fingerprints.find(n.sha256_hex); it != cfg.fingerprints.end()) return it->second;
            return std::nullopt;
    }
    return std::nullopt;
}

}  // namespace qkd::kme
