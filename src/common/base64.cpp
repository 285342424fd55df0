// RFC 4648 §4 Base64 without secret-dependent branches or table lookups: each 6-bit value is
// mapped to its character (and back) with arithmetic on range masks, so key material encoded
// for ETSI 014 answers leaks nothing through the cache or branch predictor.
#include <string>

#include "qkd/common/encoding.hpp"

namespace qkd {
namespace {

// All-ones when lo <= c <= hi, else 0; c, lo, hi are small non-negative ints.
inline int in_range_mask(int c, int lo, int hi) {
    return ((lo - 1 - c) & (c - hi - 1)) >> 8;  // negative only when both differences are
}

inline char enc6(unsigned v) {
    int x = static_cast<int>(v);
    int c = x + 'A';
    c += ((25 - x) >> 8) & ('a' - 'A' - 26);  // 26..51 -> 'a'..'z'
    c -= ((51 - x) >> 8) & ('a' + 26 - '0');  // 52..61 -> '0'..'9'
    c -= ((61 - x) >> 8) & ('0' + 10 - '+');  // 62 -> '+'
    c += ((62 - x) >> 8) & ('/' - '+' - 1);   // 63 -> '/'
    return static_cast<char>(c);
}

// Returns 0..63, or -1 when c is not in the alphabet.
inline int dec6(unsigned char uc) {
    int c = uc;
    int r = -1;
    r += in_range_mask(c, 'A', 'Z') & (c - 'A' + 1);
    r += in_range_mask(c, 'a', 'z') & (c - 'a' + 26 + 1);
    r += in_range_mask(c, '0', '9') & (c - '0' + 52 + 1);
    r += in_range_mask(c, '+', '+') & (62 + 1);
    r += in_range_mask(c, '/', '/') & (63 + 1);
    return r;
}

// Decodes into out (sized by the caller); returns false when the text is not canonical Base64.
template <class Out>
bool decode_into(std::string_view in, Out& out) {
    if (in.size() % 4 != 0) return false;
    std::size_t pad = 0;
    if (!in.empty() && in.back() == '=') pad = (in.size() >= 2 && in[in.size() - 2] == '=') ? 2 : 1;
    const std::size_t n = in.size() / 4 * 3 - pad;
    out.resize(n);
    int bad = 0;
    std::size_t o = 0;
    for (std::size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        int v[4];
        for (int j = 0; j < 4; ++j) {
            const bool is_pad = last && j >= 4 - static_cast<int>(pad);
            v[j] = is_pad ? 0 : dec6(static_cast<unsigned char>(in[i + j]));
            bad |= v[j];  // -1 sets the sign bit
        }
        const unsigned w = (static_cast<unsigned>(v[0] & 63) << 18) | (static_cast<unsigned>(v[1] & 63) << 12) |
                           (static_cast<unsigned>(v[2] & 63) << 6) | static_cast<unsigned>(v[3] & 63);
        const std::size_t take = last ? 3 - pad : 3;
        if (take >= 1) out[o++] = static_cast<std::uint8_t>(w >> 16);
        if (take >= 2) out[o++] = static_cast<std::uint8_t>(w >> 8);
        if (take >= 3) out[o++] = static_cast<std::uint8_t>(w);
        // Canonical form: bits below the last full byte must be zero (RFC 4648 §3.5).
        if (last && pad == 1) bad |= -static_cast<int>((w & 0xff) != 0);
        if (last && pad == 2) bad |= -static_cast<int>((w & 0xffff) != 0);
    }
    return bad >= 0;
}

}  // namespace

std::string base64_encode(std::span<const std::uint8_t> in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const unsigned w = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8) | in[i + 2];
        out += enc6((w >> 18) & 63);
        out += enc6((w >> 12) & 63);
        out += enc6((w >> 6) & 63);
        out += enc6(w & 63);
    }
    const std::size_t left = in.size() - i;
    if (left == 1) {
        const unsigned w = unsigned{in[i]} << 16;
        out += enc6((w >> 18) & 63);
        out += enc6((w >> 12) & 63);
        out += "==";
    } else if (left == 2) {
        const unsigned w = (unsigned{in[i]} << 16) | (unsigned{in[i + 1]} << 8);
        out += enc6((w >> 18) & 63);
        out += enc6((w >> 12) & 63);
        out += enc6((w >> 6) & 63);
        out += '=';
    }
    return out;
}

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view in) {
    std::vector<std::uint8_t> out;
    if (!decode_into(in, out)) return std::nullopt;
    return out;
}

std::optional<SecretBytes> base64_decode_secret(std::string_view in) {
    SecretBytes out;
    if (!decode_into(in, out)) return std::nullopt;
    return out;
}

void wipe_string(std::string& s) {
    secure_zero(s.data(), s.size());
    s.clear();
}

}  // namespace qkd
