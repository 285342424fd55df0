#pragma once
// The few fields of an inner IPv4/IPv6 packet the tunnel needs (selector checks, SPD lookup),
// parsed with the bounded reader. Extension headers are not walked: `protocol` is the IPv6
// Next Header field.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "qkd/dataplane/dataplane.hpp"

namespace qkd::dp {

inline constexpr std::uint8_t next_header_ipv4_inner = 4;
inline constexpr std::uint8_t next_header_ipv6_inner = 41;

struct InnerPacket {
    IpAddress src;
    IpAddress dst;
    std::uint8_t protocol = 0;
    std::uint8_t next_header = 0;  // ESP next header for this packet: 4 or 41
};

// Checks version, header length and that the IP total length equals the buffer length.
std::optional<InnerPacket> parse_inner_packet(std::span<const std::uint8_t> pkt);

// Outbound direction: src in ts.local, dst in ts.remote. Inbound: the mirror.
bool selector_matches_out(const TrafficSelector& ts, const InnerPacket& p);
bool selector_matches_in(const TrafficSelector& ts, const InnerPacket& p);
bool any_selector_matches_in(const std::vector<TrafficSelector>& ts, const InnerPacket& p);

}  // namespace qkd::dp
