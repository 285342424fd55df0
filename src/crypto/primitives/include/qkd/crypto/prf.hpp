#pragma once
// IKEv2 pseudo-random functions (RFC 7296 2.13, RFC 4868): PRF_HMAC_SHA2_256/384/512 over
// OpenSSL's EVP_MAC, and prf+ (RFC 7296 2.13). One Prf object keeps its EVP_MAC_CTX for reuse.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>

#include "qkd/common/result.hpp"
#include "qkd/common/secret.hpp"
#include "qkd/crypto/error.hpp"

namespace qkd::crypto {

// Values are the IKEv2 Transform Type 2 IDs.
enum class PrfAlg : std::uint16_t { HmacSha256 = 5, HmacSha384 = 6, HmacSha512 = 7 };

std::size_t prf_output_size(PrfAlg alg);

using Bytes = std::span<const std::uint8_t>;

class Prf {
public:
    explicit Prf(PrfAlg alg);
    ~Prf();
    Prf(Prf&&) noexcept;
    Prf& operator=(Prf&&) noexcept;

    PrfAlg alg() const { return alg_; }
    std::size_t size() const { return prf_output_size(alg_); }

    // prf(key, data_0 | data_1 | ...), written to out (size() bytes).
    void compute(Bytes key, std::initializer_list<Bytes> data, std::span<std::uint8_t> out);
    SecretBytes compute(Bytes key, std::initializer_list<Bytes> data);
    // RFC 7296 2.13: prf+(K, S) = T1 | T2 | ..., T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
    // At most 255 blocks; longer requests fail with TooLong.
    Result<SecretBytes, CryptoError> prf_plus(Bytes key, Bytes seed, std::size_t length);

private:
    PrfAlg alg_;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace qkd::crypto
