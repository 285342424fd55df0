#pragma once
// FIPS 203 4.2.2 sampling: SampleNTT (Alg. 7) and SamplePolyCBD (Alg. 8).
#include <cstdint>

#include "poly.hpp"

namespace qkd::mlkem::detail {

// a_hat = SampleNTT(rho || i || j). Rejection sampling on public data (rho is part of ek).
void sample_ntt(Poly& a, const std::uint8_t rho[32], std::uint8_t i, std::uint8_t j);
// SamplePolyCBD_eta(PRF_eta(sigma, n)), eta in {2, 3}. Constant time (sigma is secret).
void sample_cbd(Poly& r, const std::uint8_t sigma[32], std::uint8_t n, int eta);

}  // namespace qkd::mlkem::detail
