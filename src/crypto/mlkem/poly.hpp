#pragma once
// Polynomials of R_q = Z_q[X]/(X^256 + 1) and their NTT representation (FIPS 203 4.3).
//
// Coefficients are int16 in signed representatives; the arithmetic uses Montgomery
// (R = 2^16) and Barrett reduction so that no step divides, branches or indexes on a
// coefficient value: everything here is constant time with respect to the coefficients.
#include <cstddef>
#include <cstdint>

#include "params.hpp"

namespace qkd::mlkem::detail {

struct Poly {
    std::int16_t c[kN];
};

// a * b * 2^-16 mod q, |result| < q for |a * b| < q * 2^15.
std::int16_t montgomery_reduce(std::int32_t a);
// a mod q in (-q/2, q/2].
std::int16_t barrett_reduce(std::int16_t a);
// Canonical representative in [0, q) of a value in (-q, q), branch-free.
inline std::uint16_t to_canonical(std::int16_t a) {
    a = static_cast<std::int16_t>(a + ((a >> 15) & kQ));
    return static_cast<std::uint16_t>(a);
}

// FIPS 203 Alg. 9 NTT and Alg. 10 NTT^-1 (in place). ntt: input |c| < q, output |c| < 8q
// (reduce before encoding). inv_ntt multiplies by 2^16 in addition (it cancels the 2^-16 of a
// Montgomery base multiplication), output |c| < q.
void ntt(Poly& f);
void inv_ntt(Poly& f);

// FIPS 203 Alg. 11 MultiplyNTTs with a 2^-16 factor: r = a o b * 2^-16.
void basemul_montgomery(Poly& r, const Poly& a, const Poly& b);
// r += a o b * 2^-16 (for matrix-vector products of up to 4 terms, bounded by 8q).
void basemul_acc_montgomery(Poly& r, const Poly& a, const Poly& b);

void poly_add(Poly& r, const Poly& a);  // r += a
void poly_sub(Poly& r, const Poly& a);  // r -= a
void poly_reduce(Poly& r);              // Barrett-reduce every coefficient
void poly_tomont(Poly& r);              // r * 2^16 mod q

// FIPS 203 Alg. 5 ByteEncode_12 (coefficients reduced to [0, q) first) and Alg. 6 ByteDecode_12
// (values 0..4095, no reduction: the caller runs the modulus check where required).
void encode12(std::uint8_t out[384], const Poly& a);
void decode12(Poly& r, const std::uint8_t in[384]);
// Constant-time test that every 12-bit value of a 384-byte encoding is < q (FIPS 203 7.2).
bool encoding12_reduced(const std::uint8_t in[384]);

// Compress_d then ByteEncode_d (d in {1, 4, 5, 10, 11}), and ByteDecode_d then Decompress_d.
void compress_encode(std::uint8_t* out, const Poly& a, int d);
void decode_decompress(Poly& r, const std::uint8_t* in, int d);
// Compress_d(x) for x in [0, q), exposed for the exhaustive unit test.
std::uint16_t compress(std::uint16_t x, int d);

// Message encoding: Decompress_1(ByteDecode_1(m)) and ByteEncode_1(Compress_1(a)).
void from_message(Poly& r, const std::uint8_t m[32]);
void to_message(std::uint8_t m[32], const Poly& a);

}  // namespace qkd::mlkem::detail
