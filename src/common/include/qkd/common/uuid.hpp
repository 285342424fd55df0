#pragma once
// UUIDs as key_IDs (ETSI 014 6.3): lowercase canonical text <-> 16 bytes (RFC 9562).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace qkd {

using Uuid = std::array<std::uint8_t, 16>;

// Accepts upper or lower case hex in 8-4-4-4-12 form only.
std::optional<Uuid> uuid_parse(std::string_view s);
std::string uuid_format(const Uuid& u);  // lowercase
Uuid uuid_random_v4();

}  // namespace qkd
