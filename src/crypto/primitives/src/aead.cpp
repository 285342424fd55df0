#include "qkd/crypto/aead.hpp"

#include <openssl/evp.h>

#include <cstring>

namespace qkd::crypto {

struct AesGcm::Impl {
    EVP_CIPHER_CTX* enc = nullptr;
    EVP_CIPHER_CTX* dec = nullptr;
    std::uint8_t salt[kGcmSaltSize]{};
    ~Impl() {
        EVP_CIPHER_CTX_free(enc);
        EVP_CIPHER_CTX_free(dec);
    }
};

AesGcm::~AesGcm() = default;
AesGcm::AesGcm(AesGcm&&) noexcept = default;
AesGcm& AesGcm::operator=(AesGcm&&) noexcept = default;

Result<AesGcm, CryptoError> AesGcm::create(std::span<const std::uint8_t> key, std::span<const std::uint8_t> salt) {
    const EVP_CIPHER* cipher = key.size() == 16 ? EVP_aes_128_gcm() : key.size() == 32 ? EVP_aes_256_gcm() : nullptr;
    if (!cipher)
        return Err{CryptoError{CryptoErrc::InvalidKey,
                               "AES-GCM key of " + std::to_string(key.size()) + " octets, expected 16 or 32"}};
    if (salt.size() != kGcmSaltSize)
        return Err{CryptoError{CryptoErrc::InvalidKey,
                               "AES-GCM salt of " + std::to_string(salt.size()) + " octets, expected 4"}};
    AesGcm g;
    g.impl_ = std::make_unique<Impl>();
    std::memcpy(g.impl_->salt, salt.data(), kGcmSaltSize);
    g.impl_->enc = EVP_CIPHER_CTX_new();
    g.impl_->dec = EVP_CIPHER_CTX_new();
    if (!g.impl_->enc || !g.impl_->dec || EVP_EncryptInit_ex(g.impl_->enc, cipher, nullptr, key.data(), nullptr) != 1 ||
        EVP_DecryptInit_ex(g.impl_->dec, cipher, nullptr, key.data(), nullptr) != 1)
        return Err{CryptoError{CryptoErrc::Backend, "EVP AES-GCM init failed"}};
    return g;
}

Result<void, CryptoError> AesGcm::seal(std::span<const std::uint8_t> iv, std::span<const std::uint8_t> aad,
                                       std::span<const std::uint8_t> plaintext, std::span<std::uint8_t> out) {
    if (iv.size() != kGcmIvSize || out.size() < plaintext.size() + kGcmIcvSize)
        return Err{CryptoError{CryptoErrc::InvalidKey, "AES-GCM seal: IV must be 8 octets and output large enough"}};
    std::uint8_t nonce[12];
    std::memcpy(nonce, impl_->salt, 4);
    std::memcpy(nonce + 4, iv.data(), 8);
    EVP_CIPHER_CTX* c = impl_->enc;
    int len = 0;
    if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, nonce) != 1 ||
        (!aad.empty() && EVP_EncryptUpdate(c, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) ||
        (!plaintext.empty() &&
         EVP_EncryptUpdate(c, out.data(), &len, plaintext.data(), static_cast<int>(plaintext.size())) != 1) ||
        EVP_EncryptFinal_ex(c, out.data() + plaintext.size(), &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, kGcmIcvSize, out.data() + plaintext.size()) != 1)
        return Err{CryptoError{CryptoErrc::Backend, "EVP AES-GCM encryption failed"}};
    return {};
}

Result<void, CryptoError> AesGcm::open(std::span<const std::uint8_t> iv, std::span<const std::uint8_t> aad,
                                       std::span<const std::uint8_t> in, std::span<std::uint8_t> out) {
    if (iv.size() != kGcmIvSize || in.size() < kGcmIcvSize || out.size() < in.size() - kGcmIcvSize)
        return Err{CryptoError{CryptoErrc::InvalidKey,
                               "AES-GCM open: IV must be 8 octets, input at least the 16-octet ICV"}};
    const std::size_t n = in.size() - kGcmIcvSize;
    std::uint8_t nonce[12];
    std::memcpy(nonce, impl_->salt, 4);
    std::memcpy(nonce + 4, iv.data(), 8);
    EVP_CIPHER_CTX* c = impl_->dec;
    int len = 0;
    if (EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, nonce) != 1 ||
        (!aad.empty() && EVP_DecryptUpdate(c, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) ||
        (n && EVP_DecryptUpdate(c, out.data(), &len, in.data(), static_cast<int>(n)) != 1) ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, kGcmIcvSize, const_cast<std::uint8_t*>(in.data() + n)) != 1)
        return Err{CryptoError{CryptoErrc::Backend, "EVP AES-GCM decryption failed"}};
    // The tag check inside EVP is constant time.
    if (EVP_DecryptFinal_ex(c, out.data() + n, &len) != 1) {
        for (std::size_t i = 0; i < n; ++i) out[i] = 0;
        return Err{CryptoError{CryptoErrc::AuthFailed, "AES-GCM ICV mismatch"}};
    }
    return {};
}

}  // namespace qkd::crypto
