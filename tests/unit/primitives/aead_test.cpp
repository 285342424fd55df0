#include <gtest/gtest.h>

#include "qkd/common/encoding.hpp"
#include "qkd/crypto/aead.hpp"

using namespace qkd::crypto;

// McGrew-Viega GCM spec, Test Case 14: AES-256, zero key, zero 96-bit nonce, one zero block.
TEST(AesGcm, KnownAnswerTestCase14) {
    std::vector<std::uint8_t> key(32, 0), salt(4, 0), iv(8, 0), pt(16, 0), out(32);
    auto g = AesGcm::create(key, salt);
    ASSERT_TRUE(g.ok());
    ASSERT_TRUE(g->seal(iv, {}, pt, out).ok());
    EXPECT_EQ(qkd::hex_encode(out), "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
}

TEST(AesGcm, RoundTripWithAadAndTamperDetection) {
    std::vector<std::uint8_t> key(16, 7), salt{1, 2, 3, 4}, iv{9, 9, 9, 9, 9, 9, 9, 9}, aad{0xaa, 0xbb};
    std::vector<std::uint8_t> pt(100, 0x42), ct(116), back(100);
    auto g = AesGcm::create(key, salt);
    ASSERT_TRUE(g.ok());
    ASSERT_TRUE(g->seal(iv, aad, pt, ct).ok());
    ASSERT_TRUE(g->open(iv, aad, ct, back).ok());
    EXPECT_EQ(back, pt);
    ct[5] ^= 1;
    auto r = g->open(iv, aad, ct, back);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, CryptoErrc::AuthFailed);
    ct[5] ^= 1;
    aad[0] ^= 1;
    EXPECT_FALSE(g->open(iv, aad, ct, back).ok());
}

TEST(AesGcm, RejectsBadKeyAndSaltLengths) {
    std::vector<std::uint8_t> k24(24), salt(4), salt3(3), k32(32);
    EXPECT_EQ(AesGcm::create(k24, salt).error().code, CryptoErrc::InvalidKey);
    EXPECT_EQ(AesGcm::create(k32, salt3).error().code, CryptoErrc::InvalidKey);
    auto g = AesGcm::create(k32, salt);
    std::vector<std::uint8_t> iv(8), shortin(10), out(10);
    EXPECT_FALSE(g->open(iv, {}, shortin, out).ok());
}
