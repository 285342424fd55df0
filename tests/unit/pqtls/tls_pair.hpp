#pragma once
// Test helper: a self-signed server certificate and an in-memory TLS handshake between two
// SSL objects connected by a BIO pair (no sockets needed for unit tests).
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

namespace qkd::test {

struct CtxDeleter { void operator()(SSL_CTX* c) const { SSL_CTX_free(c); } };
struct SslDeleter { void operator()(SSL* s) const { SSL_free(s); } };
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// Server context with a fresh Ed25519 self-signed certificate; client context that does not
// verify (the tests are about key exchange, not authentication).
inline CtxPtr make_server_ctx() {
    CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, key);
    X509_sign(cert, key, nullptr);
    SSL_CTX_use_certificate(ctx.get(), cert);
    SSL_CTX_use_PrivateKey(ctx.get(), key);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

inline CtxPtr make_client_ctx() {
    CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    return ctx;
}

struct Handshake {
    bool ok = false;
    SslPtr client;
    SslPtr server;
};

// Runs the handshake to completion or failure in memory.
inline Handshake handshake(SSL_CTX* client_ctx, SSL_CTX* server_ctx) {
    Handshake h;
    h.client.reset(SSL_new(client_ctx));
    h.server.reset(SSL_new(server_ctx));
    BIO* cb = nullptr;
    BIO* sb = nullptr;
    BIO_new_bio_pair(&cb, 0, &sb, 0);
    SSL_set_bio(h.client.get(), cb, cb);
    SSL_set_bio(h.server.get(), sb, sb);
    SSL_set_connect_state(h.client.get());
    SSL_set_accept_state(h.server.get());
    bool c_done = false, s_done = false;
    for (int round = 0; round < 32 && !(c_done && s_done); ++round) {
        if (!c_done) {
            int r = SSL_do_handshake(h.client.get());
            if (r == 1) c_done = true;
            else if (SSL_get_error(h.client.get(), r) != SSL_ERROR_WANT_READ) return h;
        }
        if (!s_done) {
            int r = SSL_do_handshake(h.server.get());
            if (r == 1) s_done = true;
            else if (SSL_get_error(h.server.get(), r) != SSL_ERROR_WANT_READ) return h;
        }
    }
    h.ok = c_done && s_done;
    return h;
}

}  // namespace qkd::test
