// ML-KEM as IKEv2 key exchange methods 35/36/37 (draft-ietf-ipsecme-ikev2-mlkem) through the
// KeyExchange API, against official vectors in ../shared/vectors/mlkem: ACVP keyGen (d | z -> ek,
// all three parameter sets), Wycheproof ML-KEM-768 decapsulation (seed, c -> K, bad lengths) and
// encapsulation-key checks (modulus overflow, wrong length). A missing file FAILS (CI has them).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "qkd/common/encoding.hpp"
#include "qkd/crypto/ke.hpp"

using namespace qkd::crypto;
using nlohmann::json;

namespace {

json load(const std::string& rel) {
    const std::string path = std::string(QKD_VECTORS_DIR) + "/mlkem/" + rel;
    std::ifstream f(path);
    EXPECT_TRUE(f.good()) << "cannot open test vector file " << path;
    return f ? json::parse(f) : json::object();
}

std::vector<std::uint8_t> hex(const json& j) { return qkd::hex_decode(j.get<std::string>()).value(); }

KeGroup method(const std::string& set) {
    if (set == "ML-KEM-512") return KeGroup::MlKem512;
    if (set == "ML-KEM-1024") return KeGroup::MlKem1024;
    EXPECT_EQ(set, "ML-KEM-768");
    return KeGroup::MlKem768;
}

}  // namespace

// Initiator key pairs: the KE data we send is FIPS 203 ek from (d, z).
TEST(KeMlKemKat, AcvpKeyGenGivesTheInitiatorsKeData) {
    auto prompt = load("acvp-v1.1.0.40/ML-KEM-keyGen-FIPS203/prompt.json");
    auto expected = load("acvp-v1.1.0.40/ML-KEM-keyGen-FIPS203/expectedResults.json");
    ASSERT_TRUE(prompt.contains("testGroups"));
    int checked = 0;
    for (const auto& g : prompt["testGroups"]) {
        const KeGroup m = method(g["parameterSet"]);
        for (const auto& t : g["tests"]) {
            std::vector<std::uint8_t> seed = hex(t["d"]), z = hex(t["z"]);
            seed.insert(seed.end(), z.begin(), z.end());
            auto ke = KeyExchange::from_private(m, seed);
            ASSERT_TRUE(ke.ok()) << ke.error().message;
            std::vector<std::uint8_t> ek;
            for (const auto& eg : expected["testGroups"])
                if (eg["tgId"] == g["tgId"])
                    for (const auto& et : eg["tests"])
                        if (et["tcId"] == t["tcId"]) ek = hex(et["ek"]);
            ASSERT_EQ(ek.size(), ke_data_size(m, true)) << "tcId " << t["tcId"];
            EXPECT_TRUE(std::equal(ek.begin(), ek.end(), ke->public_value().begin(), ke->public_value().end()))
                << "tcId " << t["tcId"];
            EXPECT_TRUE(check_peer_data(m, ek, true).ok());
            ++checked;
        }
    }
    EXPECT_EQ(checked, 75);
}

// Initiator: derive(c) decapsulates; bad lengths are refused before any work.
TEST(KeMlKemKat, WycheproofDecapsulation) {
    auto doc = load("wycheproof/mlkem_768_test.json");
    ASSERT_TRUE(doc.contains("testGroups"));
    int valid = 0, refused = 0;
    for (const auto& g : doc["testGroups"]) {
        ASSERT_EQ(g["parameterSet"], "ML-KEM-768");
        for (const auto& t : g["tests"]) {
            const auto seed = hex(t["seed"]), c = hex(t["c"]);
            auto ke = KeyExchange::from_private(KeGroup::MlKem768, seed);
            if (t["result"] == "invalid") {
                // Either the seed (not d | z) or the ciphertext length is wrong.
                const bool bad = !ke.ok() || (!check_peer_data(KeGroup::MlKem768, c, false).ok() && !ke->derive(c).ok());
                EXPECT_TRUE(bad) << "tcId " << t["tcId"] << " " << t["comment"];
                if (ke.ok()) {
                    EXPECT_EQ(ke->derive(c).error().code, CryptoErrc::InvalidPeerValue);
                }
                ++refused;
                continue;
            }
            ASSERT_TRUE(ke.ok()) << "tcId " << t["tcId"];
            const auto ek = hex(t["ek"]), k = hex(t["K"]);
            EXPECT_TRUE(std::equal(ek.begin(), ek.end(), ke->public_value().begin(), ke->public_value().end()));
            EXPECT_TRUE(check_peer_data(KeGroup::MlKem768, c, false).ok());
            auto s = ke->derive(c);
            ASSERT_TRUE(s.ok()) << "tcId " << t["tcId"] << ": " << s.error().message;
            EXPECT_TRUE(std::equal(k.begin(), k.end(), s->view().begin(), s->view().end())) << "tcId " << t["tcId"];
            ++valid;
        }
    }
    EXPECT_EQ(valid, 153);
    EXPECT_EQ(refused, 40);
}

// Responder: check_peer_data and respond refuse every invalid ek (FIPS 203 7.2 modulus check,
// length) and accept every valid one; the ciphertext has the method's size.
TEST(KeMlKemKat, WycheproofEncapsulationKeyChecks) {
    auto doc = load("wycheproof/mlkem_768_encaps_test.json");
    ASSERT_TRUE(doc.contains("testGroups"));
    int valid = 0, invalid = 0, modulus = 0;
    for (const auto& g : doc["testGroups"]) {
        ASSERT_EQ(g["parameterSet"], "ML-KEM-768");
        for (const auto& t : g["tests"]) {
            const auto ek = hex(t["ek"]);
            auto check = check_peer_data(KeGroup::MlKem768, ek, true);
            auto r = KeyExchange::respond(KeGroup::MlKem768, ek);
            if (t["result"] == "valid") {
                EXPECT_TRUE(check.ok()) << "tcId " << t["tcId"] << ": " << check.error().message;
                ASSERT_TRUE(r.ok()) << "tcId " << t["tcId"];
                EXPECT_EQ(r->public_data.size(), 1088u);
                EXPECT_EQ(r->shared_secret.size(), 32u);
                ++valid;
                continue;
            }
            ASSERT_FALSE(check.ok()) << "tcId " << t["tcId"];
            EXPECT_EQ(check.error().code, CryptoErrc::InvalidPeerValue);
            ASSERT_FALSE(r.ok()) << "tcId " << t["tcId"];
            EXPECT_EQ(r.error().code, CryptoErrc::InvalidPeerValue);
            if (ek.size() == 1184) {
                EXPECT_NE(check.error().message.find("modulus check"), std::string::npos) << check.error().message;
                ++modulus;
            }
            ++invalid;
        }
    }
    EXPECT_EQ(valid, 133);
    EXPECT_EQ(invalid, 132);
    EXPECT_EQ(modulus, 112);
}
