// Wycheproof ML-KEM-768 vectors (C2SP/wycheproof testvectors_v1): seed -> keys, decapsulation
// with implicit rejection, encapsulation-key validation, expanded decapsulation keys.
#include "kat_util.hpp"

namespace qkd::mlkem::kat {
namespace {

constexpr auto kP = ParamSet::MlKem768;

TEST(MlKemWycheproof, SeedDecaps) {
    const auto doc = load_json("wycheproof/mlkem_768_test.json");
    int n = 0;
    for (const auto& g : doc.at("testGroups")) {
        for (const auto& t : g.at("tests")) {
            ++n;
            const auto id = t.at("tcId").get<int>();
            const auto seed = hex(t.at("seed"));
            const auto c = hex(t.at("c"));
            const bool valid = t.at("result") != "invalid";
            if (seed.size() != 64) {
                EXPECT_FALSE(valid) << "tcId " << id;
                continue;
            }
            auto kp = keygen_internal(kP, std::span(seed).first(32), std::span(seed).subspan(32));
            ASSERT_TRUE(kp.ok());
            EXPECT_EQ(kp->ek, hex(t.at("ek"))) << "tcId " << id;
            auto k = decaps(kP, kp->dk.view(), c);
            if (valid) {
                ASSERT_TRUE(k.ok()) << "tcId " << id;
                EXPECT_EQ(bytes(*k), hex(t.at("K"))) << "tcId " << id;
            } else {
                EXPECT_FALSE(k.ok()) << "tcId " << id << " " << t.value("comment", "");
            }
        }
    }
    EXPECT_EQ(n, 193);
}

TEST(MlKemWycheproof, Encaps) {
    const auto doc = load_json("wycheproof/mlkem_768_encaps_test.json");
    int n = 0, rejected = 0;
    for (const auto& g : doc.at("testGroups")) {
        for (const auto& t : g.at("tests")) {
            ++n;
            const auto id = t.at("tcId").get<int>();
            auto r = encaps_internal(kP, hex(t.at("ek")), hex(t.at("m")));
            if (t.at("result") == "invalid") {
                EXPECT_FALSE(r.ok()) << "tcId " << id << " " << t.value("comment", "");
                EXPECT_FALSE(check_ek(kP, hex(t.at("ek")))) << "tcId " << id;
                ++rejected;
                continue;
            }
            ASSERT_TRUE(r.ok()) << "tcId " << id;
            EXPECT_EQ(r->ciphertext, hex(t.at("c"))) << "tcId " << id;
            EXPECT_EQ(bytes(r->shared_secret), hex(t.at("K"))) << "tcId " << id;
        }
    }
    EXPECT_EQ(n, 265);
    EXPECT_EQ(rejected, 132);
}

TEST(MlKemWycheproof, KeyGenSeed) {
    const auto doc = load_json("wycheproof/mlkem_768_keygen_seed_test.json");
    int n = 0;
    for (const auto& g : doc.at("testGroups")) {
        for (const auto& t : g.at("tests")) {
            ++n;
            const auto seed = hex(t.at("seed"));
            ASSERT_EQ(seed.size(), 64u);
            auto kp = keygen_internal(kP, std::span(seed).first(32), std::span(seed).subspan(32));
            ASSERT_TRUE(kp.ok());
            EXPECT_EQ(kp->ek, hex(t.at("ek"))) << "tcId " << t.at("tcId");
            EXPECT_EQ(bytes(kp->dk), hex(t.at("dk"))) << "tcId " << t.at("tcId");
        }
    }
    EXPECT_EQ(n, 100);
}

TEST(MlKemWycheproof, SemiExpandedDecaps) {
    const auto doc = load_json("wycheproof/mlkem_768_semi_expanded_decaps_test.json");
    int n = 0;
    for (const auto& g : doc.at("testGroups")) {
        for (const auto& t : g.at("tests")) {
            ++n;
            const auto id = t.at("tcId").get<int>();
            auto k = decaps(kP, hex(t.at("dk")), hex(t.at("c")));
            if (t.at("result") == "invalid") {
                EXPECT_FALSE(k.ok()) << "tcId " << id << " " << t.value("comment", "");
            } else {
                ASSERT_TRUE(k.ok()) << "tcId " << id << " " << t.value("comment", "");
                EXPECT_EQ(bytes(*k), hex(t.at("K"))) << "tcId " << id;
            }
        }
    }
    EXPECT_EQ(n, 9);
}

}  // namespace
}  // namespace qkd::mlkem::kat
