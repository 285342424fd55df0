#pragma once
// ML-KEM (FIPS 203, August 2024): ML-KEM-512, ML-KEM-768 and ML-KEM-1024.
//
// Secret inputs and outputs (d, z, m, dk, K) live in qkd::SecretBytes. All operations on secret
// data are constant time: no branch and no memory index depends on a secret (checked under
// valgrind in tests/unit/mlkem/ct_*). SHA3/SHAKE come from OpenSSL.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/common/secret.hpp"

namespace qkd::mlkem {

enum class ParamSet { MlKem512, MlKem768, MlKem1024 };

inline constexpr std::size_t kSeedSize = 32;          // d, z, m
inline constexpr std::size_t kSharedSecretSize = 32;  // K

// FIPS 203 Table 3 sizes in bytes.
std::size_t ek_size(ParamSet p);  // 384k + 32
std::size_t dk_size(ParamSet p);  // 768k + 96
std::size_t ct_size(ParamSet p);  // 32(du*k + dv)
std::string_view name(ParamSet p);  // "ML-KEM-768"...

enum class Error {
    BadSeedLength,           // d, z or m is not 32 bytes
    BadEncapsulationKey,     // FIPS 203 7.2: wrong length or a coefficient >= q
    BadDecapsulationKey,     // FIPS 203 7.3: wrong length or H(ek) mismatch
    BadCiphertextLength,     // FIPS 203 7.3: ciphertext length
};
std::string_view to_string(Error e);

struct KeyPair {
    std::vector<std::uint8_t> ek;  // encapsulation key (public)
    qkd::SecretBytes dk;           // decapsulation key dkPKE || ek || H(ek) || z
};

struct Encapsulation {
    qkd::SecretBytes shared_secret;        // K, 32 bytes
    std::vector<std::uint8_t> ciphertext;  // c
};

// FIPS 203 Alg. 16 ML-KEM.KeyGen_internal(d, z).
qkd::Result<KeyPair, Error> keygen_internal(ParamSet p, std::span<const std::uint8_t> d,
                                            std::span<const std::uint8_t> z);
// FIPS 203 Alg. 19 ML-KEM.KeyGen: d, z from qkd::random_bytes.
KeyPair keygen(ParamSet p);

// FIPS 203 Alg. 17 ML-KEM.Encaps_internal(ek, m), after the 7.2 input check of ek.
qkd::Result<Encapsulation, Error> encaps_internal(ParamSet p, std::span<const std::uint8_t> ek,
                                                  std::span<const std::uint8_t> m);
// FIPS 203 Alg. 20 ML-KEM.Encaps: m from qkd::random_bytes.
qkd::Result<Encapsulation, Error> encaps(ParamSet p, std::span<const std::uint8_t> ek);

// FIPS 203 Alg. 21 ML-KEM.Decaps with the 7.3 input checks; implicit rejection: an invalid
// ciphertext yields K = J(z || c), indistinguishable from a real key.
qkd::Result<qkd::SecretBytes, Error> decaps(ParamSet p, std::span<const std::uint8_t> dk,
                                            std::span<const std::uint8_t> c);

namespace detail {
struct ExpandedEk;
struct ExpandedDk;
}  // namespace detail

// An encapsulation key parsed and checked once (FIPS 203 7.2), with A_hat and H(ek)
// precomputed, so repeated encapsulations to the same key skip the matrix sampling.
// Immutable and cheap to copy (shared).
class EncapsulationKey {
public:
    static qkd::Result<EncapsulationKey, Error> parse(ParamSet p, std::span<const std::uint8_t> ek);
    ParamSet param_set() const { return p_; }
    // Alg. 17 with the given m (32 bytes).
    qkd::Result<Encapsulation, Error> encaps_internal(std::span<const std::uint8_t> m) const;
    // Alg. 20 with m from qkd::random_bytes.
    Encapsulation encaps() const;

private:
    EncapsulationKey(ParamSet p, std::shared_ptr<const detail::ExpandedEk> x) : p_(p), x_(std::move(x)) {}
    ParamSet p_;
    std::shared_ptr<const detail::ExpandedEk> x_;
};

// A decapsulation key parsed and checked once (FIPS 203 7.3), with s_hat decoded and the
// embedded ek expanded. Move-only; the secret parts are wiped on destruction.
class DecapsulationKey {
public:
    static qkd::Result<DecapsulationKey, Error> parse(ParamSet p, std::span<const std::uint8_t> dk);
    DecapsulationKey(DecapsulationKey&&) noexcept;
    DecapsulationKey& operator=(DecapsulationKey&&) noexcept;
    ~DecapsulationKey();
    ParamSet param_set() const { return p_; }
    // Alg. 18 with implicit rejection.
    qkd::Result<qkd::SecretBytes, Error> decaps(std::span<const std::uint8_t> c) const;

private:
    DecapsulationKey(ParamSet p, std::unique_ptr<detail::ExpandedDk> x);
    ParamSet p_;
    std::unique_ptr<detail::ExpandedDk> x_;
};

// FIPS 203 7.2 encapsulation key check (type/length and modulus check).
bool check_ek(ParamSet p, std::span<const std::uint8_t> ek);
// FIPS 203 7.3 decapsulation key check (length and hash check H(ek) == h).
bool check_dk(ParamSet p, std::span<const std::uint8_t> dk);

}  // namespace qkd::mlkem
