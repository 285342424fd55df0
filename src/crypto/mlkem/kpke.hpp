#pragma once
// K-PKE, the CPA-secure public-key encryption under ML-KEM (FIPS 203 5, Alg. 13-15).
// Sizes come from Params; callers have checked all lengths.
#include <cstdint>

#include "params.hpp"
#include "poly.hpp"

namespace qkd::mlkem::detail {

// Alg. 13 K-PKE.KeyGen(d): ek (384k + 32 bytes), dk_pke (384k bytes).
void kpke_keygen(const Params& p, const std::uint8_t d[32], std::uint8_t* ek, std::uint8_t* dk_pke);
// An encapsulation key decoded once, with the matrix A_hat^T sampled ahead (FIPS 203 Alg. 14
// steps 2-8 depend only on ek) and H(ek). Public data.
struct ExpandedEk {
    Params p;
    Poly t_hat[kMaxK];
    Poly a_hat_t[kMaxK][kMaxK];  // a_hat_t[i][j] = A_hat[j][i] = SampleNTT(rho || i || j)
    std::uint8_t h[32];
};
// Decodes ek (already length- and modulus-checked) into out; computes H(ek) unless h is given.
void expand_ek(const Params& p, const std::uint8_t* ek, const std::uint8_t* h, ExpandedEk& out);
// Alg. 14 with a pre-expanded key.
void kpke_encrypt(const ExpandedEk& ek, const std::uint8_t m[32], const std::uint8_t r[32], std::uint8_t* c);

// Alg. 15 K-PKE.Decrypt(dk_pke, c) with dk_pke already decoded into s_hat[0..k): m (32 bytes).
void kpke_decrypt(const Params& p, const Poly* s_hat, const std::uint8_t* c, std::uint8_t m[32]);

}  // namespace qkd::mlkem::detail
