#pragma once
// X25519MLKEM768 as a KEM (draft-ietf-tls-ecdhe-mlkem-03, section 3; IANA group 0x11EC):
//   client share   = ML-KEM-768 ek (1184) || X25519 public key (32)
//   server share   = ML-KEM-768 ciphertext (1088) || X25519 public key (32)
//   shared secret  = ML-KEM-768 K (32) || X25519 shared secret (32)
// The ML-KEM part comes first in every field (unlike the other hybrid groups of the draft).
#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/common/secret.hpp"

namespace qkd::pqtls::hybrid {

inline constexpr std::size_t kMlKemEkSize = 1184;
inline constexpr std::size_t kMlKemCtSize = 1088;
inline constexpr std::size_t kX25519Size = 32;
inline constexpr std::size_t kClientShareSize = kMlKemEkSize + kX25519Size;  // 1216
inline constexpr std::size_t kServerShareSize = kMlKemCtSize + kX25519Size;  // 1120
inline constexpr std::size_t kSecretSize = 64;

struct PkeyDeleter {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

// The client's ephemeral key pair. The X25519 private key stays inside OpenSSL's EVP_PKEY
// (wiped by OpenSSL on free), which saves re-deriving its public key at decapsulation.
struct ClientKey {
    std::vector<std::uint8_t> share;                   // client key share (public)
    qkd::SecretBytes mlkem_dk;                         // ML-KEM-768 decapsulation key
    std::unique_ptr<EVP_PKEY, PkeyDeleter> x25519;     // X25519 key pair
};

struct Encapsulated {
    qkd::SecretBytes secret;                // 64 bytes
    std::vector<std::uint8_t> server_share;  // 1120 bytes
};

// Errors are texts naming what was wrong with the peer's share and what was expected.
qkd::Result<ClientKey, std::string> generate();
// Server side: checks the client share (length, ML-KEM modulus check, X25519 point) and
// encapsulates to it. An all-zero X25519 shared secret is refused (RFC 8446 7.4.2).
qkd::Result<Encapsulated, std::string> encapsulate(std::span<const std::uint8_t> client_share);
// Client side: decapsulates the server share with the client key.
qkd::Result<qkd::SecretBytes, std::string> decapsulate(const ClientKey& key,
                                                       std::span<const std::uint8_t> server_share);
// The 7.2 check on a client share alone (used when the server receives it).
bool client_share_valid(std::span<const std::uint8_t> client_share);

}  // namespace qkd::pqtls::hybrid
