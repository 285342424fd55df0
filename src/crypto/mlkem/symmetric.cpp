// SHA3 / SHAKE through OpenSSL EVP with fetched algorithms and a reused per-thread context.
#include "symmetric.hpp"

#include <openssl/evp.h>

#include <cstdlib>

namespace qkd::mlkem::detail {
namespace {

enum Alg { kSha3_256, kSha3_512, kShake128, kShake256, kAlgCount };

const EVP_MD* md(Alg a) {
    // Explicit fetches once per process: implicit EVP_sha3_256() would re-fetch on every init.
    static EVP_MD* const mds[kAlgCount] = {
        EVP_MD_fetch(nullptr, "SHA3-256", nullptr),
        EVP_MD_fetch(nullptr, "SHA3-512", nullptr),
        EVP_MD_fetch(nullptr, "SHAKE128", nullptr),
        EVP_MD_fetch(nullptr, "SHAKE256", nullptr),
    };
    if (mds[a] == nullptr) std::abort();  // OpenSSL without SHA-3: cannot run ML-KEM at all
    return mds[a];
}

struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
};

EVP_MD_CTX* thread_ctx() {
    thread_local Ctx c;
    if (c.ctx == nullptr) std::abort();
    return c.ctx;
}

inline void check(int rc) {
    if (rc != 1) std::abort();
}

void run(Alg a, std::span<const std::uint8_t> in1, std::span<const std::uint8_t> in2,
         std::span<const std::uint8_t> in3, std::uint8_t* out, std::size_t out_len) {
    EVP_MD_CTX* c = thread_ctx();
    check(EVP_DigestInit_ex2(c, md(a), nullptr));
    if (!in1.empty()) check(EVP_DigestUpdate(c, in1.data(), in1.size()));
    if (!in2.empty()) check(EVP_DigestUpdate(c, in2.data(), in2.size()));
    if (!in3.empty()) check(EVP_DigestUpdate(c, in3.data(), in3.size()));
    if (a == kShake128 || a == kShake256) {
        check(EVP_DigestFinalXOF(c, out, out_len));
    } else {
        unsigned int n = 0;
        check(EVP_DigestFinal_ex(c, out, &n));
        if (n != out_len) std::abort();
    }
}

}  // namespace

void hash_h(std::uint8_t out[32], std::span<const std::uint8_t> in) { run(kSha3_256, in, {}, {}, out, 32); }

void hash_g(std::uint8_t out[64], std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
    run(kSha3_512, a, b, {}, out, 64);
}

void hash_j(std::uint8_t out[32], std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
    run(kShake256, a, b, {}, out, 32);
}

void prf(std::span<std::uint8_t> out, const std::uint8_t s[32], std::uint8_t b) {
    run(kShake256, {s, 32}, {&b, 1}, {}, out.data(), out.size());
}

void xof(std::span<std::uint8_t> out, const std::uint8_t seed[32], std::uint8_t i, std::uint8_t j) {
    const std::uint8_t ij[2] = {i, j};
    run(kShake128, {seed, 32}, {ij, 2}, {}, out.data(), out.size());
}

void shake128(std::span<std::uint8_t> out, std::span<const std::uint8_t> in) {
    run(kShake128, in, {}, {}, out.data(), out.size());
}

}  // namespace qkd::mlkem::detail
