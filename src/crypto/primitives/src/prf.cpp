#include "qkd/crypto/prf.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>

namespace qkd::crypto {

std::size_t prf_output_size(PrfAlg alg) {
    switch (alg) {
        case PrfAlg::HmacSha256: return 32;
        case PrfAlg::HmacSha384: return 48;
        case PrfAlg::HmacSha512: return 64;
    }
    std::abort();
}

namespace {
const char* digest_name(PrfAlg alg) {
    switch (alg) {
        case PrfAlg::HmacSha256: return "SHA256";
        case PrfAlg::HmacSha384: return "SHA384";
        case PrfAlg::HmacSha512: return "SHA512";
    }
    std::abort();
}
EVP_MAC* hmac() {
    static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (!mac) std::abort();
    return mac;
}
}  // namespace

struct Prf::Impl {
    EVP_MAC_CTX* ctx = nullptr;
    ~Impl() { EVP_MAC_CTX_free(ctx); }
};

Prf::Prf(PrfAlg alg) : alg_(alg), impl_(std::make_unique<Impl>()) {
    impl_->ctx = EVP_MAC_CTX_new(hmac());
    if (!impl_->ctx) std::abort();
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name(alg)), 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(impl_->ctx, params) != 1) std::abort();
}
Prf::~Prf() = default;
Prf::Prf(Prf&&) noexcept = default;
Prf& Prf::operator=(Prf&&) noexcept = default;

void Prf::compute(Bytes key, std::initializer_list<Bytes> data, std::span<std::uint8_t> out) {
    // HMAC accepts any key length (RFC 4868 2.1.2: the whole Ni | Nr is the key for SKEYSEED).
    static const std::uint8_t empty = 0;
    const std::uint8_t* k = key.empty() ? &empty : key.data();
    if (out.size() < size() || EVP_MAC_init(impl_->ctx, k, key.size(), nullptr) != 1) std::abort();
    for (auto d : data)
        if (!d.empty() && EVP_MAC_update(impl_->ctx, d.data(), d.size()) != 1) std::abort();
    std::size_t len = 0;
    if (EVP_MAC_final(impl_->ctx, out.data(), &len, out.size()) != 1 || len != size()) std::abort();
}

SecretBytes Prf::compute(Bytes key, std::initializer_list<Bytes> data) {
    SecretBytes out(size());
    compute(key, data, out.mut_view());
    return out;
}

Result<SecretBytes, CryptoError> Prf::prf_plus(Bytes key, Bytes seed, std::size_t length) {
    const std::size_t h = size();
    const std::size_t blocks = (length + h - 1) / h;
    if (blocks > 255)
        return Err{CryptoError{CryptoErrc::TooLong, "prf+ output of " + std::to_string(length) +
                                                        " octets needs more than 255 blocks"}};
    SecretBytes out(blocks * h);
    for (std::size_t n = 1; n <= blocks; ++n) {
        const std::uint8_t counter = static_cast<std::uint8_t>(n);
        Bytes prev = n == 1 ? Bytes{} : Bytes(out.data() + (n - 2) * h, h);
        compute(key, {prev, seed, Bytes(&counter, 1)}, out.mut_view().subspan((n - 1) * h, h));
    }
    out.resize(length);
    return out;
}

}  // namespace qkd::crypto
