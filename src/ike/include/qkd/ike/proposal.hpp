#pragma once
// IKE and ESP proposals from the strings strongSwan users know, e.g.
// "aes256gcm16-prfsha512-ecp521" (IKE) and "aes256gcm16-ecp521-esn" (ESP, with PFS group).
// Several proposals may be given separated by ','; each proposal may list several algorithms
// of one type ("aes256gcm16-aes128gcm16-prfsha512-prfsha256-ecp521-ecp384").
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

struct IkeProposal {
    std::vector<EncrAlg> encr;
    std::vector<crypto::PrfAlg> prf;
    std::vector<crypto::KeGroup> ke;  // at least one
};

struct EspProposal {
    std::vector<EncrAlg> encr;
    std::vector<crypto::KeGroup> ke;  // empty = no PFS
    std::vector<bool> esn{false};     // ESN transform values offered, in preference order
};

enum class ProposalErrc { Empty, UnknownToken, Missing };
using ProposalError = qkd::Error<ProposalErrc>;

Result<std::vector<IkeProposal>, ProposalError> parse_ike_proposals(std::string_view text);
Result<std::vector<EspProposal>, ProposalError> parse_esp_proposals(std::string_view text);

// Inverse of the parsers for one selected set: "aes256gcm16-prfsha512-ecp521".
std::string ike_proposal_string(EncrAlg e, crypto::PrfAlg p, crypto::KeGroup g);
std::string esp_proposal_string(EncrAlg e, crypto::KeGroup pfs, bool esn);

// For `qkdgate show ike-sa`: "PSK/DH21/AES256-GCM16" (later "PSK/DH21+QKD/AES256-GCM16/COMBINED").
std::string algorithm_string(EncrAlg e, crypto::KeGroup g);
// For `show child-sa`: "AES256-GCM16" or "AES256-GCM16/DH21" with PFS.
std::string esp_algorithm_string(EncrAlg e, crypto::KeGroup pfs);

}  // namespace qkd::ike
