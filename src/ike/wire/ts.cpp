// RFC 7296 3.13 Traffic Selector payload and 3.13.1 Traffic Selector substructure:
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Number of TSs |                 RESERVED                      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       <Traffic Selectors>                     ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   TS Type     |IP Protocol ID*|       Selector Length         |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |           Start Port*         |           End Port*           |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                         Starting Address*                     ~
// ~                         Ending Address*                       ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// TS_IPV4_ADDR_RANGE = 7 (length 16), TS_IPV6_ADDR_RANGE = 8 (length 40).
#include "payloads.hpp"

#include <algorithm>

namespace qkd::ike::wire {
namespace {
constexpr std::uint8_t kTsIpv4 = 7, kTsIpv6 = 8;
}

WireResult<TsPayload> TsPayload::decode(ByteReader& r) {
    TsPayload p;
    auto count = r.u8();
    r.skip(3);
    if (!r.ok()) return wire_err(WireErrc::Truncated, "TS payload needs 4 octets before its selectors");
    if (*count == 0 || *count > kMaxTrafficSelectors)
        return wire_err(WireErrc::BadValue, "TS payload with " + std::to_string(*count) + " selectors, expected 1.." +
                                                std::to_string(kMaxTrafficSelectors));
    for (unsigned i = 0; i < *count; ++i) {
        auto type = r.u8();
        auto proto = r.u8();
        auto len = r.u16();
        auto sp = r.u16();
        auto ep = r.u16();
        if (!r.ok()) return wire_err(WireErrc::Truncated, "traffic selector " + std::to_string(i + 1) + " truncated");
        const std::size_t alen = *type == kTsIpv4 ? 4 : *type == kTsIpv6 ? 16 : 0;
        if (!alen) return wire_err(WireErrc::BadValue, "TS type " + std::to_string(*type) + ", expected 7 or 8");
        if (*len != 8 + 2 * alen)
            return wire_err(WireErrc::BadLength, "TS type " + std::to_string(*type) + " with Selector Length " +
                                                     std::to_string(*len) + ", expected " + std::to_string(8 + 2 * alen));
        auto a = r.bytes(alen);
        auto b = r.bytes(alen);
        if (!a || !b) return wire_err(WireErrc::Truncated, "traffic selector addresses truncated");
        TrafficSelector ts;
        ts.ip_proto = *proto;
        ts.port_start = *sp;
        ts.port_end = *ep;
        ts.start.family = ts.end.family = alen == 4 ? 4 : 6;
        std::copy(a->begin(), a->end(), ts.start.bytes.begin());
        std::copy(b->begin(), b->end(), ts.end.bytes.begin());
        p.selectors.push_back(ts);
    }
    if (!r.expect_end()) return wire_err(WireErrc::BadLength, "octets after the last traffic selector");
    return p;
}

void TsPayload::encode(ByteWriter& w) const {
    w.u8(static_cast<std::uint8_t>(selectors.size()));
    w.zeros(3);
    for (const auto& ts : selectors) {
        const std::size_t alen = ts.start.size();
        w.u8(alen == 4 ? kTsIpv4 : kTsIpv6);
        w.u8(ts.ip_proto);
        w.u16(static_cast<std::uint16_t>(8 + 2 * alen));
        w.u16(ts.port_start);
        w.u16(ts.port_end);
        w.bytes(std::span(ts.start.bytes.data(), alen));
        w.bytes(std::span(ts.end.bytes.data(), alen));
    }
}

}  // namespace qkd::ike::wire
