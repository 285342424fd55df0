#pragma once
// Post-quantum TLS 1.3 key exchange: the hybrid group X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem,
// codepoint 0x11EC) and the group preference list used by the KME server and the SAE client.
//
// On OpenSSL >= 3.5 the library's built-in group is used; on older OpenSSL 3 (Debian 12 ships 3.0)
// an in-process provider built into our binaries supplies it (see provider.cpp).
#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "qkd/common/result.hpp"

namespace qkd::pqtls {

inline constexpr const char* kHybridGroup = "X25519MLKEM768";
inline constexpr unsigned kHybridGroupId = 0x11EC;  // IANA TLS Supported Groups

struct GroupConfig {
    // Preference order, most preferred first. Names: X25519MLKEM768, X25519, X448, P-256, P-384,
    // P-521.
    std::vector<std::string> groups{"X25519MLKEM768", "X25519", "P-256"};
    // Only hybrid (post-quantum) groups are offered/accepted, so a peer without one fails the
    // handshake. Also forces TLS 1.3 (hybrid groups do not exist in TLS 1.2).
    bool pq_only = false;
};

// Makes X25519MLKEM768 usable by OpenSSL in this process: OpenSSL's built-in group on >= 3.5,
// otherwise our provider, loaded once into the default library context next to "default"
// (thread-safe, idempotent). Returns an error text on failure. libssl reads provider groups in
// SSL_CTX_new, so this must run before the SSL_CTX is created; qkd_pqtls also calls it once at
// program start (static initialiser), so linking the library is normally enough.
qkd::Result<void, std::string> ensure_hybrid_group();

// Applies the group preference list to a TLS context (server or client). pq_only: only hybrid
// groups are offered/accepted, so a peer without one fails the handshake. Unknown group names ->
// error naming the bad entry and the known names.
qkd::Result<void, std::string> configure_groups(SSL_CTX* ctx, const GroupConfig& cfg);

// Name of the key-exchange group negotiated on an established connection ("X25519MLKEM768",
// "X25519", "P-256"...), or "" if unknown.
std::string negotiated_group(SSL* ssl);

// True if `name` is a hybrid post-quantum group.
bool is_hybrid_group(const std::string& name);

// The group names configure_groups accepts, comma separated (for error messages and --help).
std::string known_group_names();

}  // namespace qkd::pqtls
