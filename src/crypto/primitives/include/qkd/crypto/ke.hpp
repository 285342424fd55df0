#pragma once
// IKEv2 key exchange methods (RFC 7296 3.3.2 Transform Type 4, RFC 9370 "Key Exchange Method"):
// 14 = 2048-bit MODP (RFC 3526), 19/20/21 = ECP-256/384/521 (RFC 5903), 31 = Curve25519 (RFC 8031)
// over OpenSSL EVP_PKEY, and 35/36/37 = ML-KEM-512/768/1024 (draft-ietf-ipsecme-ikev2-mlkem) over
// the project's FIPS 203 code (qkd_mlkem; Debian 12's OpenSSL 3.0 has no ML-KEM).
//
// Diffie-Hellman is symmetric; a KEM is not, so the API names the roles:
//   initiator  generate(g) -> public_value()  [DH: g^x; ML-KEM: the encapsulation key ek]
//   responder  respond(g, initiator's data)   -> {our data, secret}  [DH: g^y, g^xy; ML-KEM: c, K]
//   initiator  derive(responder's data)       -> secret              [DH: g^xy; ML-KEM: Decaps(dk, c)]
// Encodings: MODP y padded to the prime length, ECP x | y without the 0x04 prefix, X25519 the raw
// 32 bytes, ML-KEM ek / c as in FIPS 203. Shared secrets: MODP g^xy padded, ECP x only, ML-KEM K.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/common/secret.hpp"
#include "qkd/crypto/error.hpp"

namespace qkd::crypto {

enum class KeGroup : std::uint16_t {
    None = 0,
    Modp2048 = 14,
    Ecp256 = 19,
    Ecp384 = 20,
    Ecp521 = 21,
    Curve25519 = 31,
    MlKem512 = 35,
    MlKem768 = 36,
    MlKem1024 = 37,
    // QKD as a key exchange (pattern C of shared/docs/ike.md 1, the QURSA strongSwan plugin's
    // private-use ID): no primitive here; the IKE layer gets the key from the daemon's KME client.
    Qkd = 65516,
};

bool ke_supported(std::uint16_t id);
// A KEM (the two directions carry different data) rather than a Diffie-Hellman group.
bool ke_is_kem(KeGroup g);
// Length of the KE payload data the initiator sends (from_initiator) or the responder sends:
// DH the same both ways; ML-KEM ek (800/1184/1568) from the initiator, c (768/1088/1568) back.
std::size_t ke_data_size(KeGroup g, bool from_initiator);
// The initiator's data length (kept for existing callers): ke_data_size(g, true).
std::size_t ke_public_size(KeGroup g);

// Cheap validity check of a peer's KE data, meant to run before any expensive step (key
// generation, derivation, encapsulation), so floods of bad KE payloads cost little: exact length
// for every method, the FIPS 203 7.2 modulus check of an ML-KEM encapsulation key, and for MODP /
// ECP the range / on-curve check (RFC 7296 5.12, no key generation). X25519 values are only
// length-checked (RFC 7748 accepts any 32 bytes; an all-zero result is refused by derive/respond).
// Errors: Unsupported for an unknown method, InvalidPeerValue otherwise (the engine answers
// INVALID_SYNTAX).
Result<void, CryptoError> check_peer_data(KeGroup g, std::span<const std::uint8_t> data, bool from_initiator);

// What a responder sends back and keeps.
struct KeResponse {
    std::vector<std::uint8_t> public_data;  // KEr data: DH g^y, ML-KEM ciphertext c
    SecretBytes shared_secret;              // DH g^xy, ML-KEM K
};

class KeyExchange {
public:
    ~KeyExchange();
    KeyExchange(KeyExchange&&) noexcept;
    KeyExchange& operator=(KeyExchange&&) noexcept;

    // Initiator: a fresh ephemeral key pair (OpenSSL's DRBG / qkd::random_bytes); for ML-KEM
    // public_value() is the encapsulation key.
    static Result<KeyExchange, CryptoError> generate(KeGroup g);
    // Responder: checks the initiator's data (check_peer_data) and answers it in one step:
    // DH generate + derive; ML-KEM Encaps(ek) -> (K, c).
    static Result<KeResponse, CryptoError> respond(KeGroup g, std::span<const std::uint8_t> initiator_data);
    // A key pair from given private material, for known-answer tests: X25519 the 32-octet
    // private key; ML-KEM the 64-octet seed d | z (FIPS 203 Alg. 16).
    static Result<KeyExchange, CryptoError> from_private(KeGroup g, std::span<const std::uint8_t> priv);
    KeGroup group() const { return group_; }
    std::span<const std::uint8_t> public_value() const { return public_; }
    // Initiator: the shared secret from the responder's data, after check_peer_data(g, peer,
    // false) (DH: also a non-zero result). ML-KEM: Decaps(dk, c) with implicit rejection, so a
    // wrong ciphertext of the right length gives a key the peer does not have, not an error.
    Result<SecretBytes, CryptoError> derive(std::span<const std::uint8_t> peer) const;

private:
    KeyExchange() = default;
    KeGroup group_ = KeGroup::None;
    std::vector<std::uint8_t> public_;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace qkd::crypto
