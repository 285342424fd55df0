#pragma once
// FIPS 203 4.1 hash functions on OpenSSL's SHA3/SHAKE: H = SHA3-256, G = SHA3-512,
// J = SHAKE256(., 32), PRF_eta = SHAKE256(s || b, 64 eta), XOF = SHAKE128.
// One EVP_MD_CTX per thread is reused and the EVP_MDs are fetched once; an OpenSSL failure
// here means a broken library and aborts.
#include <cstddef>
#include <cstdint>
#include <span>

namespace qkd::mlkem::detail {

void hash_h(std::uint8_t out[32], std::span<const std::uint8_t> in);
void hash_g(std::uint8_t out[64], std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);
void hash_j(std::uint8_t out[32], std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);
void prf(std::span<std::uint8_t> out, const std::uint8_t s[32], std::uint8_t b);
// SHAKE128(seed || i || j), first out.size() bytes.
void xof(std::span<std::uint8_t> out, const std::uint8_t seed[32], std::uint8_t i, std::uint8_t j);
// Any SHAKE (128 or 256) over in, first out.size() bytes (used by tests for the accumulated KAT).
void shake128(std::span<std::uint8_t> out, std::span<const std::uint8_t> in);

}  // namespace qkd::mlkem::detail
