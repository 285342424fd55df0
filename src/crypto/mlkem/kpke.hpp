#pragma once
// K-PKE, the CPA-secure public-key encryption under ML-KEM (FIPS 203 5, Alg. 13-15).
// Sizes come from Params; callers have checked all lengths.
#include <cstdint>

#include "params.hpp"

namespace qkd::mlkem::detail {

// Alg. 13 K-PKE.KeyGen(d): ek (384k + 32 bytes), dk_pke (384k bytes).
void kpke_keygen(const Params& p, const std::uint8_t d[32], std::uint8_t* ek, std::uint8_t* dk_pke);
// Alg. 14 K-PKE.Encrypt(ek, m, r): c (32(du k + dv) bytes).
void kpke_encrypt(const Params& p, const std::uint8_t* ek, const std::uint8_t m[32],
                  const std::uint8_t r[32], std::uint8_t* c);
// Alg. 15 K-PKE.Decrypt(dk_pke, c): m (32 bytes).
void kpke_decrypt(const Params& p, const std::uint8_t* dk_pke, const std::uint8_t* c, std::uint8_t m[32]);

}  // namespace qkd::mlkem::detail
