#include <gtest/gtest.h>

#include "qkd/crypto/ke.hpp"

using namespace qkd::crypto;

class KeGroups : public ::testing::TestWithParam<KeGroup> {};

TEST_P(KeGroups, BothSidesAgreeAndEncodingsHaveIkeLengths) {
    auto a = KeyExchange::generate(GetParam());
    auto b = KeyExchange::generate(GetParam());
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->public_value().size(), ke_public_size(GetParam()));
    auto s1 = a->derive(b->public_value());
    auto s2 = b->derive(a->public_value());
    ASSERT_TRUE(s1.ok()) << s1.error().message;
    ASSERT_TRUE(s2.ok());
    EXPECT_TRUE(qkd::ct_equal(*s1, *s2));
    // RFC 5903 / 3526: the shared secret is the x coordinate / g^xy padded to the field size.
    const std::size_t expect = GetParam() == KeGroup::Modp2048 ? 256
                               : GetParam() == KeGroup::Curve25519 ? 32
                                                                   : ke_public_size(GetParam()) / 2;
    EXPECT_EQ(s1->size(), expect);
}

TEST_P(KeGroups, RejectsWrongLengthAndGarbage) {
    auto a = KeyExchange::generate(GetParam());
    ASSERT_TRUE(a.ok());
    std::vector<std::uint8_t> shorter(a->public_value().size() - 1, 1);
    EXPECT_EQ(a->derive(shorter).error().code, CryptoErrc::InvalidPeerValue);
    if (GetParam() != KeGroup::Curve25519) {
        // Not a point on the curve / y = 0 out of range.
        std::vector<std::uint8_t> junk(a->public_value().size(), 0);
        if (GetParam() != KeGroup::Modp2048) junk.back() = 1;
        EXPECT_FALSE(a->derive(junk).ok());
    }
}

INSTANTIATE_TEST_SUITE_P(All, KeGroups,
                         ::testing::Values(KeGroup::Modp2048, KeGroup::Ecp256, KeGroup::Ecp384, KeGroup::Ecp521,
                                           KeGroup::Curve25519));

TEST(KeyExchange, UnsupportedGroup) {
    auto r = KeyExchange::generate(static_cast<KeGroup>(2));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, CryptoErrc::Unsupported);
    EXPECT_FALSE(ke_supported(2));
    EXPECT_TRUE(ke_supported(21));
}
