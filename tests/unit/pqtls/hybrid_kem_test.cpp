// X25519MLKEM768 shares and secrets (hybrid_kem.cpp), independent of libssl.
#include "hybrid_kem.hpp"

#include <gtest/gtest.h>

#include "qkd/crypto/mlkem.hpp"

namespace qkd::pqtls::hybrid {
namespace {

TEST(HybridKem, RoundTripAndLayout) {
    auto client = generate();
    ASSERT_TRUE(client.ok()) << client.error();
    ASSERT_EQ(client->share.size(), kClientShareSize);
    auto enc = encapsulate(client->share);
    ASSERT_TRUE(enc.ok()) << enc.error();
    ASSERT_EQ(enc->server_share.size(), kServerShareSize);
    ASSERT_EQ(enc->secret.size(), kSecretSize);
    auto dec = decapsulate(*client, enc->server_share);
    ASSERT_TRUE(dec.ok()) << dec.error();
    EXPECT_TRUE(qkd::ct_equal(*dec, enc->secret));
    // ML-KEM K comes first: decapsulating the ciphertext part alone gives the first 32 bytes.
    auto k = qkd::mlkem::decaps(qkd::mlkem::ParamSet::MlKem768, client->mlkem_dk.view(),
                                std::span(enc->server_share).first(kMlKemCtSize));
    ASSERT_TRUE(k.ok());
    EXPECT_TRUE(qkd::ct_equal(k->view(), enc->secret.view().first(32)));
}

TEST(HybridKem, BadClientShareLengthIsRefused) {
    auto client = generate();
    ASSERT_TRUE(client.ok());
    auto shorter = client->share;
    shorter.pop_back();
    auto enc = encapsulate(shorter);
    ASSERT_FALSE(enc.ok());
    EXPECT_NE(enc.error().find("1216"), std::string::npos) << enc.error();
    EXPECT_FALSE(client_share_valid(shorter));
}

TEST(HybridKem, UnreducedMlKemKeyIsRefused) {
    auto client = generate();
    ASSERT_TRUE(client.ok());
    auto bad = client->share;
    bad[0] = 0xFF;  // first coefficient becomes 0x?FF | (bad[1] & 0x0F) << 8; force >= q
    bad[1] = static_cast<std::uint8_t>(bad[1] | 0x0F);
    EXPECT_FALSE(client_share_valid(bad));
    EXPECT_FALSE(encapsulate(bad).ok());
}

TEST(HybridKem, AllZeroX25519SecretIsRefused) {
    auto client = generate();
    ASSERT_TRUE(client.ok());
    auto bad = client->share;
    // u = 0 is a low-order point: X25519 with it is all zero (Wycheproof ZeroSharedSecret).
    for (std::size_t i = kMlKemEkSize; i < kClientShareSize; ++i) bad[i] = 0;
    EXPECT_FALSE(encapsulate(bad).ok());
    // Same on the client side with a server share whose X25519 key is u = 1, another low-order
    // point (clamped scalars are multiples of 8, so the result is zero).
    auto enc = encapsulate(client->share);
    ASSERT_TRUE(enc.ok());
    auto share = enc->server_share;
    for (std::size_t i = kMlKemCtSize; i < kServerShareSize; ++i) share[i] = 0;
    share[kMlKemCtSize] = 1;
    EXPECT_FALSE(decapsulate(*client, share).ok());
}

TEST(HybridKem, TamperedCiphertextGivesDifferentSecret) {
    auto client = generate();
    ASSERT_TRUE(client.ok());
    auto enc = encapsulate(client->share);
    ASSERT_TRUE(enc.ok());
    auto share = enc->server_share;
    share[5] ^= 0x01;
    auto dec = decapsulate(*client, share);
    ASSERT_TRUE(dec.ok());  // implicit rejection: a key, but not the same one
    EXPECT_FALSE(qkd::ct_equal(dec->view().first(32), enc->secret.view().first(32)));
    EXPECT_TRUE(qkd::ct_equal(dec->view().subspan(32), enc->secret.view().subspan(32)));
}

}  // namespace
}  // namespace qkd::pqtls::hybrid
