#pragma once
// Decoded IKEv2 payload bodies (after the 4-octet generic payload header, RFC 7296 3.2).
// Each payload's decode/encode lives in its own file with the RFC diagram beside it.
// Decoders only read through ByteReader and never touch SA state (STYLE.md habit 5).
#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "constants.hpp"
#include "error.hpp"
#include "qkd/common/bytes.hpp"
#include "qkd/ike/types.hpp"

namespace qkd::ike::wire {

// RFC 7296 3.3 Security Association payload.
struct Transform {
    TransformType type = TransformType::Encr;
    std::uint16_t id = 0;
    std::optional<std::uint16_t> key_length;  // attribute 14 (TV)
    bool operator==(const Transform&) const = default;
};
struct Proposal {
    std::uint8_t number = 1;
    ProtocolId protocol = ProtocolId::Ike;
    std::vector<std::uint8_t> spi;  // 0 (IKE_SA_INIT), 4 (ESP) or 8 (IKE rekey) octets
    std::vector<Transform> transforms;
};
struct SaPayload {
    std::vector<Proposal> proposals;
    static WireResult<SaPayload> decode(ByteReader& r);
    void encode(ByteWriter& w) const;
};

// RFC 7296 3.4 Key Exchange payload.
struct KePayload {
    std::uint16_t group = 0;
    std::vector<std::uint8_t> data;
    static WireResult<KePayload> decode(ByteReader& r);
    void encode(ByteWriter& w) const;
};

// RFC 7296 3.5 Identification payloads (IDi, IDr). `body` keeps the octets the AUTH covers.
struct IdPayload {
    Identity id;
    static WireResult<IdPayload> decode(ByteReader& r);
    void encode(ByteWriter& w) const;
    std::vector<std::uint8_t> body() const;  // RestOfIDPayload (RFC 7296 2.15)
};

// RFC 7296 3.8 Authentication payload.
struct AuthPayload {
    AuthMethod method = AuthMethod::SharedKeyMic;
    std::vector<std::uint8_t> data;
    static WireResult<AuthPayload> decode(ByteReader& r);
    void encode(ByteWriter& w) const;
};

// RFC 7296 3.9 Nonce payload.
struct NoncePayload {
    std::vector<std::uint8_t> data;
    static WireResult<NoncePayload> decode(ByteReader& r);
    void encode(ByteWriter& w) const;
};

// RFC 7296 3.10 Notify payload.
struct NotifyPayload {
    ProtocolId protocol = ProtocolId::None;
    NotifyType type = NotifyType::InitialContact;
    std::vector<std::uint8_t> spi;
    std::vector<std::uint8_t> data;
    static WireResult<NotifyPayload> decode(ByteReader& r);
    void encode(ByteWriter& w) const;
    bool is_error() const { return static_cast<std::uint16_t>(type) < 16384; }
};

// RFC 7296 3.11 Delete payload.
struct DeletePayload {
    ProtocolId protocol = ProtocolId::Ike;
    std::vector<std::uint32_t> spis;  // ESP SPIs; empty for IKE
    static WireResult<DeletePayload> decode(ByteReader& r);
    void encode(ByteWriter& w) const;
};

// RFC 7296 3.13 Traffic Selector payloads (TSi, TSr).
struct TsPayload {
    std::vector<TrafficSelector> selectors;
    static WireResult<TsPayload> decode(ByteReader& r);
    void encode(ByteWriter& w) const;
};

// RFC 7383 2.5 Encrypted Fragment header fields (the encrypted body follows).
struct FragmentInfo {
    std::uint16_t number = 1, total = 1;
};

// Payloads we carry but do not interpret (VID, CERTREQ, CP in responses, ...).
struct OpaquePayload {
    std::vector<std::uint8_t> data;
};

using PayloadBody = std::variant<SaPayload, KePayload, IdPayload, AuthPayload, NoncePayload, NotifyPayload,
                                 DeletePayload, TsPayload, OpaquePayload>;

struct Payload {
    PayloadType type = PayloadType::None;
    bool critical = false;
    PayloadBody body;
};

}  // namespace qkd::ike::wire
