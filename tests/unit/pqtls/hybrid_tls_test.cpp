// X25519MLKEM768 negotiation through our provider (OpenSSL < 3.5) or OpenSSL's built-in group.
#include "qkd/crypto/pq_tls.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <vector>

#include "tls_pair.hpp"

namespace qkd::pqtls {
namespace {

using qkd::test::handshake;
using qkd::test::make_client_ctx;
using qkd::test::make_server_ctx;

TEST(HybridTls, HybridGroupIsAvailable) {
    auto r = ensure_hybrid_group();
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_TRUE(ensure_hybrid_group().ok());  // idempotent
}

TEST(HybridTls, DefaultConfigNegotiatesHybrid) {
    auto sctx = make_server_ctx();
    auto cctx = make_client_ctx();
    ASSERT_TRUE(configure_groups(sctx.get(), GroupConfig{}).ok());
    ASSERT_TRUE(configure_groups(cctx.get(), GroupConfig{}).ok());
    auto h = handshake(cctx.get(), sctx.get());
    ASSERT_TRUE(h.ok);
    EXPECT_EQ(negotiated_group(h.client.get()), "X25519MLKEM768");
    EXPECT_EQ(negotiated_group(h.server.get()), "X25519MLKEM768");
}

TEST(HybridTls, PqOnlyServerRefusesClassicalClient) {
    auto sctx = make_server_ctx();
    auto cctx = make_client_ctx();
    ASSERT_TRUE(configure_groups(sctx.get(), GroupConfig{{"X25519MLKEM768", "X25519"}, true}).ok());
    ASSERT_TRUE(configure_groups(cctx.get(), GroupConfig{{"X25519", "P-256"}, false}).ok());
    auto h = handshake(cctx.get(), sctx.get());
    EXPECT_FALSE(h.ok);
    ERR_clear_error();
}

TEST(HybridTls, PqOnlyClientRefusesClassicalServer) {
    auto sctx = make_server_ctx();
    auto cctx = make_client_ctx();
    ASSERT_TRUE(configure_groups(sctx.get(), GroupConfig{{"X25519"}, false}).ok());
    ASSERT_TRUE(configure_groups(cctx.get(), GroupConfig{{"X25519MLKEM768"}, true}).ok());
    auto h = handshake(cctx.get(), sctx.get());
    EXPECT_FALSE(h.ok);
    ERR_clear_error();
}

TEST(HybridTls, HybridClientFallsBackToX25519WithClassicalServer) {
    auto sctx = make_server_ctx();
    auto cctx = make_client_ctx();
    ASSERT_TRUE(configure_groups(sctx.get(), GroupConfig{{"X25519", "P-256"}, false}).ok());
    ASSERT_TRUE(configure_groups(cctx.get(), GroupConfig{}).ok());
    auto h = handshake(cctx.get(), sctx.get());
    ASSERT_TRUE(h.ok);
    EXPECT_EQ(negotiated_group(h.client.get()), "X25519");
}

TEST(HybridTls, HelloRetryRequestToHybrid) {
    // Client's first key share is X25519; a server that only takes the hybrid group asks again.
    auto sctx = make_server_ctx();
    auto cctx = make_client_ctx();
    ASSERT_TRUE(configure_groups(sctx.get(), GroupConfig{{"X25519MLKEM768"}, false}).ok());
    ASSERT_TRUE(configure_groups(cctx.get(), GroupConfig{{"X25519", "X25519MLKEM768"}, false}).ok());
    auto h = handshake(cctx.get(), sctx.get());
    ASSERT_TRUE(h.ok);
    EXPECT_EQ(negotiated_group(h.client.get()), "X25519MLKEM768");
}

TEST(HybridTls, PqOnlyRefusesTls12) {
    auto sctx = make_server_ctx();
    auto cctx = make_client_ctx();
    ASSERT_TRUE(configure_groups(sctx.get(), GroupConfig{{"X25519MLKEM768", "X25519"}, true}).ok());
    SSL_CTX_set_max_proto_version(cctx.get(), TLS1_2_VERSION);
    auto h = handshake(cctx.get(), sctx.get());
    EXPECT_FALSE(h.ok);
    ERR_clear_error();
}

// The provider through the EVP calls libssl makes (OpenSSL 3.0 path; on >= 3.5 the built-in
// group is used and these names belong to OpenSSL).
TEST(HybridTls, ProviderKeyShareAndKem) {
    ASSERT_TRUE(ensure_hybrid_group().ok());
    // Client: keygen, encoded public key = key share.
    EVP_PKEY_CTX* kctx = EVP_PKEY_CTX_new_from_name(nullptr, "X25519MLKEM768", nullptr);
    ASSERT_NE(kctx, nullptr);
    EVP_PKEY* client = nullptr;
    ASSERT_EQ(EVP_PKEY_keygen_init(kctx), 1);
    ASSERT_EQ(EVP_PKEY_CTX_set_group_name(kctx, "X25519MLKEM768"), 1);
    ASSERT_EQ(EVP_PKEY_keygen(kctx, &client), 1);
    unsigned char* share = nullptr;
    const std::size_t share_len = EVP_PKEY_get1_encoded_public_key(client, &share);
    ASSERT_EQ(share_len, 1216u);

    // Server: paramgen, set the client's share, encapsulate.
    EVP_PKEY* peer = nullptr;
    ASSERT_EQ(EVP_PKEY_paramgen_init(kctx), 1);
    ASSERT_EQ(EVP_PKEY_paramgen(kctx, &peer), 1);
    EXPECT_NE(EVP_PKEY_set1_encoded_public_key(peer, share, share_len - 1), 1);  // wrong length refused
    std::vector<unsigned char> unreduced(share, share + share_len);
    unreduced[0] = 0xFF;
    unreduced[1] = static_cast<unsigned char>(unreduced[1] | 0x0F);  // coefficient 4095 >= q
    EXPECT_NE(EVP_PKEY_set1_encoded_public_key(peer, unreduced.data(), unreduced.size()), 1);
    ASSERT_EQ(EVP_PKEY_set1_encoded_public_key(peer, share, share_len), 1);
    EVP_PKEY_CTX* ectx = EVP_PKEY_CTX_new_from_pkey(nullptr, peer, nullptr);
    ASSERT_EQ(EVP_PKEY_encapsulate_init(ectx, nullptr), 1);
    std::size_t ct_len = 0, ss_len = 0;
    ASSERT_EQ(EVP_PKEY_encapsulate(ectx, nullptr, &ct_len, nullptr, &ss_len), 1);
    ASSERT_EQ(ct_len, 1120u);
    ASSERT_EQ(ss_len, 64u);
    std::vector<unsigned char> ct(ct_len), ss(ss_len);
    ASSERT_EQ(EVP_PKEY_encapsulate(ectx, ct.data(), &ct_len, ss.data(), &ss_len), 1);

    // Client: decapsulate the server share to the same 64-byte secret.
    EVP_PKEY_CTX* dctx = EVP_PKEY_CTX_new_from_pkey(nullptr, client, nullptr);
    ASSERT_EQ(EVP_PKEY_decapsulate_init(dctx, nullptr), 1);
    std::vector<unsigned char> out(64);
    std::size_t out_len = out.size();
    ASSERT_EQ(EVP_PKEY_decapsulate(dctx, out.data(), &out_len, ct.data(), ct.size()), 1);
    EXPECT_EQ(out, ss);
    EXPECT_NE(EVP_PKEY_decapsulate(dctx, out.data(), &out_len, ct.data(), ct.size() - 1), 1);

    OPENSSL_free(share);
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_CTX_free(ectx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(client);
    EVP_PKEY_CTX_free(kctx);
    ERR_clear_error();
}

}  // namespace
}  // namespace qkd::pqtls
