// Group configuration and negotiation (in-memory TLS 1.3 handshakes).
#include "qkd/crypto/pq_tls.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include "tls_pair.hpp"

namespace qkd::pqtls {
namespace {

using qkd::test::handshake;
using qkd::test::make_client_ctx;
using qkd::test::make_server_ctx;

TEST(PqTls, UnknownGroupNameIsRefusedWithKnownNames) {
    auto ctx = make_client_ctx();
    auto r = configure_groups(ctx.get(), GroupConfig{{"X25519", "curve-fancy"}, false});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("'curve-fancy'"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("X25519MLKEM768"), std::string::npos) << r.error();
}

TEST(PqTls, EmptyAndDuplicateListsAreRefused) {
    auto ctx = make_client_ctx();
    EXPECT_FALSE(configure_groups(ctx.get(), GroupConfig{{}, false}).ok());
    auto dup = configure_groups(ctx.get(), GroupConfig{{"X25519", "X25519"}, false});
    ASSERT_FALSE(dup.ok());
    EXPECT_NE(dup.error().find("twice"), std::string::npos) << dup.error();
}

TEST(PqTls, PqOnlyWithoutHybridGroupIsRefused) {
    auto ctx = make_client_ctx();
    auto r = configure_groups(ctx.get(), GroupConfig{{"X25519", "P-256"}, true});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("pq_only"), std::string::npos) << r.error();
}

TEST(PqTls, ClassicalGroupsNegotiate) {
    auto sctx = make_server_ctx();
    auto cctx = make_client_ctx();
    ASSERT_TRUE(configure_groups(sctx.get(), GroupConfig{{"P-256", "X25519"}, false}).ok());
    ASSERT_TRUE(configure_groups(cctx.get(), GroupConfig{{"P-256"}, false}).ok());
    auto h = handshake(cctx.get(), sctx.get());
    ASSERT_TRUE(h.ok);
    EXPECT_EQ(negotiated_group(h.client.get()), "P-256");
    EXPECT_EQ(negotiated_group(h.server.get()), "P-256");

    auto cctx2 = make_client_ctx();
    ASSERT_TRUE(configure_groups(cctx2.get(), GroupConfig{{"X25519"}, false}).ok());
    auto h2 = handshake(cctx2.get(), sctx.get());
    ASSERT_TRUE(h2.ok);
    EXPECT_EQ(negotiated_group(h2.client.get()), "X25519");
}

TEST(PqTls, NegotiatedGroupOfNullIsEmpty) { EXPECT_EQ(negotiated_group(nullptr), ""); }

}  // namespace
}  // namespace qkd::pqtls
