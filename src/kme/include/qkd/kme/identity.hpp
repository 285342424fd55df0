#pragma once
// Who is calling: the SAE ID (or peer KME ID) read from the verified client certificate
// (ETSI 014 5.1: "the KME shall authenticate each request and identify the unique SAE ID").
#include <openssl/x509.h>

#include <optional>
#include <string>
#include <vector>

#include "qkd/kme/config.hpp"

namespace qkd::kme {

struct CertNames {
    std::string cn;
    std::vector<std::string> san_uri, san_dns;
    std::string sha256_hex;  // fingerprint of the DER certificate, lowercase
};

CertNames cert_names(X509* cert);
// SAE ID by the configured rule, or nullopt when the certificate carries none.
std::optional<std::string> sae_id_from_cert(const Config& cfg, const CertNames& names);

}  // namespace qkd::kme
