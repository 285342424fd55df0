#include "qkd/common/secret.hpp"

#include <openssl/crypto.h>

namespace qkd {

void secure_zero(void* p, std::size_t n) {
    if (p != nullptr && n != 0) OPENSSL_cleanse(p, n);
}

void SecretBytes::wipe() {
    secure_zero(data_.data(), data_.capacity() >= data_.size() ? data_.size() : 0);
    data_.clear();
}

void SecretBytes::resize(std::size_t n) {
    if (n < data_.size()) {
        secure_zero(data_.data() + n, data_.size() - n);
        data_.resize(n);
        return;
    }
    if (n > data_.capacity()) {
        // Reallocation would leave a stale copy behind: move through a fresh buffer and wipe.
        std::vector<std::uint8_t> bigger;
        bigger.reserve(n);
        bigger.assign(data_.begin(), data_.end());
        secure_zero(data_.data(), data_.size());
        data_.swap(bigger);
    }
    data_.resize(n, 0);
}

void SecretBytes::append(std::span<const std::uint8_t> more) {
    const auto old = data_.size();
    resize(old + more.size());
    for (std::size_t i = 0; i < more.size(); ++i) data_[old + i] = more[i];
}

bool ct_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
    if (a.size() != b.size()) return false;
    if (a.empty()) return true;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace qkd
