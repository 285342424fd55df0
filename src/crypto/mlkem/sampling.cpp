// SampleNTT and SamplePolyCBD (FIPS 203 Alg. 7, 8).
#include "sampling.hpp"

#include <vector>

#include "qkd/common/secret.hpp"
#include "symmetric.hpp"

namespace qkd::mlkem::detail {
namespace {

constexpr std::size_t kShake128Rate = 168;
// 3 blocks give 336 candidates for 256 coefficients (acceptance 3329/4096), enough except with
// probability about 2^-30; rarer seeds squeeze a longer prefix of the same SHAKE128 stream.
constexpr std::size_t kFirstSqueeze = 3 * kShake128Rate;

// Parses candidates from buf into a; returns the number of coefficients filled.
int parse(Poly& a, int filled, const std::uint8_t* buf, std::size_t len) {
    for (std::size_t pos = 0; pos + 3 <= len && filled < kN; pos += 3) {
        const std::uint16_t d1 = static_cast<std::uint16_t>(buf[pos] | ((buf[pos + 1] & 0x0F) << 8));
        const std::uint16_t d2 = static_cast<std::uint16_t>((buf[pos + 1] >> 4) | (buf[pos + 2] << 4));
        if (d1 < kQ) a.c[filled++] = static_cast<std::int16_t>(d1);
        if (d2 < kQ && filled < kN) a.c[filled++] = static_cast<std::int16_t>(d2);
    }
    return filled;
}

}  // namespace

void sample_ntt(Poly& a, const std::uint8_t rho[32], std::uint8_t i, std::uint8_t j) {
    std::uint8_t buf[kFirstSqueeze];
    xof(buf, rho, i, j);
    int filled = parse(a, 0, buf, sizeof buf);
    // OpenSSL 3.0 can squeeze a SHAKE context only once, so an unlucky seed re-derives a longer
    // prefix of the same stream and continues parsing where the first pass stopped.
    std::size_t have = sizeof buf;
    while (filled < kN) {
        const std::size_t more = have * 2;
        std::vector<std::uint8_t> longer(more);
        xof(longer, rho, i, j);
        filled = parse(a, filled, longer.data() + have, more - have);
        have = more;
    }
}

// Alg. 8: f[i] = sum of eta bits - sum of the next eta bits, on word-sized bit sums.
void sample_cbd(Poly& r, const std::uint8_t sigma[32], std::uint8_t n, int eta) {
    std::uint8_t buf[64 * 3];
    const std::size_t len = 64u * static_cast<std::size_t>(eta);
    prf({buf, len}, sigma, n);
    if (eta == 2) {
        for (int w = 0; w < kN / 8; ++w) {
            const std::uint32_t t = static_cast<std::uint32_t>(buf[4 * w]) |
                                    static_cast<std::uint32_t>(buf[4 * w + 1]) << 8 |
                                    static_cast<std::uint32_t>(buf[4 * w + 2]) << 16 |
                                    static_cast<std::uint32_t>(buf[4 * w + 3]) << 24;
            const std::uint32_t s = (t & 0x55555555u) + ((t >> 1) & 0x55555555u);
            for (int k = 0; k < 8; ++k) {
                const std::int16_t x = static_cast<std::int16_t>((s >> (4 * k)) & 3);
                const std::int16_t y = static_cast<std::int16_t>((s >> (4 * k + 2)) & 3);
                r.c[8 * w + k] = static_cast<std::int16_t>(x - y);
            }
        }
    } else {  // eta == 3
        for (int w = 0; w < kN / 4; ++w) {
            const std::uint32_t t = static_cast<std::uint32_t>(buf[3 * w]) |
                                    static_cast<std::uint32_t>(buf[3 * w + 1]) << 8 |
                                    static_cast<std::uint32_t>(buf[3 * w + 2]) << 16;
            const std::uint32_t s = (t & 0x00249249u) + ((t >> 1) & 0x00249249u) + ((t >> 2) & 0x00249249u);
            for (int k = 0; k < 4; ++k) {
                const std::int16_t x = static_cast<std::int16_t>((s >> (6 * k)) & 7);
                const std::int16_t y = static_cast<std::int16_t>((s >> (6 * k + 3)) & 7);
                r.c[4 * w + k] = static_cast<std::int16_t>(x - y);
            }
        }
    }
    qkd::secure_zero(buf, sizeof buf);
}

}  // namespace qkd::mlkem::detail
