#pragma once
// Secrets are types (STYLE.md habit 6): move-only, zeroized on destruction, never formatted.
// There is deliberately no operator<< and no fmt::formatter: logging a secret does not compile.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace qkd {

void secure_zero(void* p, std::size_t n);

class SecretBytes {
public:
    SecretBytes() = default;
    explicit SecretBytes(std::size_t n) : data_(n, 0) {}
    explicit SecretBytes(std::span<const std::uint8_t> src) : data_(src.begin(), src.end()) {}
    ~SecretBytes() { wipe(); }

    SecretBytes(const SecretBytes&) = delete;
    SecretBytes& operator=(const SecretBytes&) = delete;
    SecretBytes(SecretBytes&& o) noexcept : data_(std::move(o.data_)) { o.data_.clear(); }
    SecretBytes& operator=(SecretBytes&& o) noexcept {
        if (this != &o) {
            wipe();
            data_ = std::move(o.data_);
            o.data_.clear();
        }
        return *this;
    }

    // An explicit copy, so that duplicating a secret is always visible in the code.
    SecretBytes clone() const { return SecretBytes(std::span<const std::uint8_t>(data_)); }

    std::size_t size() const { return data_.size(); }
    bool empty() const { return data_.empty(); }
    std::uint8_t* data() { return data_.data(); }
    const std::uint8_t* data() const { return data_.data(); }
    std::uint8_t& operator[](std::size_t i) { return data_[i]; }
    const std::uint8_t& operator[](std::size_t i) const { return data_[i]; }
    std::span<const std::uint8_t> view() const { return data_; }
    std::span<std::uint8_t> mut_view() { return data_; }

    // Grows or shrinks; the released tail is wiped first.
    void resize(std::size_t n);
    void append(std::span<const std::uint8_t> more);
    void wipe();

private:
    std::vector<std::uint8_t> data_;
};

// Constant-time comparison of equal-length buffers; different lengths compare unequal
// (lengths are public).
bool ct_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);
inline bool ct_equal(const SecretBytes& a, const SecretBytes& b) { return ct_equal(a.view(), b.view()); }

}  // namespace qkd
