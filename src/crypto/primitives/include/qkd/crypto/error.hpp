#pragma once
// Error channel of the crypto layer (STYLE.md habit 8).
#include <string_view>

#include "qkd/common/error.hpp"

namespace qkd::crypto {

enum class CryptoErrc { InvalidKey, InvalidPeerValue, Unsupported, Backend, AuthFailed, TooLong };
using CryptoError = qkd::Error<CryptoErrc>;
std::string_view to_string(CryptoErrc c);

}  // namespace qkd::crypto
