#include "qkd/crypto/digest.hpp"

#include <openssl/evp.h>

#include <cstdlib>

namespace qkd::crypto {
namespace {

template <std::size_t N>
std::array<std::uint8_t, N> digest(const char* name, std::initializer_list<std::span<const std::uint8_t>> parts) {
    static EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
    std::array<std::uint8_t, N> out{};
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    if (!md || !ctx || EVP_DigestInit_ex(ctx, md, nullptr) != 1) std::abort();
    for (auto p : parts)
        if (EVP_DigestUpdate(ctx, p.data(), p.size()) != 1) std::abort();
    unsigned len = 0;
    if (EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 || len != N) std::abort();
    EVP_MD_CTX_free(ctx);
    return out;
}

}  // namespace

std::array<std::uint8_t, 20> sha1(std::initializer_list<std::span<const std::uint8_t>> parts) {
    return digest<20>("SHA1", parts);
}
std::array<std::uint8_t, 32> sha256(std::initializer_list<std::span<const std::uint8_t>> parts) {
    return digest<32>("SHA256", parts);
}

}  // namespace qkd::crypto
