// Subject and expiry of a PEM certificate (for `qkdgate show qkd`).
#include "qkd/sae/cert_info.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>

namespace qkd::sae {
namespace {

std::string bio_text(BIO* b) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(b, &data);
    return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

qkd::Result<CertInfo, std::string> read_cert_info(const std::filesystem::path& pem_file) {
    FILE* f = std::fopen(pem_file.c_str(), "r");
    if (f == nullptr) return qkd::Err{"cannot open \"" + pem_file.string() + "\""};
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (cert == nullptr) return qkd::Err{"\"" + pem_file.string() + "\" is not a PEM certificate"};
    CertInfo info;
    BIO* b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    info.subject = bio_text(b);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, X509_get_issuer_name(cert), 0, XN_FLAG_RFC2253);
    info.issuer = bio_text(b);
    BIO_free(b);
    const ASN1_TIME* na = X509_get0_notAfter(cert);
    struct tm tm {};
    if (ASN1_TIME_to_tm(na, &tm) == 1) {
        char buf[64];
        std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
        info.not_after = buf;
    }
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, nullptr, na) == 1) {
        info.days_left = days;
        info.expired = days < 0 || (days == 0 && secs < 0);
    }
    X509_free(cert);
    return info;
}

}  // namespace qkd::sae
