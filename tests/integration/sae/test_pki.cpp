// Test PKI with the OpenSSL 3 API (no openssl CLI needed).
#include "test_pki.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>

namespace qkd::sae::testing {
namespace {

EVP_PKEY* new_key() {
    EVP_PKEY* k = EVP_EC_gen("P-256");
    if (k == nullptr) throw std::runtime_error("EVP_EC_gen failed");
    return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) throw std::runtime_error("bad extension " + value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

X509* make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, long serial, int days) {
    X509* c = X509_new();
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
    if (days >= 0) {
        X509_gmtime_adj(X509_getm_notBefore(c), -3600);
        X509_gmtime_adj(X509_getm_notAfter(c), static_cast<long>(days) * 86400);
    } else {
        X509_gmtime_adj(X509_getm_notBefore(c), (static_cast<long>(days) - 10) * 86400);
        X509_gmtime_adj(X509_getm_notAfter(c), static_cast<long>(days) * 86400);
    }
    X509_set_pubkey(c, key);
    X509_NAME* name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(c, issuer != nullptr ? X509_get_subject_name(issuer) : name);
    return c;
}

void write_pem(const std::filesystem::path& p, X509* cert, EVP_PKEY* key) {
    FILE* f = std::fopen(p.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("cannot write " + p.string());
    const int ok = cert != nullptr ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    if (ok != 1) throw std::runtime_error("PEM write failed for " + p.string());
}

long next_serial() {
    static long s = 1000;
    return ++s;
}

}  // namespace

TestCa::TestCa(const std::filesystem::path& dir, const std::string& name) : dir_(dir) {
    EVP_PKEY* key = new_key();
    X509* cert = make_cert(key, name, nullptr, next_serial(), 365);
    add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(cert, cert, NID_subject_key_identifier, "hash");
    X509_sign(cert, key, EVP_sha256());
    cert_path_ = dir / (name + "_ca.pem");
    write_pem(cert_path_, cert, nullptr);
    write_pem(dir / (name + "_ca.key"), nullptr, key);
    key_ = key;
    cert_ = cert;
}

TestCa::~TestCa() {
    X509_free(static_cast<X509*>(cert_));
    EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
}

Issued TestCa::issue(const std::string& file_stem, const std::string& cn, const std::vector<std::string>& sans,
                     int days) const {
    auto* ca_cert = static_cast<X509*>(cert_);
    auto* ca_key = static_cast<EVP_PKEY*>(key_);
    EVP_PKEY* key = new_key();
    X509* cert = make_cert(key, cn, ca_cert, next_serial(), days);
    add_ext(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert, ca_cert, NID_key_usage, "critical,digitalSignature,keyAgreement");
    add_ext(cert, ca_cert, NID_ext_key_usage, "serverAuth,clientAuth");
    add_ext(cert, ca_cert, NID_authority_key_identifier, "keyid");
    if (!sans.empty()) {
        std::string s;
        for (const auto& x : sans) s += (s.empty() ? "" : ",") + x;
        add_ext(cert, ca_cert, NID_subject_alt_name, s);
    }
    X509_sign(cert, ca_key, EVP_sha256());
    Issued out{dir_ / (file_stem + ".pem"), dir_ / (file_stem + ".key")};
    write_pem(out.cert, cert, nullptr);
    write_pem(out.key, nullptr, key);
    X509_free(cert);
    EVP_PKEY_free(key);
    return out;
}

}  // namespace qkd::sae::testing
