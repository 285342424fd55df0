#include <gtest/gtest.h>

#include "qkd/common/secret.hpp"

TEST(SecretBytes, MoveLeavesSourceEmptyAndCloneIsExplicit) {
    const std::uint8_t k[] = {1, 2, 3, 4};
    qkd::SecretBytes a{std::span<const std::uint8_t>(k)};
    qkd::SecretBytes b = a.clone();
    EXPECT_TRUE(qkd::ct_equal(a, b));
    qkd::SecretBytes c = std::move(a);
    EXPECT_TRUE(a.empty());
    EXPECT_TRUE(qkd::ct_equal(b, c));
    static_assert(!std::is_copy_constructible_v<qkd::SecretBytes>);
}

TEST(SecretBytes, ResizeAndAppend) {
    qkd::SecretBytes s(2);
    const std::uint8_t more[] = {7, 8, 9};
    s.append(more);
    ASSERT_EQ(s.size(), 5u);
    EXPECT_EQ(s.data()[4], 9);
    s.resize(1);
    EXPECT_EQ(s.size(), 1u);
}

TEST(CtEqual, DiffersOnAnyByteAndLength) {
    std::uint8_t a[] = {1, 2, 3}, b[] = {1, 2, 4};
    EXPECT_FALSE(qkd::ct_equal(a, b));
    EXPECT_FALSE(qkd::ct_equal(std::span<const std::uint8_t>(a, 2), std::span<const std::uint8_t>(a, 3)));
    EXPECT_TRUE(qkd::ct_equal(std::span<const std::uint8_t>(a, 2), std::span<const std::uint8_t>(b, 2)));
}
