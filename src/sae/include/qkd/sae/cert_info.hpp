#pragma once
// Subject and validity of a PEM certificate file, for `qkdgate show qkd`.
#include <filesystem>
#include <string>

#include "qkd/common/result.hpp"

namespace qkd::sae {

struct CertInfo {
    std::string subject;     // RFC 2253
    std::string issuer;
    std::string not_after;   // "2027-11-27 12:00:00 UTC"
    long long days_left = 0; // negative when expired
    bool expired = false;
};

qkd::Result<CertInfo, std::string> read_cert_info(const std::filesystem::path& pem_file);

}  // namespace qkd::sae
