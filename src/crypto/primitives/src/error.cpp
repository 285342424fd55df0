#include "qkd/crypto/error.hpp"

namespace qkd::crypto {

std::string_view to_string(CryptoErrc c) {
    switch (c) {
        case CryptoErrc::InvalidKey: return "invalid key";
        case CryptoErrc::InvalidPeerValue: return "invalid peer public value";
        case CryptoErrc::Unsupported: return "unsupported algorithm";
        case CryptoErrc::Backend: return "OpenSSL failure";
        case CryptoErrc::AuthFailed: return "authentication tag mismatch";
        case CryptoErrc::TooLong: return "requested output too long";
    }
    return "unknown crypto error";
}

}  // namespace qkd::crypto
