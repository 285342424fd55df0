// RFC 7296 3.5 Identification payloads (IDi 35, IDr 36):
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   ID Type     |                 RESERVED                      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                   Identification Data                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// The AUTH payload covers the octets after the generic header (RestOfIDPayload, 2.15); the
// engine MACs a re-encoding with RESERVED = 0, as 3.5 requires senders to set it.
#include "payloads.hpp"

namespace qkd::ike::wire {

WireResult<IdPayload> IdPayload::decode(ByteReader& r) {
    IdPayload p;
    auto type = r.u8();
    r.skip(3);
    if (!r.ok()) return wire_err(WireErrc::Truncated, "ID payload needs 4 octets before its data");
    const auto t = *type;
    auto data = r.rest();
    if (t != 1 && t != 2 && t != 3 && t != 5 && t != 11 && t != 9)
        return wire_err(WireErrc::BadValue, "ID type " + std::to_string(t) + ", expected 1, 2, 3, 5, 9 or 11");
    if ((t == 1 && data.size() != 4) || (t == 5 && data.size() != 16))
        return wire_err(WireErrc::BadLength, "ID type " + std::to_string(t) + " with " + std::to_string(data.size()) +
                                                 " octets of address");
    if (data.empty()) return wire_err(WireErrc::BadLength, "empty identification data");
    p.id.type = static_cast<IdType>(t);
    p.id.data.assign(data.begin(), data.end());
    return p;
}

void IdPayload::encode(ByteWriter& w) const {
    w.u8(static_cast<std::uint8_t>(id.type));
    w.zeros(3);
    w.bytes(id.data);
}

std::vector<std::uint8_t> IdPayload::body() const {
    ByteWriter w;
    encode(w);
    return w.take();
}

}  // namespace qkd::ike::wire
