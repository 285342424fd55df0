#pragma once
// Base64 (RFC 4648) and hex. The secret variants run without secret-dependent branches or
// table lookups (STYLE.md habit 7); the public variants are for IDs and test vectors.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkd/common/secret.hpp"

namespace qkd {

std::string base64_encode(std::span<const std::uint8_t> in);
// Strict RFC 4648 §4: padding required, no whitespace, canonical trailing bits.
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view in);
// Constant-time in the data (length and validity are public).
std::optional<SecretBytes> base64_decode_secret(std::string_view in);

std::string hex_encode(std::span<const std::uint8_t> in);
std::optional<std::vector<std::uint8_t>> hex_decode(std::string_view in);

// Wipes a std::string that held secret text (e.g. a Base64 key) in place.
void wipe_string(std::string& s);

}  // namespace qkd
