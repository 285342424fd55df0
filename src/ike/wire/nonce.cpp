// RFC 7296 3.9 Nonce payload:
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                            Nonce Data                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// "The size of the Nonce Data MUST be between 16 and 256 octets, inclusive."
#include "payloads.hpp"

namespace qkd::ike::wire {

WireResult<NoncePayload> NoncePayload::decode(ByteReader& r) {
    auto data = r.rest();
    if (data.size() < kMinNonce || data.size() > kMaxNonce)
        return wire_err(WireErrc::BadLength, "nonce of " + std::to_string(data.size()) + " octets, expected 16..256");
    return NoncePayload{{data.begin(), data.end()}};
}

void NoncePayload::encode(ByteWriter& w) const { w.bytes(data); }

}  // namespace qkd::ike::wire
