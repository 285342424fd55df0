// Key derivation: the RFC 7296 formulas recomputed independently from prf/prf+.
#include <gtest/gtest.h>

#include "keymat/keymat.hpp"

using namespace qkd;
using namespace qkd::ike::keymat;
using crypto::Prf;
using crypto::PrfAlg;

namespace {
std::vector<std::uint8_t> cat(std::initializer_list<std::span<const std::uint8_t>> parts) {
    std::vector<std::uint8_t> out;
    for (auto p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}
}  // namespace

TEST(Keymat, IkeKeysFollowRfc7296Section2_14) {
    Prf prf(PrfAlg::HmacSha512);
    std::vector<std::uint8_t> ni(32, 1), nr(32, 2);
    SecretBytes gir(std::vector<std::uint8_t>(66, 3));
    auto skeyseed = skeyseed_initial(prf, ni, nr, gir);
    EXPECT_TRUE(ct_equal(skeyseed, prf.compute(cat({ni, nr}), {gir.view()})));
    auto k = derive_ike_keys(prf, skeyseed, ni, nr, 0x0102030405060708ULL, 0x1112131415161718ULL, 36);
    ASSERT_TRUE(k.ok());
    const std::vector<std::uint8_t> spis{1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18};
    auto all = prf.prf_plus(skeyseed.view(), cat({ni, nr, spis}), 64 + 36 + 36 + 64 + 64).value();
    // {SK_d | SK_ei | SK_er | SK_pi | SK_pr}, no SK_a for AEAD
    EXPECT_TRUE(std::equal(k->sk_d.view().begin(), k->sk_d.view().end(), all.view().begin()));
    EXPECT_TRUE(std::equal(k->sk_ei.view().begin(), k->sk_ei.view().end(), all.view().begin() + 64));
    EXPECT_TRUE(std::equal(k->sk_er.view().begin(), k->sk_er.view().end(), all.view().begin() + 100));
    EXPECT_TRUE(std::equal(k->sk_pr.view().begin(), k->sk_pr.view().end(), all.view().begin() + 200));
    EXPECT_EQ(k->sk_pi.size(), 64u);
}

TEST(Keymat, ChildKeysRekeyAndAddke) {
    Prf prf(PrfAlg::HmacSha256);
    SecretBytes skd(std::vector<std::uint8_t>(32, 9)), gir(std::vector<std::uint8_t>(32, 4));
    std::vector<std::uint8_t> ni(32, 1), nr(32, 2);
    auto c = derive_child_keys(prf, skd, nullptr, ni, nr, 32).value();
    auto all = prf.prf_plus(skd.view(), cat({ni, nr}), 72).value();
    EXPECT_TRUE(std::equal(c.i_to_r.key.view().begin(), c.i_to_r.key.view().end(), all.view().begin()));
    EXPECT_TRUE(std::equal(c.i_to_r.salt.view().begin(), c.i_to_r.salt.view().end(), all.view().begin() + 32));
    EXPECT_TRUE(std::equal(c.r_to_i.key.view().begin(), c.r_to_i.key.view().end(), all.view().begin() + 36));
    // With PFS the new shared secret comes first: prf+(SK_d, g^ir | Ni | Nr)
    auto pfs = derive_child_keys(prf, skd, &gir, ni, nr, 16).value();
    auto all2 = prf.prf_plus(skd.view(), cat({gir.view(), ni, nr}), 40).value();
    EXPECT_TRUE(std::equal(pfs.r_to_i.salt.view().begin(), pfs.r_to_i.salt.view().end(), all2.view().begin() + 36));
    // RFC 7296 2.18 and RFC 9370 2.2.2 share the form prf(SK_d, secret | Ni | Nr).
    EXPECT_TRUE(ct_equal(skeyseed_rekey(prf, skd, gir, ni, nr), prf.compute(skd.view(), {gir.view(), ni, nr})));
    EXPECT_TRUE(ct_equal(skeyseed_addke(prf, skd, gir, ni, nr), skeyseed_rekey(prf, skd, gir, ni, nr)));
}

TEST(Keymat, PskAuthRfc7296Section2_15) {
    Prf prf(PrfAlg::HmacSha256);
    const std::string pad = "Key Pad for IKEv2";
    SecretBytes psk(std::vector<std::uint8_t>(20, 0x42)), skp(std::vector<std::uint8_t>(32, 7));
    std::vector<std::uint8_t> msg(100, 5), nonce(32, 6), id{2, 0, 0, 0, 'a'};
    auto auth = psk_auth(prf, psk, msg, nonce, skp, id);
    auto key = prf.compute(psk.view(), {std::span(reinterpret_cast<const std::uint8_t*>(pad.data()), pad.size())});
    auto maced = prf.compute(skp.view(), {id});
    EXPECT_TRUE(ct_equal(auth, prf.compute(key.view(), {msg, nonce, maced.view()})));
    // Any change of the signed octets changes AUTH.
    nonce[0] ^= 1;
    EXPECT_FALSE(ct_equal(auth, psk_auth(prf, psk, msg, nonce, skp, id)));
}
