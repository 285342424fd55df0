// Key exchange methods: initiator <-> responder round trips for every method (DH and ML-KEM), the
// sizes per direction, and the cheap peer-data check that runs before any expensive step.
#include <gtest/gtest.h>

#include "qkd/crypto/ke.hpp"

using namespace qkd::crypto;

namespace {

const KeGroup kAll[] = {KeGroup::Modp2048, KeGroup::Ecp256,   KeGroup::Ecp384,   KeGroup::Ecp521,
                        KeGroup::Curve25519, KeGroup::MlKem512, KeGroup::MlKem768, KeGroup::MlKem1024};
const KeGroup kDh[] = {KeGroup::Modp2048, KeGroup::Ecp256, KeGroup::Ecp384, KeGroup::Ecp521, KeGroup::Curve25519};

// The size of the shared secret: MODP g^xy padded, ECP x, X25519 32, ML-KEM K (32).
std::size_t secret_size(KeGroup g) {
    switch (g) {
        case KeGroup::Modp2048: return 256;
        case KeGroup::Ecp256: return 32;
        case KeGroup::Ecp384: return 48;
        case KeGroup::Ecp521: return 66;
        default: return 32;
    }
}

}  // namespace

class KeMethods : public ::testing::TestWithParam<KeGroup> {};

// HDR, SAi1, KEi(generate) -->  <-- HDR, SAr1, KEr(respond)  ; initiator derive(KEr)
TEST_P(KeMethods, InitiatorAndResponderAgree) {
    const KeGroup g = GetParam();
    auto i = KeyExchange::generate(g);
    ASSERT_TRUE(i.ok()) << i.error().message;
    EXPECT_EQ(i->group(), g);
    EXPECT_EQ(i->public_value().size(), ke_data_size(g, true));
    EXPECT_EQ(ke_public_size(g), ke_data_size(g, true));
    ASSERT_TRUE(check_peer_data(g, i->public_value(), true).ok());
    auto r = KeyExchange::respond(g, i->public_value());
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->public_data.size(), ke_data_size(g, false));
    ASSERT_TRUE(check_peer_data(g, r->public_data, false).ok());
    auto s = i->derive(r->public_data);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->size(), secret_size(g));
    EXPECT_TRUE(qkd::ct_equal(*s, r->shared_secret));
    // A second responder to the same initiator value gets another secret.
    auto r2 = KeyExchange::respond(g, i->public_value());
    ASSERT_TRUE(r2.ok());
    EXPECT_FALSE(qkd::ct_equal(r2->shared_secret, r->shared_secret));
}

TEST_P(KeMethods, WrongLengthsAreRefusedInBothDirections) {
    const KeGroup g = GetParam();
    for (bool from_initiator : {true, false}) {
        for (std::size_t len : {std::size_t(0), ke_data_size(g, from_initiator) - 1, ke_data_size(g, from_initiator) + 1}) {
            std::vector<std::uint8_t> d(len, 1);
            auto c = check_peer_data(g, d, from_initiator);
            ASSERT_FALSE(c.ok()) << len;
            EXPECT_EQ(c.error().code, CryptoErrc::InvalidPeerValue);
            EXPECT_NE(c.error().message.find("expected " + std::to_string(ke_data_size(g, from_initiator))), std::string::npos)
                << c.error().message;
        }
    }
    auto i = KeyExchange::generate(g);
    ASSERT_TRUE(i.ok());
    std::vector<std::uint8_t> shorter(ke_data_size(g, false) - 1, 1);
    EXPECT_EQ(i->derive(shorter).error().code, CryptoErrc::InvalidPeerValue);
    std::vector<std::uint8_t> longer(ke_data_size(g, true) + 1, 1);
    EXPECT_EQ(KeyExchange::respond(g, longer).error().code, CryptoErrc::InvalidPeerValue);
}

INSTANTIATE_TEST_SUITE_P(All, KeMethods, ::testing::ValuesIn(kAll));

TEST(KeyExchange, SizesPerDirection) {
    EXPECT_EQ(ke_data_size(KeGroup::Ecp521, true), 132u);
    EXPECT_EQ(ke_data_size(KeGroup::Ecp521, false), 132u);
    // FIPS 203 Table 3: ek 800/1184/1568, c 768/1088/1568.
    EXPECT_EQ(ke_data_size(KeGroup::MlKem512, true), 800u);
    EXPECT_EQ(ke_data_size(KeGroup::MlKem512, false), 768u);
    EXPECT_EQ(ke_data_size(KeGroup::MlKem768, true), 1184u);
    EXPECT_EQ(ke_data_size(KeGroup::MlKem768, false), 1088u);
    EXPECT_EQ(ke_data_size(KeGroup::MlKem1024, true), 1568u);
    EXPECT_EQ(ke_data_size(KeGroup::MlKem1024, false), 1568u);
    EXPECT_EQ(ke_data_size(KeGroup::None, true), 0u);
    for (auto g : kAll) EXPECT_EQ(ke_is_kem(g), static_cast<int>(g) >= 35) << static_cast<int>(g);
    for (unsigned id : {14u, 19u, 20u, 21u, 31u, 35u, 36u, 37u}) EXPECT_TRUE(ke_supported(static_cast<std::uint16_t>(id)));
    for (unsigned id : {0u, 2u, 34u, 38u, 65516u}) EXPECT_FALSE(ke_supported(static_cast<std::uint16_t>(id)));
}

// DH values are checked on the curve / in range without a key generation.
TEST(KeyExchange, DhValuesOffTheCurveOrOutOfRange) {
    for (auto g : kDh) {
        if (g == KeGroup::Curve25519) continue;  // any 32 bytes are an X25519 public value
        std::vector<std::uint8_t> junk(ke_data_size(g, true), 0);
        if (g != KeGroup::Modp2048) junk.back() = 1;  // (0, 1) is not on the curve
        auto c = check_peer_data(g, junk, true);
        ASSERT_FALSE(c.ok()) << static_cast<int>(g);
        EXPECT_EQ(c.error().code, CryptoErrc::InvalidPeerValue);
        EXPECT_FALSE(KeyExchange::respond(g, junk).ok());
        auto i = KeyExchange::generate(g);
        ASSERT_TRUE(i.ok());
        EXPECT_FALSE(i->derive(junk).ok());
    }
    // MODP: y = 1 and y = p - 1 are refused (RFC 7296 5.12 / NIST SP 800-56A 5.6.2.3.1).
    std::vector<std::uint8_t> one(256, 0);
    one.back() = 1;
    EXPECT_FALSE(check_peer_data(KeGroup::Modp2048, one, true).ok());
    std::vector<std::uint8_t> p_minus_1(256, 0xff);  // RFC 3526 p ends ...FFFFFFFF, so p-1 ends ...FE
    p_minus_1.back() = 0xfe;
    EXPECT_FALSE(check_peer_data(KeGroup::Modp2048, p_minus_1, true).ok());
    // X25519: the all-zero point passes the length check but yields an all-zero secret.
    std::vector<std::uint8_t> zero(32, 0);
    EXPECT_TRUE(check_peer_data(KeGroup::Curve25519, zero, true).ok());
    EXPECT_FALSE(KeyExchange::respond(KeGroup::Curve25519, zero).ok());
}

// FIPS 203 7.2: an encapsulation key with a coefficient >= q is refused by the cheap check and by
// respond (the engine answers INVALID_SYNTAX); a ciphertext has only a length check and a wrong
// one gives another key (implicit rejection), never an error.
TEST(KeyExchange, MlKemModulusCheckAndImplicitRejection) {
    for (auto g : {KeGroup::MlKem512, KeGroup::MlKem768, KeGroup::MlKem1024}) {
        auto i = KeyExchange::generate(g);
        ASSERT_TRUE(i.ok());
        std::vector<std::uint8_t> ek(i->public_value().begin(), i->public_value().end());
        ek[0] = 0xff;  // first coefficient = 0x?ff | (ek[1] & 0x0f) << 8 = 4095 >= 3329
        ek[1] |= 0x0f;
        auto c = check_peer_data(g, ek, true);
        ASSERT_FALSE(c.ok());
        EXPECT_EQ(c.error().code, CryptoErrc::InvalidPeerValue);
        EXPECT_NE(c.error().message.find("FIPS 203 7.2 modulus check"), std::string::npos) << c.error().message;
        auto r = KeyExchange::respond(g, ek);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, CryptoErrc::InvalidPeerValue);
        // Coefficient 3328 = q - 1 is fine: 0x00 0x0d -> 0xd00 = 3328.
        ek[0] = 0x00;
        ek[1] = static_cast<std::uint8_t>((ek[1] & 0xf0) | 0x0d);
        EXPECT_TRUE(check_peer_data(g, ek, true).ok());

        auto good = KeyExchange::respond(g, i->public_value());
        ASSERT_TRUE(good.ok());
        auto ct = good->public_data;
        ct[10] ^= 1;
        EXPECT_TRUE(check_peer_data(g, ct, false).ok());
        auto s = i->derive(ct);
        ASSERT_TRUE(s.ok());
        EXPECT_FALSE(qkd::ct_equal(*s, good->shared_secret));
    }
}

TEST(KeyExchange, UnsupportedMethod) {
    for (auto g : {static_cast<KeGroup>(2), static_cast<KeGroup>(65516), KeGroup::None}) {
        EXPECT_EQ(KeyExchange::generate(g).error().code, CryptoErrc::Unsupported);
        EXPECT_EQ(KeyExchange::respond(g, std::vector<std::uint8_t>(16)).error().code, CryptoErrc::Unsupported);
        EXPECT_EQ(check_peer_data(g, std::vector<std::uint8_t>(16), true).error().code, CryptoErrc::Unsupported);
    }
    auto r = KeyExchange::generate(static_cast<KeGroup>(2));
    EXPECT_NE(r.error().message.find("35, 36 or 37"), std::string::npos) << r.error().message;
}
