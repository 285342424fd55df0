// KME base URL parsing and percent-encoding.
#include "qkd/sae/url.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace qkd::sae {
namespace {

constexpr std::size_t kMaxUrlLength = 2048;

bool is_unreserved(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

bool is_host_char(char c) { return is_unreserved(c); }

bool is_ip_literal(const std::string& host) {
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::string KmeUrl::host_header() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (port != 443) h += ":" + std::to_string(port);
    return h;
}

qkd::Result<KmeUrl, std::string> parse_kme_url(std::string_view text) {
    const auto bad = [&](const std::string& why) {
        return qkd::Err{"kme_url \"" + std::string(text.substr(0, 200)) + "\": " + why +
                        "; expected https://HOST[:PORT][/PREFIX]"};
    };
    if (text.size() > kMaxUrlLength) return bad("longer than " + std::to_string(kMaxUrlLength) + " characters");
    constexpr std::string_view scheme = "https://";
    if (text.substr(0, scheme.size()) != scheme) return bad("scheme must be https (ETSI 014 requires TLS)");
    KmeUrl u;
    u.text = std::string(text);
    std::string_view rest = text.substr(scheme.size());
    const std::size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    if (authority.find('@') != std::string_view::npos) return bad("user information is not allowed");
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return bad("unterminated IPv6 literal");
        u.host = std::string(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return bad("unexpected text after the IPv6 literal");
            port_text = after.substr(1);
        }
        unsigned char buf[16];
        if (inet_pton(AF_INET6, u.host.c_str(), buf) != 1) return bad("invalid IPv6 literal");
    } else {
        const std::size_t colon = authority.rfind(':');
        u.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
        for (char c : u.host)
            if (!is_host_char(c)) return bad(std::string("invalid character '") + c + "' in host");
    }
    if (u.host.empty()) return bad("empty host");
    if (authority.find(':') != std::string_view::npos && authority.front() != '[' && port_text.empty())
        return bad("empty port");
    if (!port_text.empty()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
        if (ec != std::errc{} || p != port_text.data() + port_text.size() || v == 0 || v > 65535)
            return bad("port must be 1..65535");
        u.port = static_cast<std::uint16_t>(v);
    }
    if (path.find_first_of("?#") != std::string_view::npos) return bad("query or fragment is not allowed");
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    for (char c : path)
        if (!is_unreserved(c) && c != '/') return bad(std::string("invalid character '") + c + "' in path");
    u.base_path = std::string(path);
    u.host_is_ip = is_ip_literal(u.host);
    return u;
}

std::string percent_encode(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (is_unreserved(c)) {
            out += c;
        } else {
            const auto b = static_cast<unsigned char>(c);
            out += '%';
            out += kHex[b >> 4];
            out += kHex[b & 0xF];
        }
    }
    return out;
}

}  // namespace qkd::sae
