// RFC 7296 3.11 Delete payload:
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Protocol ID   |   SPI Size    |          Num of SPIs          |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~               Security Parameter Index(es) (SPI)              ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// IKE: SPI size 0 and no SPIs (the header names the SA); ESP/AH: SPI size 4.
#include "payloads.hpp"

namespace qkd::ike::wire {

WireResult<DeletePayload> DeletePayload::decode(ByteReader& r) {
    DeletePayload d;
    auto proto = r.u8();
    auto spi_size = r.u8();
    auto count = r.u16();
    if (!r.ok()) return wire_err(WireErrc::Truncated, "Delete payload needs 4 octets");
    d.protocol = static_cast<ProtocolId>(*proto);
    if (d.protocol == ProtocolId::Ike) {
        if (*spi_size != 0 || *count != 0 || !r.empty())
            return wire_err(WireErrc::BadValue, "IKE Delete with SPI size " + std::to_string(*spi_size) + " and " +
                                                    std::to_string(*count) + " SPIs, expected 0 and 0");
        return d;
    }
    if (d.protocol != ProtocolId::Esp && d.protocol != ProtocolId::Ah)
        return wire_err(WireErrc::BadValue, "Delete protocol " + std::to_string(*proto) + ", expected 1, 2 or 3");
    if (*spi_size != 4) return wire_err(WireErrc::BadValue, "ESP Delete SPI size " + std::to_string(*spi_size) + ", expected 4");
    if (*count > kMaxDeleteSpis)
        return wire_err(WireErrc::TooMany, "Delete with " + std::to_string(*count) + " SPIs, at most " +
                                               std::to_string(kMaxDeleteSpis));
    for (unsigned i = 0; i < *count; ++i) {
        auto spi = r.u32();
        if (!spi) return wire_err(WireErrc::Truncated, "Delete payload shorter than its Num of SPIs");
        d.spis.push_back(*spi);
    }
    if (!r.expect_end()) return wire_err(WireErrc::BadLength, "octets after the last SPI of a Delete payload");
    return d;
}

void DeletePayload::encode(ByteWriter& w) const {
    w.u8(static_cast<std::uint8_t>(protocol));
    w.u8(protocol == ProtocolId::Ike ? 0 : 4);
    w.u16(static_cast<std::uint16_t>(spis.size()));
    for (auto s : spis) w.u32(s);
}

}  // namespace qkd::ike::wire
