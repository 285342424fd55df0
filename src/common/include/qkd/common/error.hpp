#pragma once
// A generic error with a code enum per layer and a human message that quotes the bad input
// and says what was expected.
#include <string>
#include <utility>

namespace qkd {

template <class Code>
struct Error {
    Code code{};
    std::string message;
    Error() = default;
    Error(Code c, std::string m) : code(c), message(std::move(m)) {}
};

}  // namespace qkd
