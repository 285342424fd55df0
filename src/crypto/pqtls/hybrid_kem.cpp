// X25519MLKEM768 key shares and secrets on our ML-KEM-768 and OpenSSL's X25519.
#include "hybrid_kem.hpp"

#include <openssl/evp.h>

#include <memory>

#include "qkd/common/rng.hpp"
#include "qkd/crypto/mlkem.hpp"

namespace qkd::pqtls::hybrid {
namespace {

constexpr auto kMlKem = qkd::mlkem::ParamSet::MlKem768;

struct PkeyDeleter { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct PctxDeleter { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PctxPtr = std::unique_ptr<EVP_PKEY_CTX, PctxDeleter>;

// X25519 public key of a private scalar.
bool x25519_public(std::span<const std::uint8_t> priv, std::uint8_t out[kX25519Size]) {
    PkeyPtr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, priv.data(), priv.size()));
    std::size_t len = kX25519Size;
    return key && EVP_PKEY_get_raw_public_key(key.get(), out, &len) == 1 && len == kX25519Size;
}

// X25519(priv, peer_pub) into out (32 bytes); refuses the all-zero result (RFC 7748 6.1,
// RFC 8446 7.4.2), comparing without a secret-dependent early exit.
qkd::Result<void, std::string> x25519(std::span<const std::uint8_t> priv, std::span<const std::uint8_t> peer_pub,
                                      std::uint8_t* out) {
    PkeyPtr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, priv.data(), priv.size()));
    PkeyPtr peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_pub.data(), peer_pub.size()));
    if (!key || !peer) return qkd::Err{std::string("X25519: cannot load key (expected 32-byte keys)")};
    PctxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    std::size_t len = kX25519Size;
    if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
        EVP_PKEY_derive(ctx.get(), out, &len) != 1 || len != kX25519Size)
        return qkd::Err{std::string("X25519: key agreement failed (low-order peer public key?)")};
    std::uint8_t acc = 0;
    for (std::size_t i = 0; i < kX25519Size; ++i) acc = static_cast<std::uint8_t>(acc | out[i]);
    if (acc == 0) return qkd::Err{std::string("X25519: peer public key gives an all-zero shared secret")};
    return {};
}

}  // namespace

qkd::Result<ClientKey, std::string> generate() {
    auto kp = qkd::mlkem::keygen(kMlKem);
    ClientKey key{std::move(kp.ek), std::move(kp.dk), qkd::SecretBytes(kX25519Size)};
    qkd::random_bytes(key.x25519_priv.mut_view());
    std::uint8_t pub[kX25519Size];
    if (!x25519_public(key.x25519_priv.view(), pub)) return qkd::Err{std::string("X25519 key generation failed")};
    key.share.insert(key.share.end(), pub, pub + kX25519Size);
    return key;
}

bool client_share_valid(std::span<const std::uint8_t> client_share) {
    return client_share.size() == kClientShareSize &&
           qkd::mlkem::check_ek(kMlKem, client_share.first(kMlKemEkSize));
}

qkd::Result<Encapsulated, std::string> encapsulate(std::span<const std::uint8_t> client_share) {
    if (client_share.size() != kClientShareSize)
        return qkd::Err{"X25519MLKEM768 client share has " + std::to_string(client_share.size()) +
                        " bytes; expected 1216 (ML-KEM-768 ek 1184 || X25519 32)"};
    auto enc = qkd::mlkem::encaps(kMlKem, client_share.first(kMlKemEkSize));
    if (!enc) return qkd::Err{"X25519MLKEM768 client share: " + std::string(qkd::mlkem::to_string(enc.error()))};
    qkd::SecretBytes eph(kX25519Size);
    qkd::random_bytes(eph.mut_view());
    Encapsulated out{qkd::SecretBytes(kSecretSize), std::move(enc->ciphertext)};
    std::uint8_t pub[kX25519Size];
    if (!x25519_public(eph.view(), pub)) return qkd::Err{std::string("X25519 key generation failed")};
    out.server_share.insert(out.server_share.end(), pub, pub + kX25519Size);
    auto dh = x25519(eph.view(), client_share.subspan(kMlKemEkSize), out.secret.data() + 32);
    if (!dh) return qkd::Err{"X25519MLKEM768 client share: " + dh.error()};
    for (std::size_t i = 0; i < 32; ++i) out.secret[i] = enc->shared_secret[i];
    return out;
}

qkd::Result<qkd::SecretBytes, std::string> decapsulate(const ClientKey& key,
                                                       std::span<const std::uint8_t> server_share) {
    if (server_share.size() != kServerShareSize)
        return qkd::Err{"X25519MLKEM768 server share has " + std::to_string(server_share.size()) +
                        " bytes; expected 1120 (ML-KEM-768 ciphertext 1088 || X25519 32)"};
    auto k = qkd::mlkem::decaps(kMlKem, key.mlkem_dk.view(), server_share.first(kMlKemCtSize));
    if (!k) return qkd::Err{"X25519MLKEM768: " + std::string(qkd::mlkem::to_string(k.error()))};
    qkd::SecretBytes secret(kSecretSize);
    auto dh = x25519(key.x25519_priv.view(), server_share.subspan(kMlKemCtSize), secret.data() + 32);
    if (!dh) return qkd::Err{"X25519MLKEM768 server share: " + dh.error()};
    for (std::size_t i = 0; i < 32; ++i) secret[i] = (*k)[i];
    return secret;
}

}  // namespace qkd::pqtls::hybrid
