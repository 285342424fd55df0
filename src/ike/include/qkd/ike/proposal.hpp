#pragma once
// IKE and ESP proposals from the strings strongSwan users know, e.g.
// "aes256gcm16-prfsha512-ecp521" (IKE) and "aes256gcm16-ecp521-esn" (ESP, with PFS group).
// Several proposals may be given separated by ','; each proposal may list several algorithms
// of one type ("aes256gcm16-aes128gcm16-prfsha512-prfsha256-ecp521-ecp384").
// RFC 9370 additional key exchanges as strongSwan 6 writes them: "ke<n>_<method>" for ADDKE<n>
// (n = 1..7), e.g. "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_mlkem1024"; "ke<n>_none" makes
// round n optional ("ke1_mlkem768-ke1_none"); "mlkem768" alone in the KE slot is a PQ-only SA.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qkd/common/error.hpp"
#include "qkd/common/result.hpp"
#include "qkd/crypto/ke.hpp"
#include "qkd/crypto/prf.hpp"

namespace qkd::ike {

// RFC 7296 3.3.2 Transform Type 1 IDs we implement.
enum class EncrId : std::uint16_t { AesGcm16 = 20 };

struct EncrAlg {
    EncrId id = EncrId::AesGcm16;
    std::uint16_t key_bits = 256;  // 128 or 256
    bool operator==(const EncrAlg&) const = default;
};

// RFC 9370 2.2.1: Transform Types 6..12, ADDKE1..ADDKE7.
inline constexpr std::size_t kMaxAdditionalKe = 7;
// The methods offered for ADDKE1..7, in preference order; an empty slot is not offered, and
// KeGroup::None in a slot makes that round optional (Transform ID NONE on the wire).
using AdditionalKe = std::array<std::vector<crypto::KeGroup>, kMaxAdditionalKe>;
// The methods negotiated for ADDKE1..7; None = no round for that slot.
using AdditionalKeChoice = std::array<crypto::KeGroup, kMaxAdditionalKe>;

struct IkeProposal {
    std::vector<EncrAlg> encr;
    std::vector<crypto::PrfAlg> prf;
    std::vector<crypto::KeGroup> ke;  // at least one
    AdditionalKe addke{};
};

struct EspProposal {
    std::vector<EncrAlg> encr;
    std::vector<crypto::KeGroup> ke;  // empty = no PFS
    std::vector<bool> esn{false};     // ESN transform values offered, in preference order
    AdditionalKe addke{};             // only with PFS (CREATE_CHILD_SA + IKE_FOLLOWUP_KE)
};

enum class ProposalErrc { Empty, UnknownToken, Missing };
using ProposalError = qkd::Error<ProposalErrc>;

Result<std::vector<IkeProposal>, ProposalError> parse_ike_proposals(std::string_view text);
Result<std::vector<EspProposal>, ProposalError> parse_esp_proposals(std::string_view text);

// Inverse of the parsers for one selected set: "aes256gcm16-prfsha512-ecp521", with the additional
// exchanges in order: "aes256gcm16-prfsha512-ecp521-ke1_mlkem768".
std::string ike_proposal_string(EncrAlg e, crypto::PrfAlg p, crypto::KeGroup g, const AdditionalKeChoice& addke = {});
std::string esp_proposal_string(EncrAlg e, crypto::KeGroup pfs, bool esn, const AdditionalKeChoice& addke = {});

// For `qkdgate show ike-sa`: "PSK/DH21/AES256-GCM16", every additional exchange in order
// "PSK/DH21+MLKEM768/AES256-GCM16", ML-KEM alone "PSK/MLKEM768/AES256-GCM16".
std::string algorithm_string(EncrAlg e, crypto::KeGroup g, const AdditionalKeChoice& addke = {});
// For `show child-sa`: "AES256-GCM16", "AES256-GCM16/DH21" with PFS, "AES256-GCM16/DH21+MLKEM768".
std::string esp_algorithm_string(EncrAlg e, crypto::KeGroup pfs, const AdditionalKeChoice& addke = {});
// One method as operators read it: "DH21", "MLKEM768".
std::string ke_method_label(crypto::KeGroup g);

}  // namespace qkd::ike
