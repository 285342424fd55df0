// Arithmetic, NTT and encodings over R_q (FIPS 203 4.2.1, 4.3, Alg. 5-6, 9-12).
#include "poly.hpp"

#include <array>

namespace qkd::mlkem::detail {
namespace {

constexpr std::int32_t kQInv = -3327;  // q^-1 mod 2^16, as a signed value
constexpr std::int32_t kMont = 2285;   // 2^16 mod q

constexpr int bitrev7(int i) {
    int r = 0;
    for (int b = 0; b < 7; ++b) r |= ((i >> b) & 1) << (6 - b);
    return r;
}

constexpr std::int64_t powmod(std::int64_t b, int e) {
    std::int64_t r = 1;
    for (int i = 0; i < e; ++i) r = (r * b) % kQ;
    return r;
}

// Centered representative of x * 2^16 mod q, the Montgomery form used by fqmul.
constexpr std::int16_t to_mont_centered(std::int64_t x) {
    std::int64_t v = (x % kQ) * kMont % kQ;
    if (v > kQ / 2) v -= kQ;
    return static_cast<std::int16_t>(v);
}

// FIPS 203 4.3: zeta = 17 is a primitive 256th root of unity mod q.
// zetas[i] = 17^BitRev7(i) (Alg. 9/10), gammas[i] = 17^(2 BitRev7(i) + 1) (Alg. 12).
constexpr std::array<std::int16_t, 128> make_zetas() {
    std::array<std::int16_t, 128> z{};
    for (int i = 0; i < 128; ++i) z[i] = to_mont_centered(powmod(17, bitrev7(i)));
    return z;
}
constexpr std::array<std::int16_t, 128> make_gammas() {
    std::array<std::int16_t, 128> g{};
    for (int i = 0; i < 128; ++i) g[i] = to_mont_centered(powmod(17, 2 * bitrev7(i) + 1));
    return g;
}
constexpr auto kZetas = make_zetas();
constexpr auto kGammas = make_gammas();
// 2^32 / 128 mod q: the 128^-1 of Alg. 10 times 2^16 twice (one cancels fqmul's 2^-16, one
// cancels the 2^-16 left by the base multiplication that precedes every inverse NTT).
constexpr std::int16_t kInvNttScale = to_mont_centered(powmod(kMont, 1) * powmod(3303, 1));

// montgomery_reduce(a * b) written with 16-bit high/low halves only, so that loops over it map
// onto SIMD multiply-high instructions: a*b - t*q is divisible by 2^16, hence its high half is
// exactly hi(a*b) - hi(t*q).
inline std::int16_t fqmul(std::int16_t a, std::int16_t b) {
    const std::int32_t prod = static_cast<std::int32_t>(a) * b;
    const std::int16_t t = static_cast<std::int16_t>(static_cast<std::int16_t>(prod) * kQInv);
    const std::int16_t hi = static_cast<std::int16_t>(prod >> 16);
    const std::int16_t tq_hi = static_cast<std::int16_t>((static_cast<std::int32_t>(t) * kQ) >> 16);
    return static_cast<std::int16_t>(hi - tq_hi);
}

}  // namespace

std::int16_t montgomery_reduce(std::int32_t a) {
    const std::int16_t t = static_cast<std::int16_t>(static_cast<std::int16_t>(a) * kQInv);
    return static_cast<std::int16_t>((a - static_cast<std::int32_t>(t) * kQ) >> 16);
}

std::int16_t barrett_reduce(std::int16_t a) {
    constexpr std::int32_t v = ((1 << 26) + kQ / 2) / kQ;
    const std::int16_t t = static_cast<std::int16_t>((v * a + (1 << 25)) >> 26);
    return static_cast<std::int16_t>(a - t * kQ);
}

// FIPS 203 Alg. 9.
void ntt(Poly& f) {
    int i = 1;
    for (int len = 128; len >= 2; len >>= 1) {
        for (int start = 0; start < kN; start += 2 * len) {
            const std::int16_t zeta = kZetas[i++];
            for (int j = start; j < start + len; ++j) {
                const std::int16_t t = fqmul(zeta, f.c[j + len]);
                f.c[j + len] = static_cast<std::int16_t>(f.c[j] - t);
                f.c[j] = static_cast<std::int16_t>(f.c[j] + t);
            }
        }
    }
}

// FIPS 203 Alg. 10.
void inv_ntt(Poly& f) {
    int i = 127;
    for (int len = 2; len <= 128; len <<= 1) {
        for (int start = 0; start < kN; start += 2 * len) {
            const std::int16_t zeta = kZetas[i--];
            for (int j = start; j < start + len; ++j) {
                const std::int16_t t = f.c[j];
                f.c[j] = barrett_reduce(static_cast<std::int16_t>(t + f.c[j + len]));
                f.c[j + len] = fqmul(zeta, static_cast<std::int16_t>(f.c[j + len] - t));
            }
        }
    }
    for (auto& x : f.c) x = fqmul(x, kInvNttScale);
}

// FIPS 203 Alg. 11/12: (a0 + a1 X)(b0 + b1 X) mod (X^2 - gamma_i).
void basemul_montgomery(Poly& r, const Poly& a, const Poly& b) {
    for (int i = 0; i < 128; ++i) {
        const std::int16_t a0 = a.c[2 * i], a1 = a.c[2 * i + 1];
        const std::int16_t b0 = b.c[2 * i], b1 = b.c[2 * i + 1];
        r.c[2 * i] = static_cast<std::int16_t>(fqmul(a0, b0) + fqmul(fqmul(a1, b1), kGammas[i]));
        r.c[2 * i + 1] = static_cast<std::int16_t>(fqmul(a0, b1) + fqmul(a1, b0));
    }
}

void basemul_acc_montgomery(Poly& r, const Poly& a, const Poly& b) {
    for (int i = 0; i < 128; ++i) {
        const std::int16_t a0 = a.c[2 * i], a1 = a.c[2 * i + 1];
        const std::int16_t b0 = b.c[2 * i], b1 = b.c[2 * i + 1];
        r.c[2 * i] = static_cast<std::int16_t>(r.c[2 * i] + fqmul(a0, b0) +
                                               fqmul(fqmul(a1, b1), kGammas[i]));
        r.c[2 * i + 1] = static_cast<std::int16_t>(r.c[2 * i + 1] + fqmul(a0, b1) + fqmul(a1, b0));
    }
}

void poly_add(Poly& r, const Poly& a) {
    for (int i = 0; i < kN; ++i) r.c[i] = static_cast<std::int16_t>(r.c[i] + a.c[i]);
}
void poly_sub(Poly& r, const Poly& a) {
    for (int i = 0; i < kN; ++i) r.c[i] = static_cast<std::int16_t>(r.c[i] - a.c[i]);
}
void poly_reduce(Poly& r) {
    for (auto& x : r.c) x = barrett_reduce(x);
}
void poly_tomont(Poly& r) {
    constexpr std::int16_t f = static_cast<std::int16_t>((static_cast<std::int64_t>(kMont) * kMont) % kQ);
    for (auto& x : r.c) x = fqmul(x, f);
}

// FIPS 203 Alg. 5 with d = 12: two coefficients into three bytes.
void encode12(std::uint8_t out[384], const Poly& a) {
    for (int i = 0; i < kN / 2; ++i) {
        const std::uint16_t t0 = to_canonical(barrett_reduce(a.c[2 * i]));
        const std::uint16_t t1 = to_canonical(barrett_reduce(a.c[2 * i + 1]));
        out[3 * i] = static_cast<std::uint8_t>(t0);
        out[3 * i + 1] = static_cast<std::uint8_t>((t0 >> 8) | (t1 << 4));
        out[3 * i + 2] = static_cast<std::uint8_t>(t1 >> 4);
    }
}

// FIPS 203 Alg. 6 with d = 12 (no mod q: see encoding12_reduced).
void decode12(Poly& r, const std::uint8_t in[384]) {
    for (int i = 0; i < kN / 2; ++i) {
        r.c[2 * i] = static_cast<std::int16_t>(in[3 * i] | ((in[3 * i + 1] & 0x0F) << 8));
        r.c[2 * i + 1] = static_cast<std::int16_t>((in[3 * i + 1] >> 4) | (in[3 * i + 2] << 4));
    }
}

bool encoding12_reduced(const std::uint8_t in[384]) {
    std::uint32_t bad = 0;
    for (int i = 0; i < kN / 2; ++i) {
        const std::uint32_t t0 = in[3 * i] | ((in[3 * i + 1] & 0x0Fu) << 8);
        const std::uint32_t t1 = (in[3 * i + 1] >> 4) | (static_cast<std::uint32_t>(in[3 * i + 2]) << 4);
        bad |= (static_cast<std::uint32_t>(kQ - 1) - t0) >> 31;  // 1 iff t0 >= q
        bad |= (static_cast<std::uint32_t>(kQ - 1) - t1) >> 31;
    }
    return bad == 0;
}

// FIPS 203 4.2.1 Compress_d(x) = round(2^d x / q) mod 2^d without a division: for
// n = 2^d x + (q-1)/2 < 2^23, floor(n / q) = (n * ceil(2^35 / q)) >> 35 exactly.
std::uint16_t compress(std::uint16_t x, int d) {
    constexpr std::uint64_t kMul = ((std::uint64_t{1} << 35) + kQ - 1) / kQ;
    const std::uint64_t n = (static_cast<std::uint64_t>(x) << d) + (kQ - 1) / 2;
    return static_cast<std::uint16_t>(((n * kMul) >> 35) & ((1u << d) - 1));
}

// Compress_d + ByteEncode_d: bits are packed little-endian, coefficient by coefficient.
void compress_encode(std::uint8_t* out, const Poly& a, int d) {
    std::uint32_t acc = 0;
    int bits = 0;
    std::size_t o = 0;
    for (int i = 0; i < kN; ++i) {
        acc |= static_cast<std::uint32_t>(compress(to_canonical(barrett_reduce(a.c[i])), d)) << bits;
        bits += d;
        while (bits >= 8) {  // depends on d and i only
            out[o++] = static_cast<std::uint8_t>(acc);
            acc >>= 8;
            bits -= 8;
        }
    }
}

// ByteDecode_d + Decompress_d(y) = round(q y / 2^d).
void decode_decompress(Poly& r, const std::uint8_t* in, int d) {
    std::uint32_t acc = 0;
    int bits = 0;
    std::size_t o = 0;
    const std::uint32_t mask = (1u << d) - 1;
    for (int i = 0; i < kN; ++i) {
        while (bits < d) {
            acc |= static_cast<std::uint32_t>(in[o++]) << bits;
            bits += 8;
        }
        const std::uint32_t y = acc & mask;
        acc >>= d;
        bits -= d;
        r.c[i] = static_cast<std::int16_t>((y * kQ + (1u << (d - 1))) >> d);
    }
}

void from_message(Poly& r, const std::uint8_t m[32]) {
    for (int i = 0; i < kN; ++i) {
        const std::int16_t bit = static_cast<std::int16_t>((m[i / 8] >> (i % 8)) & 1);
        r.c[i] = static_cast<std::int16_t>(-bit & ((kQ + 1) / 2));
    }
}

void to_message(std::uint8_t m[32], const Poly& a) {
    for (int i = 0; i < 32; ++i) m[i] = 0;
    for (int i = 0; i < kN; ++i) {
        const std::uint16_t b = compress(to_canonical(barrett_reduce(a.c[i])), 1);
        m[i / 8] = static_cast<std::uint8_t>(m[i / 8] | (b << (i % 8)));
    }
}

}  // namespace qkd::mlkem::detail
