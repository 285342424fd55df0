#pragma once
// AES-GCM with a 16-octet ICV (RFC 4106 for ESP, RFC 5282 for IKEv2) over OpenSSL EVP.
// The key is set once; seal/open reuse one EVP_CIPHER_CTX. Nonce = salt(4) | IV(8).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "qkd/common/result.hpp"
#include "qkd/crypto/error.hpp"

namespace qkd::crypto {

inline constexpr std::size_t kGcmIcvSize = 16;
inline constexpr std::size_t kGcmSaltSize = 4;
inline constexpr std::size_t kGcmIvSize = 8;

class AesGcm {
public:
    ~AesGcm();
    AesGcm(AesGcm&&) noexcept;
    AesGcm& operator=(AesGcm&&) noexcept;

    // key: 16 or 32 octets; salt: 4 octets (RFC 4106 4).
    static Result<AesGcm, CryptoError> create(std::span<const std::uint8_t> key, std::span<const std::uint8_t> salt);

    // out must hold plaintext.size() + kGcmIcvSize; writes ciphertext | ICV.
    Result<void, CryptoError> seal(std::span<const std::uint8_t> iv, std::span<const std::uint8_t> aad,
                                   std::span<const std::uint8_t> plaintext, std::span<std::uint8_t> out);
    // in = ciphertext | ICV; out must hold in.size() - kGcmIcvSize. Fails with AuthFailed.
    Result<void, CryptoError> open(std::span<const std::uint8_t> iv, std::span<const std::uint8_t> aad,
                                   std::span<const std::uint8_t> in, std::span<std::uint8_t> out);

private:
    AesGcm() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace qkd::crypto
