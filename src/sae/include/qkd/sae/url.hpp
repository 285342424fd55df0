#pragma once
// The KME base URL of a profile: https://HOST[:PORT][/PREFIX]. ETSI 014 4 and 5: HTTPS only; the
// API lives under {PREFIX}/api/v1/keys/.
#include <cstdint>
#include <string>
#include <string_view>

#include "qkd/common/result.hpp"

namespace qkd::sae {

struct KmeUrl {
    std::string text;         // as configured
    std::string host;         // without brackets for IPv6 literals
    std::uint16_t port = 443;
    std::string base_path;    // "" or "/prefix" (no trailing slash)
    bool host_is_ip = false;
    // Value of the HTTP Host header: host[:port], IPv6 literals in brackets.
    std::string host_header() const;
};

qkd::Result<KmeUrl, std::string> parse_kme_url(std::string_view text);

// RFC 3986 percent-encoding of everything except unreserved characters (for SAE IDs in paths
// and key_IDs in queries: ETSI 014 5.1 "the SAE ID in the path is URL-encoded").
std::string percent_encode(std::string_view s);

}  // namespace qkd::sae
