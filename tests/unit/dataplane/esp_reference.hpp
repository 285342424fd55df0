#pragma once
// An independent RFC 4303 + RFC 4106 ESP packet builder for the tests: straight-line OpenSSL
// calls over a plaintext the test spells out byte by byte (payload, padding, pad length, next
// header), so the production code is checked against a second computation, not against itself.
#include <openssl/evp.h>

#include <cstdint>
#include <vector>

namespace esp_ref {

inline void be32(std::vector<std::uint8_t>& v, std::uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<std::uint8_t>(x >> s));
}

// Returns SPI || seq_lo || IV(seq64) || AES-GCM(plaintext) || ICV.
inline std::vector<std::uint8_t> build(const std::vector<std::uint8_t>& key,
                                       const std::vector<std::uint8_t>& salt, std::uint32_t spi,
                                       std::uint64_t seq, bool esn,
                                       const std::vector<std::uint8_t>& plaintext) {
    std::vector<std::uint8_t> out;
    be32(out, spi);
    be32(out, static_cast<std::uint32_t>(seq));
    be32(out, static_cast<std::uint32_t>(seq >> 32));
    be32(out, static_cast<std::uint32_t>(seq));
    std::vector<std::uint8_t> nonce(salt);
    nonce.insert(nonce.end(), out.begin() + 8, out.begin() + 16);
    std::vector<std::uint8_t> aad;
    be32(aad, spi);
    if (esn) be32(aad, static_cast<std::uint32_t>(seq >> 32));
    be32(aad, static_cast<std::uint32_t>(seq));
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(c, key.size() == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(), nullptr,
                       key.data(), nonce.data());
    int l = 0;
    EVP_EncryptUpdate(c, nullptr, &l, aad.data(), static_cast<int>(aad.size()));
    std::vector<std::uint8_t> ct(plaintext.size() + 16);
    EVP_EncryptUpdate(c, ct.data(), &l, plaintext.data(), static_cast<int>(plaintext.size()));
    EVP_EncryptFinal_ex(c, ct.data() + l, &l);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, ct.data() + plaintext.size());
    EVP_CIPHER_CTX_free(c);
    out.insert(out.end(), ct.begin(), ct.end());
    return out;
}

}  // namespace esp_ref
