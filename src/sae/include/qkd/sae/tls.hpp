#pragma once
// TLS client context of a profile and the KME identity checks (ETSI 014 5.1: the SAE validates
// the KME certificate and confirms the KME ID from it).
#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/sae/error.hpp"
#include "qkd/sae/profile.hpp"

namespace qkd::sae {

struct SslCtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// What the handshake negotiated and whom it reached.
struct TlsInfo {
    std::string version;       // "TLSv1.3"
    std::string group;         // "X25519MLKEM768", "X25519", ...
    std::string cipher;        // "TLS_AES_256_GCM_SHA384"
    std::string peer_subject;  // KME certificate subject, RFC 2253
    std::string peer_cn;       // its commonName
};

// Builds the client context: TLS >= 1.2, the SAE certificate and key, the KME CA as the only trust
// anchor, peer verification on, and the profile's group preference (qkd::pqtls).
// Errors name the profile, the file and the key.
qkd::Result<SslCtxPtr, Error> make_client_context(const Profile& p);

// After a handshake on `ssl`: checks the pin (exact DER match) and the expected KME ID (the
// certificate CN). `pin_der` is the DER of the pinned certificate, empty when none.
qkd::Result<TlsInfo, Error> check_peer(SSL* ssl, const Profile& p, const std::vector<unsigned char>& pin_der);

// DER of the pinned KME certificate, or an empty vector when the profile has no pin.
qkd::Result<std::vector<unsigned char>, Error> load_pin(const Profile& p);

// Sets SNI (host names only) and the name or IP the KME certificate must carry.
qkd::Result<void, Error> set_expected_host(SSL* ssl, const Profile& p);

// Text of a failed handshake: the verification result when the chain was refused, else the
// OpenSSL error queue.
std::string handshake_failure_text(SSL* ssl, const std::string& fallback);

}  // namespace qkd::sae
