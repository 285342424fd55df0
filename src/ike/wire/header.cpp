#include "header.hpp"

namespace qkd::ike::wire {

WireResult<Header> Header::decode(std::span<const std::uint8_t> datagram) {
    ByteReader r(datagram);
    Header h;
    auto spi_i = r.u64();
    auto spi_r = r.u64();
    auto np = r.u8();
    auto ver = r.u8();
    auto ex = r.u8();
    auto flags = r.u8();
    auto mid = r.u32();
    auto len = r.u32();
    if (!r.ok())
        return wire_err(WireErrc::Truncated,
                        "IKE header needs 28 octets, datagram has " + std::to_string(datagram.size()));
    if ((*ver >> 4) != 2)
        return wire_err(WireErrc::BadVersion, "IKE major version " + std::to_string(*ver >> 4) + ", expected 2");
    if (*len != datagram.size())
        return wire_err(WireErrc::BadLength, "IKE header Length " + std::to_string(*len) + " but datagram has " +
                                                 std::to_string(datagram.size()) + " octets");
    h.spi_i = *spi_i;
    h.spi_r = *spi_r;
    h.next_payload = static_cast<PayloadType>(*np);
    h.version = *ver;
    h.exchange = static_cast<ExchangeType>(*ex);
    h.flags = *flags;
    h.message_id = *mid;
    h.length = *len;
    return h;
}

void Header::encode(ByteWriter& w) const {
    w.u64(spi_i);
    w.u64(spi_r);
    w.u8(static_cast<std::uint8_t>(next_payload));
    w.u8(version);
    w.u8(static_cast<std::uint8_t>(exchange));
    w.u8(flags);
    w.u32(message_id);
    w.u32(length);
}

bool peek_spis(std::span<const std::uint8_t> datagram, std::uint64_t& spi_i, std::uint64_t& spi_r) {
    ByteReader r(datagram);
    auto a = r.u64();
    auto b = r.u64();
    if (!a || !b) return false;
    spi_i = *a;
    spi_r = *b;
    return true;
}

}  // namespace qkd::ike::wire
