#pragma once
// IKEv2 codepoints (RFC 7296 3, IANA "IKEv2 Parameters"; RFC 7383, 9242, 9370) and the
// layer's limits, in one place (STYLE.md habit 10).
#include <cstddef>
#include <cstdint>
#include <string>

#include "qkd/ike/types.hpp"

namespace qkd::ike::wire {

enum class ExchangeType : std::uint8_t {
    IkeSaInit = 34,
    IkeAuth = 35,
    CreateChildSa = 36,
    Informational = 37,
    IkeIntermediate = 43,  // RFC 9242
    IkeFollowupKe = 44,    // RFC 9370 2.2.3
};

enum class PayloadType : std::uint8_t {
    None = 0,
    Sa = 33,
    Ke = 34,
    IdI = 35,
    IdR = 36,
    Cert = 37,
    CertReq = 38,
    Auth = 39,
    Nonce = 40,
    Notify = 41,
    Delete = 42,
    VendorId = 43,
    TsI = 44,
    TsR = 45,
    Sk = 46,
    Cp = 47,
    Eap = 48,
    Skf = 53,  // RFC 7383
};

enum class ProtocolId : std::uint8_t { None = 0, Ike = 1, Ah = 2, Esp = 3 };

// RFC 7296 3.3.2; RFC 9370 2.2.1 renames type 4 "Key Exchange Method" and adds the Additional Key
// Exchange types 6..12 (ADDKE1..ADDKE7), which take the KE method IDs plus 0 = NONE (round optional).
enum class TransformType : std::uint8_t {
    Encr = 1,
    Prf = 2,
    Integ = 3,
    Ke = 4,
    Esn = 5,
    AddKe1 = 6,
    AddKe2 = 7,
    AddKe3 = 8,
    AddKe4 = 9,
    AddKe5 = 10,
    AddKe6 = 11,
    AddKe7 = 12,
};
inline constexpr std::size_t kMaxAdditionalKeTypes = 7;  // ADDKE1..ADDKE7
constexpr bool is_addke(TransformType t) { return t >= TransformType::AddKe1 && t <= TransformType::AddKe7; }
// ADDKE<n> for n = 1..7; the slot of an ADDKE type is static_cast<unsigned>(t) - 5.
constexpr TransformType addke_type(std::size_t n) { return static_cast<TransformType>(5 + n); }
constexpr std::size_t addke_slot(TransformType t) { return static_cast<std::size_t>(t) - 5; }

enum class AuthMethod : std::uint8_t { SharedKeyMic = 2 };

// RFC 7296 3.10.1 (error types < 16384, status types >= 16384).
enum class NotifyType : std::uint16_t {
    UnsupportedCriticalPayload = 1,
    InvalidIkeSpi = 4,
    InvalidMajorVersion = 5,
    InvalidSyntax = 7,
    InvalidMessageId = 9,
    InvalidSpi = 11,
    NoProposalChosen = 14,
    InvalidKePayload = 17,
    AuthenticationFailed = 24,
    SinglePairRequired = 34,
    NoAdditionalSas = 35,
    InternalAddressFailure = 36,
    FailedCpRequired = 37,
    TsUnacceptable = 38,
    InvalidSelectors = 39,
    TemporaryFailure = 43,
    ChildSaNotFound = 44,
    StateNotFound = 47,  // RFC 9370 2.2.4: IKE_FOLLOWUP_KE for a state the responder does not have
    InitialContact = 16384,
    SetWindowSize = 16385,
    AdditionalTsPossible = 16386,
    IpcompSupported = 16387,
    NatDetectionSourceIp = 16388,
    NatDetectionDestinationIp = 16389,
    Cookie = 16390,
    UseTransportMode = 16391,
    HttpCertLookupSupported = 16392,
    RekeySa = 16393,
    EspTfcPaddingNotSupported = 16394,
    NonFirstFragmentsAlso = 16395,
    FragmentationSupported = 16430,
    SignatureHashAlgorithms = 16431,
    UsePpk = 16435,                         // RFC 8784 (constants only)
    PpkIdentity = 16436,                    // RFC 8784
    NoPpkAuth = 16437,                      // RFC 8784
    IntermediateExchangeSupported = 16438,  // RFC 9242 3.1
    AdditionalKeyExchange = 16441,          // RFC 9370 2.2.2-2.2.4 (link data)
};

std::string to_string(ExchangeType t);
std::string to_string(PayloadType t);
std::string to_string(NotifyType t);
std::string to_string(TransformType t);

inline constexpr std::uint8_t kVersion = 0x20;       // major 2, minor 0
inline constexpr std::uint8_t kFlagInitiator = 0x08;  // RFC 7296 3.1
inline constexpr std::uint8_t kFlagVersion = 0x10;
inline constexpr std::uint8_t kFlagResponse = 0x20;
inline constexpr std::uint8_t kCritical = 0x80;

// Limits of this layer.
inline constexpr std::size_t kHeaderSize = 28;
inline constexpr std::size_t kPayloadHeaderSize = 4;
inline constexpr std::size_t kMaxMessageSize = 65535;   // reassembled message
inline constexpr std::size_t kMaxPayloads = 64;         // per message (plain + inner)
inline constexpr std::size_t kMaxProposals = 32;
inline constexpr std::size_t kMaxTransforms = 64;       // per proposal
using qkd::ike::kMaxTrafficSelectors;                  // per TS payload (types.hpp, shared with the config)
inline constexpr std::size_t kMaxDeleteSpis = 256;
inline constexpr std::size_t kMinNonce = 16, kMaxNonce = 256;  // RFC 7296 3.9
inline constexpr std::size_t kMaxFragments = 64;        // RFC 7383 2.6 (bounded reassembly)
// KE payload data: up to the largest method we know, the ML-KEM-1024 encapsulation key (FIPS 203
// Table 3); empty data is legal on the wire (a QKD method's responder sends none).
inline constexpr std::size_t kMaxKeData = 1568;
inline constexpr std::size_t kNonEspMarkerSize = 4;     // RFC 3948 2.2

}  // namespace qkd::ike::wire
