#include <gtest/gtest.h>

#include "qkd/kme/key_stream.hpp"

using qkd::kme::KeyStream;

TEST(KeyStream, BothEndsDeriveTheSameMaterialAtAnyOffset) {
    std::vector<std::uint8_t> seed(32, 7);
    KeyStream a(seed, "KME_A->KME_B"), b(seed, "KME_A->KME_B");
    auto whole = a.read(0, 200);
    for (std::uint64_t off : {0ull, 1ull, 15ull, 16ull, 17ull, 100ull}) {
        auto part = b.read(off, 50);
        EXPECT_TRUE(std::equal(part.view().begin(), part.view().end(), whole.view().begin() + static_cast<long>(off))) << off;
    }
}

TEST(KeyStream, DirectionsAndSeedsGiveIndependentStreams) {
    std::vector<std::uint8_t> seed(32, 7), other(32, 8);
    auto ab = KeyStream(seed, "KME_A->KME_B").read(0, 32);
    auto ba = KeyStream(seed, "KME_B->KME_A").read(0, 32);
    auto ab2 = KeyStream(other, "KME_A->KME_B").read(0, 32);
    EXPECT_FALSE(qkd::ct_equal(ab, ba));
    EXPECT_FALSE(qkd::ct_equal(ab, ab2));
    // Adjacent keys do not overlap.
    auto k1 = KeyStream(seed, "x").read(0, 32), k2 = KeyStream(seed, "x").read(32, 32);
    EXPECT_FALSE(qkd::ct_equal(k1, k2));
}
