// TLS client context and KME identity checks.
#include "qkd/common/openssl_error.hpp"
#include "qkd/sae/tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>

#include "qkd/crypto/pq_tls.hpp"

namespace qkd::sae {
namespace {

using Fail = qkd::Err<Error>;

using qkd::openssl_errors;

std::string where(const Profile& p, std::string_view key, const std::filesystem::path& file) {
    return p.source_file + ": profile \"" + p.name + "\": " + std::string(key) + " \"" + file.string() + "\"";
}

std::string name_text(X509_NAME* n) {
    if (n == nullptr) return "";
    BIO* b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long len = BIO_get_mem_data(b, &data);
    std::string s(data, static_cast<std::size_t>(len));
    BIO_free(b);
    return s;
}

std::string common_name(X509* cert) {
    X509_NAME* n = X509_get_subject_name(cert);
    const int idx = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
    if (idx < 0) return "";
    ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, idx));
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, s);
    if (len < 0) return "";
    std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    return out;
}

}  // namespace

qkd::Result<SslCtxPtr, Error> make_client_context(const Profile& p) {
    // libssl reads the providers' TLS groups when a context is created, so the hybrid group must be
    // made available first. A failure here is handled by configure_groups (fallback or pq_only error).
    (void)qkd::pqtls::ensure_hybrid_group();
    ERR_clear_error();
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) return Fail{Error(Errc::tls, "cannot create a TLS context: " + openssl_errors())};
    // ETSI 014 4: TLS 1.2 or 1.3.
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_AUTO_RETRY);
    if (SSL_CTX_load_verify_locations(ctx.get(), p.kme_ca_cert.c_str(), nullptr) != 1)
        return Fail{Error(Errc::config, where(p, "kme_ca_cert", p.kme_ca_cert) +
                                            ": cannot read the CA certificate(s); expected a PEM file: " + openssl_errors())};
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), p.local_cert.c_str()) != 1)
        return Fail{Error(Errc::config, where(p, "local_cert", p.local_cert) +
                                            ": cannot read the SAE certificate; expected a PEM file: " + openssl_errors())};
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), p.local_key.c_str(), SSL_FILETYPE_PEM) != 1)
        return Fail{Error(Errc::config, where(p, "local_key", p.local_key) +
                                            ": cannot read the SAE private key; expected an unencrypted PEM key: " +
                                            openssl_errors())};
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
        return Fail{Error(Errc::config, where(p, "local_key", p.local_key) + ": does not match local_cert \"" +
                                            p.local_cert.string() + "\": " + openssl_errors())};
    // The only trust anchor is the KME CA; the default system store is never loaded.
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    qkd::pqtls::GroupConfig groups;
    if (!p.tls_groups.empty()) groups.groups = p.tls_groups;
    groups.pq_only = p.pq_only;
    auto g = qkd::pqtls::configure_groups(ctx.get(), groups);
    if (!g) return Fail{Error(Errc::config, p.source_file + ": profile \"" + p.name + "\": key 'tls_groups'/'pq_only': " + g.error())};
    return ctx;
}

qkd::Result<std::vector<unsigned char>, Error> load_pin(const Profile& p) {
    std::vector<unsigned char> der;
    if (!p.kme_cert) return der;
    FILE* f = std::fopen(p.kme_cert->c_str(), "r");
    if (f == nullptr)
        return Fail{Error(Errc::config, where(p, "kme_cert", *p.kme_cert) + ": cannot open the pinned KME certificate")};
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (cert == nullptr)
        return Fail{Error(Errc::config, where(p, "kme_cert", *p.kme_cert) + ": not a PEM certificate: " + openssl_errors())};
    unsigned char* buf = nullptr;
    const int len = i2d_X509(cert, &buf);
    X509_free(cert);
    if (len <= 0) return Fail{Error(Errc::config, where(p, "kme_cert", *p.kme_cert) + ": cannot encode the certificate")};
    der.assign(buf, buf + len);
    OPENSSL_free(buf);
    return der;
}

qkd::Result<void, Error> set_expected_host(SSL* ssl, const Profile& p) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (p.kme_url.host_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, p.kme_url.host.c_str()) != 1)
            return Fail{Error(Errc::config, "cannot require IP address " + p.kme_url.host + " in the KME certificate")};
    } else {
        if (SSL_set_tlsext_host_name(ssl, p.kme_url.host.c_str()) != 1 || SSL_set1_host(ssl, p.kme_url.host.c_str()) != 1)
            return Fail{Error(Errc::config, "cannot require host name " + p.kme_url.host + " in the KME certificate")};
    }
    return {};
}

std::string handshake_failure_text(SSL* ssl, const std::string& fallback) {
    const long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK)
        return std::string("the KME certificate was refused: ") + X509_verify_cert_error_string(vr) +
               " (expected a certificate issued by kme_ca_cert for the KME URL's host)";
    std::string q = openssl_errors();
    return fallback + (q == "no OpenSSL error queued" ? "" : " (" + q + ")");
}

qkd::Result<TlsInfo, Error> check_peer(SSL* ssl, const Profile& p, const std::vector<unsigned char>& pin_der) {
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (cert == nullptr) return Fail{Error(Errc::identity, "the KME presented no certificate")};
    TlsInfo info;
    info.version = SSL_get_version(ssl);
    info.group = qkd::pqtls::negotiated_group(ssl);
    info.cipher = SSL_get_cipher_name(ssl);
    info.peer_subject = name_text(X509_get_subject_name(cert));
    info.peer_cn = common_name(cert);
    bool pin_ok = true;
    if (!pin_der.empty()) {
        unsigned char* buf = nullptr;
        const int len = i2d_X509(cert, &buf);
        // Certificates are public: a plain comparison is fine.
        pin_ok = len > 0 && static_cast<std::size_t>(len) == pin_der.size() &&
                 std::equal(pin_der.begin(), pin_der.end(), buf);
        OPENSSL_free(buf);
    }
    X509_free(cert);
    if (!pin_ok)
        return Fail{Error(Errc::identity, "the KME certificate (" + info.peer_subject +
                                              ") is not the pinned kme_cert \"" + p.kme_cert->string() + "\"")};
    // ETSI 014 5.1: the SAE confirms the KME ID from the KME certificate.
    if (p.kme_id && info.peer_cn != *p.kme_id)
        return Fail{Error(Errc::identity, "the KME certificate names KME \"" + info.peer_cn + "\" (" + info.peer_subject +
                                              "); expected kme_id \"" + *p.kme_id + "\"")};
    return info;
}

}  // namespace qkd::sae
