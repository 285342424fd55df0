#pragma once
#include <string>

namespace qkd {

// Drains OpenSSL's error queue into one readable line ("...; ..."), for error messages.
std::string openssl_errors();

}  // namespace qkd
