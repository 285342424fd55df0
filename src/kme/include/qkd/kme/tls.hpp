#pragma once
// TLS contexts of the KME: mutual TLS always (ETSI 014 5.1), TLS 1.3 by default (1.2 by config),
// groups from the config (X25519MLKEM768 first where available).
#include <boost/asio/ssl/context.hpp>

#include "qkd/kme/config.hpp"

namespace qkd::kme {

// Throws ConfigError naming the file when a certificate, key or CA cannot be loaded.
boost::asio::ssl::context make_server_context(const Config& cfg);
// Client side for KME-to-KME sync: our certificate, the same CA, peer name checked by the caller.
boost::asio::ssl::context make_peer_client_context(const Config& cfg);

}  // namespace qkd::kme
