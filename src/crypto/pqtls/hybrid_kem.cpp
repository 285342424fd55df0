// X25519MLKEM768 key shares and secrets on our ML-KEM-768 and OpenSSL's X25519.
#include "hybrid_kem.hpp"

#include <openssl/evp.h>

#include <memory>

#include "qkd/crypto/mlkem.hpp"

namespace qkd::pqtls::hybrid {
namespace {

constexpr auto kMlKem = qkd::mlkem::ParamSet::MlKem768;

struct PctxDeleter { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PctxPtr = std::unique_ptr<EVP_PKEY_CTX, PctxDeleter>;

// A fresh X25519 key pair and its 32-byte public key.
PkeyPtr x25519_keygen(std::uint8_t pub[kX25519Size]) {
    PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
    std::size_t len = kX25519Size;
    if (!key || EVP_PKEY_get_raw_public_key(key.get(), pub, &len) != 1 || len != kX25519Size) return nullptr;
    return key;
}

// X25519(key, peer_pub) into out (32 bytes); refuses the all-zero result (RFC 7748 6.1,
// RFC 8446 7.4.2), checked without a secret-dependent early exit.
qkd::Result<void, std::string> x25519(EVP_PKEY* key, std::span<const std::uint8_t> peer_pub, std::uint8_t* out) {
    PkeyPtr peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_pub.data(), peer_pub.size()));
    if (!peer) return qkd::Err{std::string("X25519: cannot load the peer public key (expected 32 bytes)")};
    PctxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
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
    ClientKey key{std::move(kp.ek), std::move(kp.dk), nullptr};
    std::uint8_t pub[kX25519Size];
    key.x25519 = x25519_keygen(pub);
    if (!key.x25519) return qkd::Err{std::string("X25519 key generation failed")};
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
    Encapsulated out{qkd::SecretBytes(kSecretSize), std::move(enc->ciphertext)};
    std::uint8_t pub[kX25519Size];
    PkeyPtr eph = x25519_keygen(pub);
    if (!eph) return qkd::Err{std::string("X25519 key generation failed")};
    out.server_share.insert(out.server_share.end(), pub, pub + kX25519Size);
    auto dh = x25519(eph.get(), client_share.subspan(kMlKemEkSize), out.secret.data() + 32);
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
    if (!key.x25519) return qkd::Err{std::string("X25519MLKEM768: client key has no X25519 part")};
    auto dh = x25519(key.x25519.get(), server_share.subspan(kMlKemCtSize), secret.data() + 32);
    if (!dh) return qkd::Err{"X25519MLKEM768 server share: " + dh.error()};
    for (std::size_t i = 0; i < 32; ++i) secret[i] = (*k)[i];
    return secret;
}

}  // namespace qkd::pqtls::hybrid
