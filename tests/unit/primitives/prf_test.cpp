#include <gtest/gtest.h>

#include "qkd/common/encoding.hpp"
#include "qkd/crypto/prf.hpp"

using namespace qkd::crypto;

// RFC 4231 test case 2 (key "Jefe") for HMAC-SHA-256 and -512.
TEST(Prf, Rfc4231Case2) {
    const std::string key = "Jefe", msg = "what do ya want for nothing?";
    auto k = std::span(reinterpret_cast<const std::uint8_t*>(key.data()), key.size());
    auto m = std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size());
    Prf p256(PrfAlg::HmacSha256);
    EXPECT_EQ(qkd::hex_encode(p256.compute(k, {m}).view()),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // Split input gives the same result as one span.
    EXPECT_EQ(qkd::hex_encode(p256.compute(k, {m.first(4), m.subspan(4)}).view()),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    Prf p512(PrfAlg::HmacSha512);
    EXPECT_EQ(p512.size(), 64u);
    EXPECT_EQ(qkd::hex_encode(p512.compute(k, {m}).view()).substr(0, 32), "164b7a7bfcf819e2e395fbe73b56e0a3");
}

TEST(Prf, PrfPlusIsPrefixStableAndBounded) {
    Prf p(PrfAlg::HmacSha256);
    std::vector<std::uint8_t> key(32, 1), seed{1, 2, 3};
    auto a = p.prf_plus(key, seed, 100);
    auto b = p.prf_plus(key, seed, 40);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->size(), 100u);
    EXPECT_TRUE(std::equal(b->view().begin(), b->view().end(), a->view().begin()));
    // T1 = prf(K, S | 0x01)
    std::uint8_t one = 1;
    auto t1 = p.compute(key, {seed, std::span(&one, 1)});
    EXPECT_TRUE(std::equal(t1.view().begin(), t1.view().end(), a->view().begin()));
    EXPECT_TRUE(p.prf_plus(key, seed, 255 * 32).ok());
    auto too_long = p.prf_plus(key, seed, 255 * 32 + 1);
    ASSERT_FALSE(too_long.ok());
    EXPECT_EQ(too_long.error().code, CryptoErrc::TooLong);
}
