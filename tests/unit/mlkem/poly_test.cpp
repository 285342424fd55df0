// R_q arithmetic, NTT and encodings against straightforward reference computations.
#include "poly.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>

namespace qkd::mlkem::detail {
namespace {

int mod_q(long v) { return static_cast<int>(((v % kQ) + kQ) % kQ); }

Poly random_poly(std::mt19937& rng) {
    Poly p;
    std::uniform_int_distribution<int> dist(0, kQ - 1);
    for (auto& c : p.c) c = static_cast<std::int16_t>(dist(rng));
    return p;
}

TEST(MlKemPoly, CompressMatchesExactRoundingForAllInputs) {
    // FIPS 203 4.2.1: Compress_d(x) = round(2^d x / q) mod 2^d, round half up.
    for (int d : {1, 4, 5, 10, 11}) {
        for (int x = 0; x < kQ; ++x) {
            const long exact = ((2L * (static_cast<long>(x) << d)) + kQ) / (2L * kQ) % (1L << d);
            ASSERT_EQ(compress(static_cast<std::uint16_t>(x), d), exact) << "d=" << d << " x=" << x;
        }
    }
}

TEST(MlKemPoly, BarrettReducesEveryInt16) {
    for (int a = -32768; a <= 32767; ++a) {
        const int r = barrett_reduce(static_cast<std::int16_t>(a));
        ASSERT_EQ(mod_q(r), mod_q(a)) << a;
        ASSERT_LE(std::abs(r), kQ / 2) << a;
    }
}

TEST(MlKemPoly, MontgomeryReduce) {
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> dist(-kQ * 32768 + 1, kQ * 32768 - 1);
    for (int i = 0; i < 100000; ++i) {
        const int a = dist(rng);
        const int r = montgomery_reduce(a);
        ASSERT_LT(std::abs(r), kQ);
        ASSERT_EQ(mod_q(static_cast<long>(r) * 65536), mod_q(a));  // r = a * 2^-16 mod q
    }
}

TEST(MlKemPoly, NttProductEqualsNegacyclicSchoolbook) {
    std::mt19937 rng(2);
    for (int round = 0; round < 20; ++round) {
        Poly a = random_poly(rng), b = random_poly(rng);
        long ref[kN] = {};
        for (int i = 0; i < kN; ++i)
            for (int j = 0; j < kN; ++j) {
                const long prod = static_cast<long>(a.c[i]) * b.c[j];
                if (i + j < kN) ref[i + j] += prod;
                else ref[i + j - kN] -= prod;  // X^256 = -1
            }
        Poly an = a, bn = b, c;
        ntt(an);
        poly_reduce(an);
        ntt(bn);
        poly_reduce(bn);
        basemul_montgomery(c, an, bn);
        poly_reduce(c);
        inv_ntt(c);
        for (int i = 0; i < kN; ++i) ASSERT_EQ(mod_q(c.c[i]), mod_q(ref[i])) << "coefficient " << i;
    }
}

TEST(MlKemPoly, Encode12RoundTripAndModulusCheck) {
    std::mt19937 rng(3);
    Poly a = random_poly(rng), b;
    std::uint8_t buf[384];
    encode12(buf, a);
    EXPECT_TRUE(encoding12_reduced(buf));
    decode12(b, buf);
    for (int i = 0; i < kN; ++i) ASSERT_EQ(a.c[i], b.c[i]);
    a.c[77] = kQ - 1;
    encode12(buf, a);
    EXPECT_TRUE(encoding12_reduced(buf));
    // Coefficient 77 (odd: high 12 bits of bytes 115..116) set to q and to 4095.
    for (int bad : {kQ, 4095}) {
        decode12(b, buf);
        b.c[77] = static_cast<std::int16_t>(bad);
        std::uint8_t raw[384];
        for (int i = 0; i < kN / 2; ++i) {
            raw[3 * i] = static_cast<std::uint8_t>(b.c[2 * i]);
            raw[3 * i + 1] = static_cast<std::uint8_t>((b.c[2 * i] >> 8) | (b.c[2 * i + 1] << 4));
            raw[3 * i + 2] = static_cast<std::uint8_t>(b.c[2 * i + 1] >> 4);
        }
        EXPECT_FALSE(encoding12_reduced(raw)) << bad;
    }
}

TEST(MlKemPoly, CompressDecompressErrorIsBounded) {
    // FIPS 203 4.2.1: |Decompress_d(Compress_d(x)) - x| mod+- q <= round(q / 2^(d+1)).
    for (int d : {1, 4, 5, 10, 11}) {
        Poly a, b;
        for (int base = 0; base < kQ; base += kN) {
            for (int i = 0; i < kN; ++i) a.c[i] = static_cast<std::int16_t>((base + i) % kQ);
            std::uint8_t buf[32 * 11];
            compress_encode(buf, a, d);
            decode_decompress(b, buf, d);
            const int bound = (kQ + (1 << d)) / (1 << (d + 1));
            for (int i = 0; i < kN; ++i) {
                int diff = mod_q(b.c[i] - a.c[i]);
                if (diff > kQ / 2) diff -= kQ;
                ASSERT_LE(std::abs(diff), bound) << "d=" << d << " x=" << a.c[i];
            }
        }
    }
}

TEST(MlKemPoly, MessageEncodingRoundTrip) {
    std::uint8_t m[32], back[32];
    for (int i = 0; i < 32; ++i) m[i] = static_cast<std::uint8_t>(i * 37 + 11);
    Poly p;
    from_message(p, m);
    to_message(back, p);
    EXPECT_EQ(0, std::memcmp(m, back, 32));
}

}  // namespace
}  // namespace qkd::mlkem::detail
