#include "qkd/common/uuid.hpp"

#include <array>
#include <cstring>

#include "qkd/common/encoding.hpp"
#include "qkd/common/rng.hpp"
#include "qkd/common/secret.hpp"

namespace qkd {
namespace {

// Positions of the four hyphens in the 36-character form 8-4-4-4-12.
bool is_hyphen_pos(std::size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

// Both run once or more per key request; they work in place, without allocating per byte.
std::optional<Uuid> uuid_parse(std::string_view s) {
    if (s.size() != 36) return std::nullopt;
    Uuid u{};
    std::size_t o = 0;
    for (std::size_t i = 0; i < 36;) {
        if (is_hyphen_pos(i)) {
            if (s[i] != '-') return std::nullopt;
            ++i;
            continue;
        }
        const int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        u[o++] = static_cast<std::uint8_t>(hi << 4 | lo);
        i += 2;
    }
    return u;
}

std::string uuid_format(const Uuid& u) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(36, '-');
    std::size_t o = 0;
    for (std::uint8_t b : u) {
        if (is_hyphen_pos(o)) ++o;
        out[o++] = kDigits[b >> 4];
        out[o++] = kDigits[b & 0x0f];
    }
    return out;
}

Uuid uuid_random_v4() {
    // Random bytes are drawn from the DRBG in blocks of 64 UUIDs: one RAND_bytes call (with its
    // locking and fork check) per block instead of per UUID. Key IDs are not secret, only
    // unpredictable; the unused rest of a block is wiped when the thread ends.
    struct Block {
        std::array<std::uint8_t, 16 * 64> bytes{};
        std::size_t used = sizeof bytes;
        ~Block() { secure_zero(bytes.data(), bytes.size()); }
    };
    thread_local Block block;
    if (block.used == block.bytes.size()) {
        random_bytes(block.bytes);
        block.used = 0;
    }
    Uuid u;
    std::memcpy(u.data(), block.bytes.data() + block.used, u.size());
    secure_zero(block.bytes.data() + block.used, u.size());
    block.used += u.size();
    u[6] = static_cast<std::uint8_t>((u[6] & 0x0f) | 0x40);  // RFC 9562 5.4: version 4
    u[8] = static_cast<std::uint8_t>((u[8] & 0x3f) | 0x80);  // variant 10
    return u;
}

}  // namespace qkd
