// IpAddress / IpPrefix parsing and matching, and the error-code text table of this layer.
#include <arpa/inet.h>

#include <charconv>
#include <string>

#include "qkd/dataplane/dataplane.hpp"

namespace qkd::dp {

std::string_view to_string(DpErrc c) {
    switch (c) {
        case DpErrc::invalid_argument:
            return "invalid argument";
        case DpErrc::not_found:
            return "not found";
        case DpErrc::exists:
            return "already exists";
        case DpErrc::not_supported:
            return "not supported by this backend";
        case DpErrc::os_error:
            return "system call failed";
        case DpErrc::netlink:
            return "netlink request refused";
        case DpErrc::crypto:
            return "crypto error";
        case DpErrc::unavailable:
            return "backend unavailable";
    }
    return "unknown";
}

std::string_view to_string(Direction d) {
    return d == Direction::inbound ? "in" : "out";
}

DpResult<IpAddress> IpAddress::parse(std::string_view text) {
    constexpr std::size_t max_text = 45;  // INET6_ADDRSTRLEN - 1
    if (text.empty() || text.size() > max_text)
        return Err{DpError{DpErrc::invalid_argument, "bad IP address '" +
                                                         std::string(text.substr(0, 64)) +
                                                         "': expected an IPv4 or IPv6 address"}};
    std::string s(text);
    IpAddress a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
        a.family = Family::v4;
        return a;
    }
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
        a.family = Family::v6;
        return a;
    }
    return Err{
        DpError{DpErrc::invalid_argument,
                "bad IP address '" + s + "': expected dotted IPv4 (10.0.0.1) or IPv6 (fd00::1)"}};
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
    IpAddress a;
    a.family = Family::v4;
    a.bytes[0] = static_cast<std::uint8_t>(host_order >> 24);
    a.bytes[1] = static_cast<std::uint8_t>(host_order >> 16);
    a.bytes[2] = static_cast<std::uint8_t>(host_order >> 8);
    a.bytes[3] = static_cast<std::uint8_t>(host_order);
    return a;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == Family::v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
    return buf;
}

DpResult<IpPrefix> IpPrefix::parse(std::string_view text) {
    auto slash = text.find('/');
    auto addr = IpAddress::parse(text.substr(0, slash));
    if (!addr) return Err{addr.error()};
    IpPrefix p;
    p.addr = *addr;
    const unsigned max_len = p.addr.family == IpAddress::Family::v4 ? 32 : 128;
    if (slash == std::string_view::npos) {
        p.len = static_cast<std::uint8_t>(max_len);
        return p;
    }
    auto len_text = text.substr(slash + 1);
    unsigned len = 0;
    auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (ec != std::errc{} || ptr != len_text.data() + len_text.size() || len_text.empty() ||
        len > max_len)
        return Err{DpError{DpErrc::invalid_argument, "bad prefix length in '" + std::string(text) +
                                                         "': expected 0.." +
                                                         std::to_string(max_len)}};
    p.len = static_cast<std::uint8_t>(len);
    // Host bits must be zero so that two spellings of one network compare equal.
    for (unsigned bit = len; bit < max_len; ++bit)
        if (p.addr.bytes[bit / 8] & (0x80u >> (bit % 8)))
            return Err{DpError{DpErrc::invalid_argument,
                               "prefix '" + std::string(text) +
                                   "' has host bits set: expected a network address"}};
    return p;
}

bool IpPrefix::contains(const IpAddress& a) const {
    if (a.family != addr.family) return false;
    const unsigned full = len / 8;
    for (unsigned i = 0; i < full; ++i)
        if (a.bytes[i] != addr.bytes[i]) return false;
    if (len % 8) {
        const std::uint8_t mask = static_cast<std::uint8_t>(0xff00u >> (len % 8));
        if ((a.bytes[full] & mask) != (addr.bytes[full] & mask)) return false;
    }
    return true;
}

std::string IpPrefix::to_string() const {
    return addr.to_string() + "/" + std::to_string(len);
}

}  // namespace qkd::dp
