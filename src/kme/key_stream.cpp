#include "qkd/kme/key_stream.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "qkd/common/encoding.hpp"

namespace qkd::kme {
namespace {

SecretBytes hkdf_sha256(std::span<const std::uint8_t> ikm, std::string_view salt, std::string_view info, std::size_t n) {
    SecretBytes out(n);
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_octet_string("key", const_cast<std::uint8_t*>(ikm.data()), ikm.size()),
        OSSL_PARAM_construct_octet_string("salt", const_cast<char*>(salt.data()), salt.size()),
        OSSL_PARAM_construct_octet_string("info", const_cast<char*>(info.data()), info.size()),
        OSSL_PARAM_construct_end()};
    if (!ctx || EVP_KDF_derive(ctx, out.data(), out.size(), params) != 1) {
        std::fputs("qkd-kme: HKDF-SHA256 unavailable in OpenSSL\n", stderr);
        std::abort();
    }
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return out;
}

struct CipherCtx {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    std::uint64_t stream = 0;  // id of the KeyStream whose key schedule ctx holds (0: none)
    ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }  // frees (and cleanses) the key schedule
};

std::atomic<std::uint64_t> g_next_stream_id{1};

}  // namespace

KeyStream::KeyStream(std::span<const std::uint8_t> link_seed, const std::string& direction_label)
    : key_(hkdf_sha256(link_seed, "qkdgate emulated QKD link v1", direction_label, 32)), label_(direction_label), id_(g_next_stream_id++) {
    // Another HKDF output (other salt): tells whether two KMEs hold the same seed, and nothing about
    // the stream's key.
    auto check = hkdf_sha256(link_seed, "qkdgate emulated QKD link check v1", direction_label, 8);
    check_ = "seed check " + hex_encode(check.view());
}

void KeyStream::read(std::uint64_t offset, std::span<std::uint8_t> out) const {
    if (out.empty()) return;
    thread_local CipherCtx c;
    // CTR block counter = offset / 16, big-endian in the low 8 bytes of the IV.
    std::uint8_t iv[16] = {};
    std::uint64_t block = offset / 16;
    for (int i = 0; i < 8; ++i) iv[15 - i] = static_cast<std::uint8_t>(block >> (8 * i));
    // The AES key schedule is set up once per thread and stream; later reads only load the IV.
    // Streams are told apart by a process-unique id, never by address.
    const bool same = c.stream == id_;
    c.stream = 0;
    if ((same ? EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, nullptr, iv) : EVP_EncryptInit_ex(c.ctx, EVP_aes_256_ctr(), nullptr, key_.data(), iv)) != 1) {
        std::fputs("qkd-kme: AES-256-CTR unavailable in OpenSSL\n", stderr);
        std::abort();
    }
    std::uint8_t zeros[64] = {};
    std::uint8_t skip[16];
    int len = 0;
    if (auto s = offset % 16; s != 0) EVP_EncryptUpdate(c.ctx, skip, &len, zeros, static_cast<int>(s));
    std::size_t done = 0;
    while (done < out.size()) {
        int n = static_cast<int>(std::min<std::size_t>(sizeof zeros, out.size() - done));
        if (EVP_EncryptUpdate(c.ctx, out.data() + done, &len, zeros, n) != 1) {
            std::fputs("qkd-kme: AES-256-CTR failed\n", stderr);
            std::abort();
        }
        done += static_cast<std::size_t>(n);
    }
    secure_zero(skip, sizeof skip);
    // OpenSSL keeps the last keystream block in the context (the rest of it is the start of the
    // next, undelivered key when `out` ends inside a block). One block at a counter the stream
    // never reaches (2^64 blocks on) overwrites it; that block is wiped here.
    std::uint8_t far_iv[16] = {0xff};
    std::uint8_t scrub[16];
    if (EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, nullptr, far_iv) != 1 || EVP_EncryptUpdate(c.ctx, scrub, &len, zeros, sizeof scrub) != 1) {
        std::fputs("qkd-kme: AES-256-CTR failed\n", stderr);
        std::abort();
    }
    secure_zero(scrub, sizeof scrub);
    c.stream = id_;
}

SecretBytes read_seed_file(const std::string& path) {
    // Read with plain read(2) into a buffer that is wiped afterwards (an ifstream's own buffer
    // would keep a copy of the seed in freed memory).
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(fmt::format("{}: cannot open link seed file", path));
    constexpr std::size_t kMaxSeedFile = 64 * 1024;
    std::string text(kMaxSeedFile + 1, '\0'), hex;
    std::size_t got = 0;
    for (;;) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int e = errno;
            ::close(fd);
            wipe_string(text);
            throw std::runtime_error(fmt::format("{}: cannot read link seed file: {}", path, std::strerror(e)));
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
        if (got == text.size()) break;
    }
    ::close(fd);
    if (got > kMaxSeedFile) {
        wipe_string(text);
        throw std::runtime_error(fmt::format("{}: a link seed file holds at most {} bytes", path, kMaxSeedFile));
    }
    text.resize(got);
    for (char c : text)
        if (!std::isspace(static_cast<unsigned char>(c))) hex += c;
    wipe_string(text);
    auto bytes = hex_decode(hex);
    wipe_string(hex);
    if (!bytes || bytes->size() < 32) throw std::runtime_error(fmt::format("{}: expected at least 64 hex digits (32 bytes) of link seed", path));
    SecretBytes seed{std::span<const std::uint8_t>(*bytes)};
    secure_zero(bytes->data(), bytes->size());
    return seed;
}

}  // namespace qkd::kme
