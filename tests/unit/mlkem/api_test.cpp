// ML-KEM public API: sizes, round trips, and a negative test for every error.
#include "qkd/crypto/mlkem.hpp"

#include <gtest/gtest.h>

namespace qkd::mlkem {
namespace {

constexpr ParamSet kAll[] = {ParamSet::MlKem512, ParamSet::MlKem768, ParamSet::MlKem1024};

TEST(MlKemApi, SizesMatchFips203Table3) {
    EXPECT_EQ(ek_size(ParamSet::MlKem512), 800u);
    EXPECT_EQ(dk_size(ParamSet::MlKem512), 1632u);
    EXPECT_EQ(ct_size(ParamSet::MlKem512), 768u);
    EXPECT_EQ(ek_size(ParamSet::MlKem768), 1184u);
    EXPECT_EQ(dk_size(ParamSet::MlKem768), 2400u);
    EXPECT_EQ(ct_size(ParamSet::MlKem768), 1088u);
    EXPECT_EQ(ek_size(ParamSet::MlKem1024), 1568u);
    EXPECT_EQ(dk_size(ParamSet::MlKem1024), 3168u);
    EXPECT_EQ(ct_size(ParamSet::MlKem1024), 1568u);
}

TEST(MlKemApi, RandomRoundTrip) {
    for (auto p : kAll) {
        auto kp = keygen(p);
        ASSERT_EQ(kp.ek.size(), ek_size(p));
        ASSERT_EQ(kp.dk.size(), dk_size(p));
        EXPECT_TRUE(check_ek(p, kp.ek));
        EXPECT_TRUE(check_dk(p, kp.dk.view()));
        auto enc = encaps(p, kp.ek);
        ASSERT_TRUE(enc.ok());
        auto k = decaps(p, kp.dk.view(), enc->ciphertext);
        ASSERT_TRUE(k.ok());
        EXPECT_TRUE(qkd::ct_equal(*k, enc->shared_secret)) << name(p);
        // Two key pairs differ (the RNG is used).
        EXPECT_NE(keygen(p).ek, kp.ek);
    }
}

TEST(MlKemApi, ParsedKeysMatchByteApi) {
    for (auto p : kAll) {
        auto kp = keygen(p);
        auto ek = EncapsulationKey::parse(p, kp.ek);
        auto dk = DecapsulationKey::parse(p, kp.dk.view());
        ASSERT_TRUE(ek.ok() && dk.ok());
        const std::vector<std::uint8_t> m(32, 0x5A);
        auto a = ek->encaps_internal(m);
        auto b = encaps_internal(p, kp.ek, m);
        ASSERT_TRUE(a.ok() && b.ok());
        EXPECT_EQ(a->ciphertext, b->ciphertext);
        EXPECT_TRUE(qkd::ct_equal(a->shared_secret, b->shared_secret));
        auto k = dk->decaps(a->ciphertext);
        ASSERT_TRUE(k.ok());
        EXPECT_TRUE(qkd::ct_equal(*k, a->shared_secret));
        auto moved = std::move(*dk);
        EXPECT_TRUE(moved.decaps(ek->encaps().ciphertext).ok());
    }
}

TEST(MlKemApi, WrongSeedLengths) {
    const std::vector<std::uint8_t> s31(31), s32(32), s33(33);
    auto r = keygen_internal(ParamSet::MlKem768, s31, s32);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), Error::BadSeedLength);
    EXPECT_FALSE(keygen_internal(ParamSet::MlKem768, s32, s33).ok());
    auto kp = keygen(ParamSet::MlKem768);
    auto e = encaps_internal(ParamSet::MlKem768, kp.ek, s31);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error(), Error::BadSeedLength);
}

TEST(MlKemApi, EncapsulationKeyChecks) {
    auto kp = keygen(ParamSet::MlKem768);
    // Wrong parameter set (wrong length).
    auto r = encaps(ParamSet::MlKem512, kp.ek);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), Error::BadEncapsulationKey);
    // Modulus check: coefficient 0 = 0xFFF.
    auto bad = kp.ek;
    bad[0] = 0xFF;
    bad[1] = static_cast<std::uint8_t>(bad[1] | 0x0F);
    EXPECT_FALSE(check_ek(ParamSet::MlKem768, bad));
    EXPECT_FALSE(EncapsulationKey::parse(ParamSet::MlKem768, bad).ok());
    // rho is not range-checked: changing it keeps the key valid.
    auto rho = kp.ek;
    rho.back() ^= 0xFF;
    EXPECT_TRUE(check_ek(ParamSet::MlKem768, rho));
}

TEST(MlKemApi, DecapsulationKeyChecks) {
    auto kp = keygen(ParamSet::MlKem768);
    auto enc = encaps(ParamSet::MlKem768, kp.ek);
    ASSERT_TRUE(enc.ok());
    // H(ek) mismatch: flip a byte of the embedded ek.
    auto dk = kp.dk.clone();
    dk[dk_size(ParamSet::MlKem768) - 64 - 100] ^= 1;
    auto r = decaps(ParamSet::MlKem768, dk.view(), enc->ciphertext);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), Error::BadDecapsulationKey);
    EXPECT_FALSE(check_dk(ParamSet::MlKem768, dk.view()));
    // Wrong length.
    EXPECT_FALSE(check_dk(ParamSet::MlKem768, kp.dk.view().first(2399)));
    // Wrong ciphertext length.
    auto c = enc->ciphertext;
    c.pop_back();
    auto rc = decaps(ParamSet::MlKem768, kp.dk.view(), c);
    ASSERT_FALSE(rc.ok());
    EXPECT_EQ(rc.error(), Error::BadCiphertextLength);
}

TEST(MlKemApi, ImplicitRejectionIsDeterministicAndDifferent) {
    auto kp = keygen(ParamSet::MlKem512);
    auto enc = encaps(ParamSet::MlKem512, kp.ek);
    ASSERT_TRUE(enc.ok());
    auto c = enc->ciphertext;
    c[c.size() - 1] ^= 0x80;
    auto k1 = decaps(ParamSet::MlKem512, kp.dk.view(), c);
    auto k2 = decaps(ParamSet::MlKem512, kp.dk.view(), c);
    ASSERT_TRUE(k1.ok() && k2.ok());
    EXPECT_TRUE(qkd::ct_equal(*k1, *k2));
    EXPECT_FALSE(qkd::ct_equal(*k1, enc->shared_secret));
}

TEST(MlKemApi, ErrorTextsNameTheProblem) {
    for (auto e : {Error::BadSeedLength, Error::BadEncapsulationKey, Error::BadDecapsulationKey,
                   Error::BadCiphertextLength})
        EXPECT_NE(to_string(e).find("ML-KEM"), std::string_view::npos);
    EXPECT_EQ(name(ParamSet::MlKem1024), "ML-KEM-1024");
}

}  // namespace
}  // namespace qkd::mlkem
