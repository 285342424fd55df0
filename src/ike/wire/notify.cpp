// RFC 7296 3.10 Notify payload:
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |  Protocol ID  |   SPI Size    |      Notify Message Type      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                Security Parameter Index (SPI)                 ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       Notification Data                       ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#include "payloads.hpp"

namespace qkd::ike::wire {

WireResult<NotifyPayload> NotifyPayload::decode(ByteReader& r) {
    NotifyPayload n;
    auto proto = r.u8();
    auto spi_size = r.u8();
    auto type = r.u16();
    if (!r.ok()) return wire_err(WireErrc::Truncated, "Notify payload needs 4 octets before its SPI");
    if (*spi_size != 0 && *spi_size != 4 && *spi_size != 8)
        return wire_err(WireErrc::BadValue, "Notify SPI size " + std::to_string(*spi_size) + ", expected 0, 4 or 8");
    auto spi = r.bytes(*spi_size);
    if (!spi) return wire_err(WireErrc::Truncated, "Notify SPI truncated");
    n.protocol = static_cast<ProtocolId>(*proto);
    n.type = static_cast<NotifyType>(*type);
    n.spi.assign(spi->begin(), spi->end());
    auto data = r.rest();
    n.data.assign(data.begin(), data.end());
    return n;
}

void NotifyPayload::encode(ByteWriter& w) const {
    w.u8(static_cast<std::uint8_t>(protocol));
    w.u8(static_cast<std::uint8_t>(spi.size()));
    w.u16(static_cast<std::uint16_t>(type));
    w.bytes(spi);
    w.bytes(data);
}

}  // namespace qkd::ike::wire
