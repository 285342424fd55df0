#pragma once
// Randomness behind an interface (STYLE.md habit 11): OpenSSL's DRBG in production,
// a deterministic one in tests.
#include <cstdint>
#include <span>

namespace qkd {

class Rng {
public:
    virtual ~Rng() = default;
    virtual void fill(std::span<std::uint8_t> out) = 0;
};

class SystemRng final : public Rng {
public:
    void fill(std::span<std::uint8_t> out) override;  // RAND_bytes; aborts on failure
    static SystemRng& instance();
};

void random_bytes(std::span<std::uint8_t> out);

}  // namespace qkd
