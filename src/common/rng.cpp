#include "qkd/common/rng.hpp"

#include <openssl/rand.h>

#include <cstdlib>

namespace qkd {

void SystemRng::fill(std::span<std::uint8_t> out) {
    if (out.empty()) return;
    if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) std::abort();  // no entropy: unusable
}

SystemRng& SystemRng::instance() {
    static SystemRng r;
    return r;
}

void random_bytes(std::span<std::uint8_t> out) { SystemRng::instance().fill(out); }

}  // namespace qkd
