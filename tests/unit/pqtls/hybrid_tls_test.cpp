// X25519MLKEM768 negotiation through our provider (OpenSSL < 3.5) or OpenSSL's built-in group.
#include "qkd/crypto/pq_tls.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>

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

}  // namespace
}  // namespace qkd::pqtls
