#pragma once
// Plain value types shared by the IKE engine and its users (daemon, CLI): addresses, endpoints,
// traffic selectors (RFC 7296 3.13.1) and identities (RFC 7296 3.5). No secrets here.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qkd::ike {

struct IpAddr {
    std::uint8_t family = 4;               // 4 or 6
    std::array<std::uint8_t, 16> bytes{};  // IPv4 uses bytes[0..3]

    static std::optional<IpAddr> parse(std::string_view text);  // "192.0.2.1" or "2001:db8::1"
    static IpAddr v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d);
    std::size_t size() const { return family == 4 ? 4 : 16; }
    std::string str() const;
    bool operator==(const IpAddr&) const = default;
};

struct Endpoint {
    IpAddr addr;
    std::uint16_t port = 500;
    std::string str() const;  // "192.0.2.1[500]"
    bool operator==(const Endpoint&) const = default;
};

// Traffic selectors per side (config, TSi/TSr payloads, narrowing results): the one limit for all of
// them. The wire allows 255 (one-octet count, RFC 7296 3.13); 64 IPv6 selectors are 2,564 octets
// per TS payload, which an SK message carries (fragmented, RFC 7383), and bound narrowing's work.
inline constexpr std::size_t kMaxTrafficSelectors = 64;

// RFC 7296 3.13.1: an address range, an IP protocol (0 = any) and a port range.
struct TrafficSelector {
    IpAddr start, end;
    std::uint8_t ip_proto = 0;
    std::uint16_t port_start = 0, port_end = 65535;

    // "10.1.0.0/16", "10.1.2.3" (= /32), "2001:db8::/32".
    static std::optional<TrafficSelector> parse_cidr(std::string_view text);
    std::string str() const;  // CIDR when the range is a prefix, else "a-b"
    bool operator==(const TrafficSelector&) const = default;
};

// RFC 7296 3.5 identification types.
enum class IdType : std::uint8_t { Ipv4 = 1, Fqdn = 2, Rfc822 = 3, Ipv6 = 5, KeyId = 11 };

struct Identity {
    IdType type = IdType::Fqdn;
    std::vector<std::uint8_t> data;
    // strongSwan conventions: "192.0.2.1" -> IPv4, "@host" or "host.example" -> FQDN,
    // "user@host" -> RFC822, "@#0a0b" -> KEY_ID (hex).
    static std::optional<Identity> parse(std::string_view text);
    std::string str() const;
    bool operator==(const Identity&) const = default;
};

}  // namespace qkd::ike
