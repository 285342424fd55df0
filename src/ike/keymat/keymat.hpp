#pragma once
// IKEv2 key derivation: SKEYSEED and the IKE SA keys (RFC 7296 2.14), IKE SA rekey (2.18),
// child SA KEYMAT (2.17), PSK AUTH (2.15), with the RFC 9370 additional key exchanges
// (SKEYSEED(n) after each IKE_INTERMEDIATE, SK(1..n) in rekeys and child KEYMAT) and the RFC 9242
// IntAuth chain bound into AUTH.
#include <cstdint>
#include <span>

#include "qkd/common/result.hpp"
#include "qkd/common/secret.hpp"
#include "qkd/crypto/prf.hpp"

namespace qkd::ike::keymat {

using Bytes = std::span<const std::uint8_t>;

struct IkeKeys {
    SecretBytes sk_d, sk_ei, sk_er, sk_pi, sk_pr;  // AEAD: no SK_a; SK_e = key | 4-octet salt
};

// Key material of one ESP SA direction (RFC 4106 8.1: key | salt).
struct EspKey {
    SecretBytes key, salt;
};
struct ChildKeys {
    EspKey i_to_r, r_to_i;  // "initiator" = initiator of the exchange that created the child SA
};

// RFC 7296 2.14: SKEYSEED = prf(Ni | Nr, g^ir)
SecretBytes skeyseed_initial(crypto::Prf& prf, Bytes ni, Bytes nr, const SecretBytes& g_ir);
// RFC 7296 2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr); with RFC 9370 2.2.4 additional
// exchanges (IKE_FOLLOWUP_KE): prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n)).
SecretBytes skeyseed_rekey(crypto::Prf& prf, const SecretBytes& sk_d_old, const SecretBytes& g_ir, Bytes ni, Bytes nr,
                           std::span<const SecretBytes* const> adds = {});
// RFC 9370 2.2.2: SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
SecretBytes skeyseed_addke(crypto::Prf& prf, const SecretBytes& sk_d_prev, const SecretBytes& sk_n, Bytes ni, Bytes nr);

// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
// encr_key_len includes the 4-octet GCM salt.
Result<IkeKeys, crypto::CryptoError> derive_ike_keys(crypto::Prf& prf, const SecretBytes& skeyseed, Bytes ni, Bytes nr,
                                                     std::uint64_t spi_i, std::uint64_t spi_r, std::size_t encr_key_len);

// RFC 7296 2.17: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); the i->r direction's keys come first.
// RFC 9370 2.2.4: with additional exchanges prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)).
Result<ChildKeys, crypto::CryptoError> derive_child_keys(crypto::Prf& prf, const SecretBytes& sk_d,
                                                         const SecretBytes* g_ir, Bytes ni, Bytes nr,
                                                         std::size_t key_len, std::span<const SecretBytes* const> adds = {});

// RFC 9242 3.3.2: IntAuth_N = prf(SK_p, IntAuth_(N-1) | IntAuth_N_A | IntAuth_N_P), SK_pi for the
// initiator's messages and SK_pr for the responder's, with the keys protecting that exchange;
// `a_p` is the message as if unencrypted and unfragmented (int_auth_octets in tasks/).
SecretBytes int_auth(crypto::Prf& prf, const SecretBytes& sk_p, Bytes prev, Bytes a_p);

// RFC 7296 2.15: AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>), where
// SignedOctets = RealMessage | NoncePeerData | prf(SK_p, RestOfIDPayload); after IKE_INTERMEDIATE
// exchanges RFC 9242 3.3.3 appends int_auth_tail = IntAuth_i | IntAuth_r | IKE_AUTH_MID (4 octets).
SecretBytes psk_auth(crypto::Prf& prf, const SecretBytes& psk, Bytes real_message, Bytes nonce_peer,
                     const SecretBytes& sk_p, Bytes id_body, Bytes int_auth_tail = {});

}  // namespace qkd::ike::keymat
