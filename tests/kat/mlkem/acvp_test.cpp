// NIST ACVP-Server v1.1.0.40 ML-KEM vectors (FIPS 203): keyGen AFT, encapsulation AFT,
// decapsulation VAL, encapsulation/decapsulation key check VAL.
#include "kat_util.hpp"

namespace qkd::mlkem::kat {
namespace {

TEST(MlKemAcvp, KeyGen) {
    const auto prompt = load_json("acvp-v1.1.0.40/ML-KEM-keyGen-FIPS203/prompt.json");
    const auto expected = load_json("acvp-v1.1.0.40/ML-KEM-keyGen-FIPS203/expectedResults.json");
    int n = 0;
    for (const auto& g : prompt.at("testGroups")) {
        const auto ps = param_set(g.at("parameterSet"));
        for (const auto& t : g.at("tests")) {
            const auto& want = expected_test(expected, g.at("tgId"), t.at("tcId"));
            auto kp = keygen_internal(ps, hex(t.at("d")), hex(t.at("z")));
            ASSERT_TRUE(kp.ok());
            EXPECT_EQ(kp->ek, hex(want.at("ek"))) << "tcId " << t.at("tcId");
            EXPECT_EQ(bytes(kp->dk), hex(want.at("dk"))) << "tcId " << t.at("tcId");
            ++n;
        }
    }
    EXPECT_EQ(n, 75);
}

TEST(MlKemAcvp, EncapDecap) {
    const auto prompt = load_json("acvp-v1.1.0.40/ML-KEM-encapDecap-FIPS203/prompt.json");
    const auto expected = load_json("acvp-v1.1.0.40/ML-KEM-encapDecap-FIPS203/expectedResults.json");
    int enc = 0, dec = 0, ekc = 0, dkc = 0;
    for (const auto& g : prompt.at("testGroups")) {
        const auto ps = param_set(g.at("parameterSet"));
        const std::string fn = g.at("function");
        for (const auto& t : g.at("tests")) {
            const auto& want = expected_test(expected, g.at("tgId"), t.at("tcId"));
            const auto id = t.at("tcId").get<int>();
            if (fn == "encapsulation") {
                auto r = encaps_internal(ps, hex(t.at("ek")), hex(t.at("m")));
                ASSERT_TRUE(r.ok()) << "tcId " << id;
                EXPECT_EQ(r->ciphertext, hex(want.at("c"))) << "tcId " << id;
                EXPECT_EQ(bytes(r->shared_secret), hex(want.at("k"))) << "tcId " << id;
                ++enc;
            } else if (fn == "decapsulation") {
                auto r = decaps(ps, hex(t.at("dk")), hex(t.at("c")));
                ASSERT_TRUE(r.ok()) << "tcId " << id;
                EXPECT_EQ(bytes(*r), hex(want.at("k"))) << "tcId " << id;
                ++dec;
            } else if (fn == "encapsulationKeyCheck") {
                EXPECT_EQ(check_ek(ps, hex(t.at("ek"))), want.at("testPassed").get<bool>()) << "tcId " << id;
                ++ekc;
            } else if (fn == "decapsulationKeyCheck") {
                EXPECT_EQ(check_dk(ps, hex(t.at("dk"))), want.at("testPassed").get<bool>()) << "tcId " << id;
                ++dkc;
            } else {
                ADD_FAILURE() << "unknown ACVP function " << fn;
            }
        }
    }
    EXPECT_EQ(enc, 75);
    EXPECT_EQ(dec, 30);
    EXPECT_EQ(ekc, 30);
    EXPECT_EQ(dkc, 30);
}

}  // namespace
}  // namespace qkd::mlkem::kat
