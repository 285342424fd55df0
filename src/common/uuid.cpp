#include "qkd/common/uuid.hpp"

#include "qkd/common/encoding.hpp"
#include "qkd/common/rng.hpp"

namespace qkd {

std::optional<Uuid> uuid_parse(std::string_view s) {
    if (s.size() != 36) return std::nullopt;
    Uuid u{};
    std::size_t o = 0;
    for (std::size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return std::nullopt;
            ++i;
            continue;
        }
        auto b = hex_decode(s.substr(i, 2));
        if (!b) return std::nullopt;
        u[o++] = (*b)[0];
        i += 2;
    }
    return u;
}

std::string uuid_format(const Uuid& u) {
    std::string h = hex_encode(u);
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
           h.substr(20, 12);
}

Uuid uuid_random_v4() {
    Uuid u;
    random_bytes(u);
    u[6] = static_cast<std::uint8_t>((u[6] & 0x0f) | 0x40);  // RFC 9562 5.4: version 4
    u[8] = static_cast<std::uint8_t>((u[8] & 0x3f) | 0x80);  // variant 10
    return u;
}

}  // namespace qkd
