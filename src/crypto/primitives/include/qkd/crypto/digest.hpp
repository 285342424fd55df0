#pragma once
// Plain hashes for public values: SHA-1 for NAT detection (RFC 7296 2.23), SHA-256 for cookies.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>

namespace qkd::crypto {

std::array<std::uint8_t, 20> sha1(std::initializer_list<std::span<const std::uint8_t>> parts);
std::array<std::uint8_t, 32> sha256(std::initializer_list<std::span<const std::uint8_t>> parts);

}  // namespace qkd::crypto
