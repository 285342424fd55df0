#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "qkd/common/encoding.hpp"
#include "qkd/ike/types.hpp"

namespace qkd::ike {

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
    if (text.size() > 45) return std::nullopt;
    std::string s(text);
    IpAddr a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
        a.family = 4;
        return a;
    }
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
        a.family = 6;
        return a;
    }
    return std::nullopt;
}

IpAddr IpAddr::v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    IpAddr ip;
    ip.family = 4;
    ip.bytes[0] = a;
    ip.bytes[1] = b;
    ip.bytes[2] = c;
    ip.bytes[3] = d;
    return ip;
}

std::string IpAddr::str() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == 4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
    return buf;
}

std::string Endpoint::str() const { return addr.str() + "[" + std::to_string(port) + "]"; }

std::optional<TrafficSelector> TrafficSelector::parse_cidr(std::string_view text) {
    const auto slash = text.find('/');
    auto addr = IpAddr::parse(text.substr(0, slash));
    if (!addr) return std::nullopt;
    const unsigned bits = addr->family == 4 ? 32 : 128;
    unsigned prefix = bits;
    if (slash != std::string_view::npos) {
        auto p = text.substr(slash + 1);
        auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
        if (ec != std::errc() || ptr != p.data() + p.size() || prefix > bits) return std::nullopt;
    }
    TrafficSelector ts;
    ts.start = ts.end = *addr;
    for (unsigned i = 0; i < bits / 8; ++i) {
        const unsigned keep = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? prefix - i * 8 : 0;
        const std::uint8_t mask = static_cast<std::uint8_t>(keep == 0 ? 0 : 0xFF << (8 - keep));
        ts.start.bytes[i] = addr->bytes[i] & mask;
        ts.end.bytes[i] = static_cast<std::uint8_t>(addr->bytes[i] | ~mask);
    }
    return ts;
}

std::string TrafficSelector::str() const {
    // A prefix when start..end is one; else a range.
    const unsigned n = static_cast<unsigned>(start.size());
    unsigned prefix = 0;
    bool is_prefix = true, in_host = false;
    for (unsigned i = 0; i < n * 8; ++i) {
        const bool s = start.bytes[i / 8] >> (7 - i % 8) & 1, e = end.bytes[i / 8] >> (7 - i % 8) & 1;
        if (!in_host) {
            if (s == e) {
                ++prefix;
                continue;
            }
            in_host = true;
        }
        if (s != 0 || e != 1) is_prefix = false;
    }
    std::string out = is_prefix ? start.str() + "/" + std::to_string(prefix) : start.str() + "-" + end.str();
    if (ip_proto != 0 || port_start != 0 || port_end != 65535) {
        // Appended piecewise: GCC 12 -O3 warns (falsely, -Wrestrict) on "lit" + std::string here.
        out += '[';
        out += std::to_string(ip_proto);
        if (port_start != 0 || port_end != 65535) {
            out += '/';
            out += std::to_string(port_start);
            if (port_end != port_start) {
                out += '-';
                out += std::to_string(port_end);
            }
        }
        out += ']';
    }
    return out;
}

std::optional<Identity> Identity::parse(std::string_view text) {
    if (text.empty() || text.size() > 255) return std::nullopt;
    Identity id;
    if (text.starts_with("@#")) {
        auto raw = hex_decode(text.substr(2));
        if (!raw || raw->empty()) return std::nullopt;
        id.type = IdType::KeyId;
        id.data = *raw;
        return id;
    }
    if (auto ip = IpAddr::parse(text)) {
        id.type = ip->family == 4 ? IdType::Ipv4 : IdType::Ipv6;
        id.data.assign(ip->bytes.begin(), ip->bytes.begin() + ip->size());
        return id;
    }
    if (text.front() == '@') {
        text.remove_prefix(1);
        if (text.empty()) return std::nullopt;
        id.type = IdType::Fqdn;
    } else {
        id.type = text.find('@') != std::string_view::npos ? IdType::Rfc822 : IdType::Fqdn;
    }
    id.data.assign(text.begin(), text.end());
    return id;
}

std::string Identity::str() const {
    switch (type) {
        case IdType::Ipv4:
        case IdType::Ipv6: {
            IpAddr a;
            a.family = type == IdType::Ipv4 ? 4 : 6;
            std::memcpy(a.bytes.data(), data.data(), std::min(data.size(), a.size()));
            return a.str();
        }
        case IdType::KeyId: return "@#" + hex_encode(data);
        default: {
            std::string s;
            for (auto c : data) s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
            return s;
        }
    }
}

}  // namespace qkd::ike
