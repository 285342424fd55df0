// RFC 7296 3.4 Key Exchange payload (RFC 9370 renames "Diffie-Hellman Group Num" to KE Method):
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   Key Exchange Method Num     |           RESERVED            |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       Key Exchange Data                       ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// The data length is checked against the method by the key exchange (crypto::check_peer_data; it
// may be empty for the QKD method of the next step), so the decoder only bounds it: at most
// kMaxKeData, the ML-KEM-1024 encapsulation key (draft-ietf-ipsecme-ikev2-mlkem).
#include "payloads.hpp"

namespace qkd::ike::wire {

WireResult<KePayload> KePayload::decode(ByteReader& r) {
    KePayload ke;
    auto group = r.u16();
    r.skip(2);
    if (!r.ok()) return wire_err(WireErrc::Truncated, "KE payload needs 4 octets before its data");
    ke.group = *group;
    if (r.remaining() > kMaxKeData)
        return wire_err(WireErrc::BadLength, "KE data of " + std::to_string(r.remaining()) + " octets, expected at most " +
                                                 std::to_string(kMaxKeData) + " (ML-KEM-1024)");
    auto data = r.rest();
    ke.data.assign(data.begin(), data.end());
    return ke;
}

void KePayload::encode(ByteWriter& w) const {
    w.u16(group);
    w.u16(0);
    w.bytes(data);
}

}  // namespace qkd::ike::wire
