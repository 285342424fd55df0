#include "qkd/dataplane/inner_packet.hpp"

#include <algorithm>

#include "qkd/common/bytes.hpp"

namespace qkd::dp {

std::optional<InnerPacket> parse_inner_packet(std::span<const std::uint8_t> pkt) {
    ByteReader r(pkt);
    auto first = r.u8();
    if (!first) return std::nullopt;
    InnerPacket p;
    const unsigned version = *first >> 4;
    if (version == 4) {
        // RFC 791 3.1: IHL counts 32-bit words and is at least 5.
        const unsigned ihl = (*first & 0x0f) * 4u;
        r.skip(1);             // TOS
        auto total = r.u16();  // total length
        r.skip(5);             // id, flags/fragment offset, TTL
        auto proto = r.u8();
        r.skip(2);  // checksum
        auto src = r.bytes(4);
        auto dst = r.bytes(4);
        if (!r.ok() || ihl < 20 || ihl > pkt.size() || *total != pkt.size()) return std::nullopt;
        p.src.family = p.dst.family = IpAddress::Family::v4;
        std::copy(src->begin(), src->end(), p.src.bytes.begin());
        std::copy(dst->begin(), dst->end(), p.dst.bytes.begin());
        p.protocol = *proto;
        p.next_header = next_header_ipv4_inner;
        return p;
    }
    if (version == 6) {
        // RFC 8200 3: fixed 40-octet header; Payload Length excludes it.
        r.skip(3);
        auto payload_len = r.u16();
        auto nh = r.u8();
        r.skip(1);  // hop limit
        auto src = r.bytes(16);
        auto dst = r.bytes(16);
        if (!r.ok() || *payload_len + 40u != pkt.size()) return std::nullopt;
        p.src.family = p.dst.family = IpAddress::Family::v6;
        std::copy(src->begin(), src->end(), p.src.bytes.begin());
        std::copy(dst->begin(), dst->end(), p.dst.bytes.begin());
        p.protocol = *nh;
        p.next_header = next_header_ipv6_inner;
        return p;
    }
    return std::nullopt;
}

bool selector_matches_out(const TrafficSelector& ts, const InnerPacket& p) {
    return ts.local.contains(p.src) && ts.remote.contains(p.dst) &&
           (ts.protocol == 0 || ts.protocol == p.protocol);
}

bool selector_matches_in(const TrafficSelector& ts, const InnerPacket& p) {
    return ts.remote.contains(p.src) && ts.local.contains(p.dst) &&
           (ts.protocol == 0 || ts.protocol == p.protocol);
}

bool any_selector_matches_in(const std::vector<TrafficSelector>& ts, const InnerPacket& p) {
    return std::any_of(ts.begin(), ts.end(),
                       [&](const TrafficSelector& t) { return selector_matches_in(t, p); });
}

}  // namespace qkd::dp
