// RFC 7296 3.8 Authentication payload:
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Auth Method   |                RESERVED                       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                      Authentication Data                      ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#include "payloads.hpp"

namespace qkd::ike::wire {

WireResult<AuthPayload> AuthPayload::decode(ByteReader& r) {
    AuthPayload a;
    auto method = r.u8();
    r.skip(3);
    if (!r.ok()) return wire_err(WireErrc::Truncated, "AUTH payload needs 4 octets before its data");
    a.method = static_cast<AuthMethod>(*method);
    auto data = r.rest();
    if (data.empty() || data.size() > 1024)
        return wire_err(WireErrc::BadLength, "AUTH data of " + std::to_string(data.size()) + " octets, expected 1..1024");
    a.data.assign(data.begin(), data.end());
    return a;
}

void AuthPayload::encode(ByteWriter& w) const {
    w.u8(static_cast<std::uint8_t>(method));
    w.zeros(3);
    w.bytes(data);
}

}  // namespace qkd::ike::wire
