#pragma once
// IKEv2 key exchange methods (RFC 7296 3.3.2 Transform Type 4) over OpenSSL EVP_PKEY:
// 14 = 2048-bit MODP (RFC 3526), 19/20/21 = ECP-256/384/521 (RFC 5903), 31 = Curve25519 (RFC 8031).
// Public values use the IKE encodings: MODP y padded to the prime length, ECP x | y without
// the 0x04 prefix, X25519 the raw 32 bytes. Shared secrets: MODP g^xy padded, ECP x only.
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
};

bool ke_supported(std::uint16_t id);
std::size_t ke_public_size(KeGroup g);  // length of the KE payload data

class KeyExchange {
public:
    ~KeyExchange();
    KeyExchange(KeyExchange&&) noexcept;
    KeyExchange& operator=(KeyExchange&&) noexcept;

    // Fresh ephemeral key pair (OpenSSL's DRBG).
    static Result<KeyExchange, CryptoError> generate(KeGroup g);
    // A key pair from a given private value, for known-answer tests (X25519 only).
    static Result<KeyExchange, CryptoError> from_private(KeGroup g, std::span<const std::uint8_t> priv);
    KeGroup group() const { return group_; }
    std::span<const std::uint8_t> public_value() const { return public_; }
    // Checks the peer value (length, on-curve / range, non-zero result) before deriving.
    Result<SecretBytes, CryptoError> derive(std::span<const std::uint8_t> peer) const;

private:
    KeyExchange() = default;
    KeGroup group_ = KeGroup::None;
    std::vector<std::uint8_t> public_;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace qkd::crypto
