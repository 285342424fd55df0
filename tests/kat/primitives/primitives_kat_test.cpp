// Wycheproof KATs (../shared/vectors, Apache-2.0): HMAC-SHA2 for the IKEv2 PRFs, HKDF as
// extract + prf+ (HKDF-Expand and RFC 7296 prf+ are the same construction), X25519 for KE 31.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qkd/common/encoding.hpp"
#include "qkd/crypto/ke.hpp"
#include "qkd/crypto/prf.hpp"

using namespace qkd::crypto;
using nlohmann::json;

namespace {

std::optional<json> load(const std::string& rel) {
    std::ifstream f(std::string(QKD_VECTORS_DIR) + "/" + rel);
    if (!f) return std::nullopt;
    return json::parse(f);
}

std::vector<std::uint8_t> hex(const json& j) { return qkd::hex_decode(j.get<std::string>()).value(); }

void run_hmac(const char* file, PrfAlg alg) {
    auto doc = load(file);
    if (!doc) GTEST_SKIP() << "vector file " << file << " not found under " << QKD_VECTORS_DIR;
    Prf prf(alg);
    int checked = 0;
    for (const auto& g : (*doc)["testGroups"]) {
        const std::size_t tag_bytes = g["tagSize"].get<std::size_t>() / 8;
        for (const auto& t : g["tests"]) {
            auto key = hex(t["key"]), msg = hex(t["msg"]), tag = hex(t["tag"]);
            auto out = prf.compute(key, {msg});
            const bool match = tag.size() == tag_bytes && std::equal(tag.begin(), tag.end(), out.view().begin());
            if (t["result"] == "valid")
                EXPECT_TRUE(match) << file << " tcId " << t["tcId"];
            else
                EXPECT_FALSE(match) << file << " tcId " << t["tcId"];
            ++checked;
        }
    }
    EXPECT_GT(checked, 50);
}

void run_hkdf(const char* file, PrfAlg alg) {
    auto doc = load(file);
    if (!doc) GTEST_SKIP() << "vector file " << file << " not found";
    Prf prf(alg);
    int checked = 0;
    for (const auto& g : (*doc)["testGroups"]) {
        for (const auto& t : g["tests"]) {
            auto ikm = hex(t["ikm"]), salt = hex(t["salt"]), info = hex(t["info"]), okm = hex(t["okm"]);
            if (salt.empty()) salt.assign(prf.size(), 0);  // RFC 5869 2.2
            auto prk = prf.compute(salt, {ikm});
            auto r = prf.prf_plus(prk.view(), info, t["size"].get<std::size_t>());
            if (t["result"] == "valid") {
                ASSERT_TRUE(r.ok()) << file << " tcId " << t["tcId"];
                EXPECT_TRUE(std::equal(okm.begin(), okm.end(), r->view().begin(), r->view().end()))
                    << file << " tcId " << t["tcId"];
            } else {
                EXPECT_FALSE(r.ok()) << file << " tcId " << t["tcId"] << " (too long must be refused)";
            }
            ++checked;
        }
    }
    EXPECT_GT(checked, 50);
}

}  // namespace

TEST(HmacKat, Sha256) { run_hmac("hmac/hmac_sha256_test.json", PrfAlg::HmacSha256); }
TEST(HmacKat, Sha384) { run_hmac("hmac/hmac_sha384_test.json", PrfAlg::HmacSha384); }
TEST(HmacKat, Sha512) { run_hmac("hmac/hmac_sha512_test.json", PrfAlg::HmacSha512); }
TEST(PrfPlusKat, HkdfSha256) { run_hkdf("hkdf/hkdf_sha256_test.json", PrfAlg::HmacSha256); }
TEST(PrfPlusKat, HkdfSha384) { run_hkdf("hkdf/hkdf_sha384_test.json", PrfAlg::HmacSha384); }

TEST(X25519Kat, Wycheproof) {
    auto doc = load("x25519/x25519_test.json");
    if (!doc) GTEST_SKIP() << "x25519 vectors not found";
    int valid = 0, zero_refused = 0;
    for (const auto& g : (*doc)["testGroups"]) {
        for (const auto& t : g["tests"]) {
            auto priv = hex(t["private"]), pub = hex(t["public"]), shared = hex(t["shared"]);
            auto ke = KeyExchange::from_private(KeGroup::Curve25519, priv);
            ASSERT_TRUE(ke.ok());
            auto s = ke->derive(pub);
            const bool all_zero = std::all_of(shared.begin(), shared.end(), [](auto b) { return b == 0; });
            if (all_zero) {
                // RFC 8031 2 / RFC 7748 6.1: an all-zero shared secret must be refused.
                EXPECT_FALSE(s.ok()) << "tcId " << t["tcId"];
                ++zero_refused;
                continue;
            }
            ASSERT_TRUE(s.ok()) << "tcId " << t["tcId"] << ": " << s.error().message;
            EXPECT_TRUE(std::equal(shared.begin(), shared.end(), s->view().begin(), s->view().end()))
                << "tcId " << t["tcId"];
            ++valid;
        }
    }
    EXPECT_GT(valid, 400);
    EXPECT_GT(zero_refused, 10);
}
