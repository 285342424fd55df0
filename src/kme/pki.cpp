#include "qkd/kme/pki.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

#include "qkd/common/rng.hpp"

namespace qkd::kme::pki {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("demo PKI: " + what); }

PKey gen_key() {
    PKey k(EVP_EC_gen("P-256"));
    if (!k) fail("EC key generation failed");
    return k;
}

void write_key(const std::string& path, EVP_PKEY* k) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) fail("cannot write " + path);
    ::chmod(path.c_str(), 0600);
    bool ok = PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    std::fclose(f);
    if (!ok) fail("cannot write key " + path);
}

void write_cert(const std::string& path, X509* c) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) fail("cannot write " + path);
    bool ok = PEM_write_X509(f, c) == 1;
    std::fclose(f);
    if (!ok) fail("cannot write certificate " + path);
}

PKey read_key(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "r");
    if (!f) fail("cannot read " + path);
    PKey k(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (!k) fail("cannot parse key " + path);
    return k;
}

Cert read_cert(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "r");
    if (!f) fail("cannot read " + path);
    Cert c(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (!c) fail("cannot parse certificate " + path);
    return c;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (!ext) fail(fmt::format("bad extension {} = {}", OBJ_nid2sn(nid), value));
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

Cert build(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, int days) {
    Cert c(X509_new());
    X509_set_version(c.get(), 2);
    std::uint8_t serial[16];
    random_bytes(serial);
    serial[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 60L * 60 * 24 * days);
    X509_set_pubkey(c.get(), key);
    X509_NAME* name = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("qkdgate demo"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
    (void)issuer_key;
    return c;
}

}  // namespace

void make_ca(const std::string& dir, const std::string& cn) {
    auto key = gen_key();
    auto c = build(cn, key.get(), nullptr, key.get(), 3650);
    add_ext(c.get(), c.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_ext(c.get(), c.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(c.get(), c.get(), NID_subject_key_identifier, "hash");
    if (X509_sign(c.get(), key.get(), EVP_sha256()) == 0) fail("CA signing failed");
    write_key(dir + "/ca.key", key.get());
    write_cert(dir + "/ca.pem", c.get());
}

void make_leaf(const std::string& dir, const std::string& name, const LeafSpec& spec) {
    auto ca_key = read_key(dir + "/ca.key");
    auto ca = read_cert(dir + "/ca.pem");
    auto key = gen_key();
    auto c = build(spec.cn, key.get(), ca.get(), ca_key.get(), 825);
    add_ext(c.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(c.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyAgreement");
    add_ext(c.get(), ca.get(), NID_ext_key_usage, spec.server ? "serverAuth,clientAuth" : "clientAuth");
    add_ext(c.get(), ca.get(), NID_subject_key_identifier, "hash");
    add_ext(c.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    if (!spec.sans.empty()) {
        std::string s;
        for (const auto& x : spec.sans) s += (s.empty() ? "" : ",") + x;
        add_ext(c.get(), ca.get(), NID_subject_alt_name, s);
    }
    if (X509_sign(c.get(), ca_key.get(), EVP_sha256()) == 0) fail("signing " + name + " failed");
    write_key(dir + "/" + name + ".key", key.get());
    write_cert(dir + "/" + name + ".pem", c.get());
}

}  // namespace qkd::kme::pki
