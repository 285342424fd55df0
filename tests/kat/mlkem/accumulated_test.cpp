// Accumulated test of final FIPS 203 (CCTV PR 13): d, z, m and a random ciphertext drawn from
// SHAKE-128(""), ek, dk, ct, K and K(random ct) absorbed into a second SHAKE-128; 10 000 rounds.
#include <openssl/evp.h>

#include "kat_util.hpp"

namespace qkd::mlkem::kat {
namespace {

std::string accumulate(ParamSet p, int rounds) {
    const std::size_t per_round = 32 * 3 + ct_size(p);
    // OpenSSL 3.0 squeezes a SHAKE once: draw the whole random stream up front.
    std::vector<std::uint8_t> stream(per_round * static_cast<std::size_t>(rounds));
    EVP_MD* shake = EVP_MD_fetch(nullptr, "SHAKE128", nullptr);
    EVP_MD_CTX* rng = EVP_MD_CTX_new();
    EVP_MD_CTX* acc = EVP_MD_CTX_new();
    EXPECT_EQ(EVP_DigestInit_ex2(rng, shake, nullptr), 1);
    EXPECT_EQ(EVP_DigestFinalXOF(rng, stream.data(), stream.size()), 1);
    EXPECT_EQ(EVP_DigestInit_ex2(acc, shake, nullptr), 1);
    const std::uint8_t* s = stream.data();
    for (int i = 0; i < rounds; ++i) {
        std::span<const std::uint8_t> d(s, 32), z(s + 32, 32), m(s + 64, 32), ct(s + 96, ct_size(p));
        s += per_round;
        auto kp = keygen_internal(p, d, z);
        if (!kp.ok()) return "keygen failed";
        auto enc = encaps_internal(p, kp->ek, m);
        if (!enc.ok()) return "encaps failed";
        auto k = decaps(p, kp->dk.view(), enc->ciphertext);
        if (!k.ok() || !qkd::ct_equal(*k, enc->shared_secret)) return "decaps mismatch at round " + std::to_string(i);
        auto k_rej = decaps(p, kp->dk.view(), ct);
        if (!k_rej.ok()) return "decaps of random ct failed";
        EVP_DigestUpdate(acc, kp->ek.data(), kp->ek.size());
        EVP_DigestUpdate(acc, kp->dk.data(), kp->dk.size());
        EVP_DigestUpdate(acc, enc->ciphertext.data(), enc->ciphertext.size());
        EVP_DigestUpdate(acc, enc->shared_secret.data(), enc->shared_secret.size());
        EVP_DigestUpdate(acc, k_rej->data(), k_rej->size());
    }
    std::uint8_t out[32];
    EXPECT_EQ(EVP_DigestFinalXOF(acc, out, sizeof out), 1);
    EVP_MD_CTX_free(rng);
    EVP_MD_CTX_free(acc);
    EVP_MD_free(shake);
    return qkd::hex_encode(out);
}

TEST(MlKemAccumulated, StreamStart) {
    // Sanity check of the shared random stream: SHAKE-128("") starts 7f9c2ba4e88f827d...
    EVP_MD* shake = EVP_MD_fetch(nullptr, "SHAKE128", nullptr);
    EVP_MD_CTX* c = EVP_MD_CTX_new();
    std::uint8_t out[16];
    ASSERT_EQ(EVP_DigestInit_ex2(c, shake, nullptr), 1);
    ASSERT_EQ(EVP_DigestFinalXOF(c, out, sizeof out), 1);
    EVP_MD_CTX_free(c);
    EVP_MD_free(shake);
    EXPECT_EQ(qkd::hex_encode(out), "7f9c2ba4e88f827d616045507605853e");
}

TEST(MlKemAccumulated, MlKem512) {
    EXPECT_EQ(accumulate(ParamSet::MlKem512, 10000), "705dcffc87f4e67e35a09dcaa31772e86f3341bd3ccf1e78a5fef99ae6a35a13");
}
TEST(MlKemAccumulated, MlKem768) {
    EXPECT_EQ(accumulate(ParamSet::MlKem768, 10000), "f959d18d3d1180121433bf0e05f11e7908cf9d03edc150b2b07cb90bef5bc1c1");
}
TEST(MlKemAccumulated, MlKem1024) {
    EXPECT_EQ(accumulate(ParamSet::MlKem1024, 10000), "e3bf82b013307b2e9d47dde791ff6dfc82e694e6382404abdb948b908b75bad5");
}

}  // namespace
}  // namespace qkd::mlkem::kat
