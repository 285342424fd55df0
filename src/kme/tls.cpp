#include "qkd/kme/tls.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "qkd/common/openssl_error.hpp"
#include "qkd/crypto/pq_tls.hpp"

namespace qkd::kme {
namespace ssl = boost::asio::ssl;

namespace {

std::string openssl_error() { return qkd::openssl_errors(); }

void common_setup(SSL_CTX* ctx, const Config& cfg, bool server) {
    const int min = cfg.tls_min_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(ctx, min);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg.cert.c_str()) != 1)
        throw ConfigError(fmt::format("{}: key 'kme.cert': cannot load certificate \"{}\": {}", cfg.file, cfg.cert, openssl_error()));
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg.key.c_str(), SSL_FILETYPE_PEM) != 1)
        throw ConfigError(fmt::format("{}: key 'kme.key': cannot load private key \"{}\": {}", cfg.file, cfg.key, openssl_error()));
    if (SSL_CTX_check_private_key(ctx) != 1)
        throw ConfigError(fmt::format("{}: keys 'kme.cert'/'kme.key': the private key does not match the certificate", cfg.file));
    if (SSL_CTX_load_verify_locations(ctx, cfg.ca.c_str(), nullptr) != 1)
        throw ConfigError(fmt::format("{}: key 'kme.ca': cannot load CA certificates \"{}\": {}", cfg.file, cfg.ca, openssl_error()));
    // Mutual TLS is mandatory: no certificate, no connection.
    SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER, nullptr);
    pqtls::GroupConfig gc{cfg.tls_groups, cfg.pq_only};
    if (auto r = pqtls::configure_groups(ctx, gc); !r) throw ConfigError(fmt::format("{}: key 'kme.tls_groups': {}", cfg.file, r.error()));
}

}  // namespace

// libssl reads the provider groups when a context is created: load our hybrid group first.
// A failure here is reported by configure_groups when the config asks for the group.
void load_groups() { (void)pqtls::ensure_hybrid_group(); }

ssl::context make_server_context(const Config& cfg) {
    load_groups();
    ssl::context ctx(ssl::context::tls_server);
    common_setup(ctx.native_handle(), cfg, true);
    SSL_CTX_set_client_CA_list(ctx.native_handle(), SSL_load_client_CA_file(cfg.ca.c_str()));
    SSL_CTX_set_session_id_context(ctx.native_handle(), reinterpret_cast<const unsigned char*>("qkd-kme"), 7);
    // No TLS 1.2 renegotiation: it would stall an answer mid-write and costs CPU at the client's will.
    SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_RENEGOTIATION);
    return ctx;
}

ssl::context make_peer_client_context(const Config& cfg) {
    load_groups();
    ssl::context ctx(ssl::context::tls_client);
    common_setup(ctx.native_handle(), cfg, false);
    return ctx;
}

}  // namespace qkd::kme
