#include <gtest/gtest.h>

#include <thread>

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

TEST(KeyStream, CachedCipherContextGivesTheSameBytesAsAFreshOne) {
    // read() keeps the AES key schedule per thread and stream and reloads only the IV; reads that
    // follow unaligned reads, other streams, or a destroyed stream must still match reads made on
    // a fresh thread (fresh context).
    std::vector<std::uint8_t> seed(32, 9), other(32, 3);
    KeyStream s(seed, "KME_A->KME_B"), t(other, "KME_B->KME_A");
    const std::vector<std::pair<std::uint64_t, std::size_t>> reads = {{5, 11}, {0, 32}, {17, 40}, {4096, 32}, {3, 1}, {64, 64}, {33, 7}};
    std::vector<qkd::SecretBytes> here;
    for (auto [off, n] : reads) {
        here.push_back(s.read(off, n));
        (void)t.read(off + 1, 5);  // another stream in between
    }
    {
        KeyStream gone(other, "x");
        (void)gone.read(0, 16);
    }
    KeyStream again(seed, "KME_A->KME_B");  // may reuse the destroyed stream's address
    std::vector<qkd::SecretBytes> fresh;
    std::thread([&] {
        for (auto [off, n] : reads) fresh.push_back(again.read(off, n));
    }).join();
    ASSERT_EQ(here.size(), fresh.size());
    for (std::size_t i = 0; i < here.size(); ++i) EXPECT_TRUE(qkd::ct_equal(here[i], fresh[i])) << "read " << i;
    for (std::size_t i = 0; i < reads.size(); ++i) EXPECT_TRUE(qkd::ct_equal(again.read(reads[i].first, reads[i].second), fresh[i])) << i;
}
