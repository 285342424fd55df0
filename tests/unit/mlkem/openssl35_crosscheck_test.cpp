// Random cases cross-checked against OpenSSL 3.5 (Node.js 24 from scripts/get-node24.sh):
// OpenSSL's seeds give our ek, OpenSSL's ciphertexts decapsulate to its keys (including implicit
// rejection of random ciphertexts), and OpenSSL decapsulates our ciphertexts to our keys.
// Skips with the reason when Node.js 24 cannot be installed.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "qkd/common/encoding.hpp"
#include "qkd/crypto/mlkem.hpp"

namespace qkd::mlkem {

// Readable parameter names in test listings (found by argument-dependent lookup).
void PrintTo(ParamSet p, std::ostream* os) { *os << name(p); }

namespace {

constexpr int kCases = 25;

std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return out;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    pclose(p);
    return out;
}

std::vector<std::uint8_t> unhex(const nlohmann::json& v) { return qkd::hex_decode(v.get<std::string>()).value(); }

class OpenSsl35 : public ::testing::TestWithParam<ParamSet> {
protected:
    static void SetUpTestSuite() {
        const std::string out = run(std::string(QKD_REPO_DIR) + "/scripts/get-node24.sh 2>&1");
        const auto nl = out.find('\n');
        const std::string first = out.substr(0, nl);
        if (!first.empty() && first[0] == '/' && access(first.c_str(), X_OK) == 0) node_ = first;
        else skip_reason_ = "Node.js 24 (OpenSSL 3.5) unavailable: " + out;
    }
    static std::string node_;
    static std::string skip_reason_;
};
std::string OpenSsl35::node_;
std::string OpenSsl35::skip_reason_;

TEST_P(OpenSsl35, RandomCasesAgree) {
    if (node_.empty()) GTEST_SKIP() << skip_reason_;
    const ParamSet ps = GetParam();
    const std::string alg(name(ps));
    const std::string script = std::string(QKD_TEST_DIR) + "/openssl35_crosscheck.js";
    auto cases = nlohmann::json::parse(run(node_ + " " + script + " gen " + alg + " " + std::to_string(kCases)));
    ASSERT_EQ(cases.size(), static_cast<std::size_t>(kCases));

    nlohmann::json ours = nlohmann::json::array();
    std::vector<std::vector<std::uint8_t>> our_keys;
    for (const auto& t : cases) {
        const auto seed = unhex(t["seed"]);
        ASSERT_EQ(seed.size(), 64u);
        auto kp = keygen_internal(ps, std::span(seed).first(32), std::span(seed).subspan(32));
        ASSERT_TRUE(kp.ok());
        EXPECT_EQ(kp->ek, unhex(t["ek"])) << "ek from OpenSSL's seed differs";
        auto k = decaps(ps, kp->dk.view(), unhex(t["c"]));
        ASSERT_TRUE(k.ok());
        EXPECT_EQ(qkd::hex_encode(k->view()), t["K"].get<std::string>()) << "decaps of OpenSSL's ciphertext";
        auto k_rand = decaps(ps, kp->dk.view(), unhex(t["c_rand"]));
        ASSERT_TRUE(k_rand.ok());
        EXPECT_EQ(qkd::hex_encode(k_rand->view()), t["K_rand"].get<std::string>()) << "implicit rejection key";
        auto enc = encaps(ps, kp->ek);
        ASSERT_TRUE(enc.ok());
        ours.push_back({{"alg", alg}, {"seed", t["seed"]}, {"ek", t["ek"]}, {"c", qkd::hex_encode(enc->ciphertext)}});
        our_keys.emplace_back(enc->shared_secret.data(), enc->shared_secret.data() + 32);
    }

    char path[] = "/tmp/mlkem_crosscheck_XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    std::ofstream(path) << ours.dump();
    auto keys = nlohmann::json::parse(run(node_ + " " + script + " decaps " + path));
    std::remove(path);
    ASSERT_EQ(keys.size(), our_keys.size());
    for (std::size_t i = 0; i < our_keys.size(); ++i)
        EXPECT_EQ(keys[i].get<std::string>(), qkd::hex_encode(our_keys[i])) << "OpenSSL decaps of our ciphertext " << i;
}

INSTANTIATE_TEST_SUITE_P(AllSets, OpenSsl35,
                         ::testing::Values(ParamSet::MlKem512, ParamSet::MlKem768, ParamSet::MlKem1024),
                         [](const auto& info) { return std::string(info.param == ParamSet::MlKem512   ? "MlKem512"
                                                                   : info.param == ParamSet::MlKem768 ? "MlKem768"
                                                                                                      : "MlKem1024"); });

}  // namespace
}  // namespace qkd::mlkem
