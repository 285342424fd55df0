#pragma once
#include <string>

#include "qkd/common/error.hpp"
#include "qkd/common/result.hpp"

namespace qkd::ike::wire {

// Errors found while decoding a message. Each maps to the notify RFC 7296 asks us to send (if any).
enum class WireErrc {
    Truncated,             // a length runs past the datagram
    BadLength,             // a length field disagrees with the content
    BadVersion,            // INVALID_MAJOR_VERSION
    BadValue,              // a field outside its allowed range
    UnsupportedCritical,   // UNSUPPORTED_CRITICAL_PAYLOAD
    RuleViolation,         // per-exchange payload rule broken (INVALID_SYNTAX)
    DecryptFailed,         // ICV mismatch: silently dropped (RFC 7296 2.21.2)
    TooMany,               // a bounded list exceeds its limit
};
using WireError = qkd::Error<WireErrc>;

template <class T>
using WireResult = qkd::Result<T, WireError>;

inline qkd::Err<WireError> wire_err(WireErrc c, std::string m) { return qkd::Err{WireError{c, std::move(m)}}; }

}  // namespace qkd::ike::wire
