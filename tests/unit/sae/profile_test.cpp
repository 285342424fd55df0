#include <gtest/gtest.h>

#include "qkd/sae/profile.hpp"

namespace qkd::sae {
namespace {

qkd::Result<std::vector<Profile>, std::string> parse(std::string_view text, const std::string& file = "/etc/qkdgate/gw.toml") {
    toml::table t = toml::parse(text, file);
    return parse_profiles(t, file);
}

constexpr std::string_view kGood = R"(
[daemon]
log_level = "info"

[[gateway]]
name = "site-b"

[[qkd_profile]]
name = "kme-a"
kme_url = "https://127.0.0.1:8443"
local_sae_id = "SAE_A"
local_cert = "../pki/sae_a.pem"
local_key = "../pki/sae_a.key"
kme_ca_cert = "/abs/ca.pem"
kme_cert = "../pki/kme_a.pem"
kme_id = "KME_A"
timeout = 2.5
key_size = 512
tls_groups = ["X25519MLKEM768", "X25519"]
pq_only = true
source_address = "192.0.2.10"

[[qkd_profile]]
name = "kme-backup"
kme_url = "https://kme2.example"
local_sae_id = "SAE_A"
local_cert = "a.pem"
local_key = "a.key"
kme_ca_cert = "ca.pem"
)";

TEST(Profiles, ParsesEveryKeyAndIgnoresOtherTables) {
    auto r = parse(kGood);
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(r->size(), 2u);
    const Profile& a = (*r)[0];
    EXPECT_EQ(a.name, "kme-a");
    EXPECT_EQ(a.kme_url.port, 8443);
    EXPECT_EQ(a.local_sae_id, "SAE_A");
    // Relative paths are relative to the config file's folder.
    EXPECT_EQ(a.local_cert, std::filesystem::path("/etc/qkdgate/../pki/sae_a.pem"));
    EXPECT_EQ(a.kme_ca_cert, std::filesystem::path("/abs/ca.pem"));
    ASSERT_TRUE(a.kme_cert);
    EXPECT_EQ(*a.kme_cert, std::filesystem::path("/etc/qkdgate/../pki/kme_a.pem"));
    EXPECT_EQ(a.kme_id, "KME_A");
    EXPECT_EQ(a.timeout, std::chrono::milliseconds(2500));
    EXPECT_EQ(a.key_size, 512);
    EXPECT_EQ(a.tls_groups, (std::vector<std::string>{"X25519MLKEM768", "X25519"}));
    EXPECT_TRUE(a.pq_only);
    EXPECT_EQ(a.source_address, "192.0.2.10");
    EXPECT_GT(a.source_line, 0);
}

TEST(Profiles, Defaults) {
    auto r = parse(kGood);
    ASSERT_TRUE(r);
    const Profile& b = (*r)[1];
    EXPECT_EQ(b.key_size, 256);
    EXPECT_EQ(b.timeout, std::chrono::seconds(10));
    EXPECT_FALSE(b.kme_cert);
    EXPECT_FALSE(b.kme_id);
    EXPECT_TRUE(b.tls_groups.empty());
    EXPECT_FALSE(b.pq_only);
    EXPECT_FALSE(b.source_address);
    EXPECT_EQ(b.kme_url.port, 443);
}

TEST(Profiles, NoProfilesIsAnEmptyList) {
    auto r = parse("[daemon]\nx = 1\n");
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->empty());
}

std::string one(std::string_view body) {
    return std::string("[[qkd_profile]]\nname = \"p\"\nkme_url = \"https://k:1\"\nlocal_sae_id = \"S\"\n"
                       "local_cert = \"c\"\nlocal_key = \"k\"\nkme_ca_cert = \"ca\"\n") +
           std::string(body);
}

struct BadCase {
    std::string text;
    std::string must_contain;
};

TEST(Profiles, ErrorsNameFileKeyAndExpectation) {
    const std::vector<BadCase> cases{
        {"[[qkd_profile]]\nkme_url = \"https://k\"\n", "key 'name': missing; expected a non-empty string"},
        {one("timeout = \"ten\"\n"), "key 'timeout': expected a number of seconds, got \"ten\""},
        {one("timeout = 0\n"), "key 'timeout': expected seconds in 0.001..600"},
        {one("timeout = 601\n"), "key 'timeout'"},
        {one("key_size = 13\n"), "key 'key_size': expected a positive multiple of 8"},
        {one("key_size = -8\n"), "key 'key_size'"},
        {one("key_size = 2.5\n"), "key 'key_size': expected an integer number of bits, got 2.5"},
        {one("pq_only = \"yes\"\n"), "key 'pq_only': expected true or false"},
        {one("source_address = \"eth1\"\n"), "key 'source_address': \"eth1\" is not an IP address"},
        {one("tls_groups = []\n"), "key 'tls_groups': expected a non-empty array"},
        {one("tls_groups = [1]\n"), "key 'tls_groups': expected strings"},
        {one("kme_id = \"\"\n"), "key 'kme_id': expected a non-empty string"},
        {one("kmeurl = \"x\"\n"), "unknown key 'kmeurl'; expected one of: name, kme_url"},
        {"[[qkd_profile]]\nname = \"p\"\nkme_url = \"http://k\"\n", "key 'kme_url': kme_url \"http://k\": scheme must be https"},
        {"[[qkd_profile]]\nname = \"p\"\nkme_url = \"https://k\"\nlocal_sae_id = \"S A\"\n", "key 'local_sae_id'"},
        {"[[qkd_profile]]\nname = \"p\"\nkme_url = \"https://k\"\nlocal_sae_id = 5\n", "key 'local_sae_id': expected a string, got 5"},
        {one("") + one(""), "\"p\" is already used by another profile"},
        {"qkd_profile = 3\n", "'qkd_profile' must be an array of tables, written [[qkd_profile]]"},
    };
    for (const auto& c : cases) {
        auto r = parse(c.text, "/cfg/gw.toml");
        ASSERT_FALSE(r) << c.text;
        EXPECT_NE(r.error().find(c.must_contain), std::string::npos) << "error: " << r.error() << "\nwanted: " << c.must_contain;
        EXPECT_EQ(r.error().rfind("/cfg/gw.toml:", 0), 0u) << r.error();
    }
}

TEST(Profiles, LoadFileReportsTomlSyntaxAndMissingFile) {
    auto missing = load_profiles_file("/nonexistent/qkdgate.toml");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().find("/nonexistent/qkdgate.toml"), std::string::npos);
}

TEST(Profiles, FindProfileListsTheNames) {
    auto r = parse(kGood);
    ASSERT_TRUE(r);
    EXPECT_TRUE(find_profile(*r, "kme-backup", "f"));
    auto none = find_profile(*r, "kme-c", "f");
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().find("expected one of: \"kme-a\", \"kme-backup\""), std::string::npos) << none.error();
}

}  // namespace
}  // namespace qkd::sae
