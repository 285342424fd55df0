#include <gtest/gtest.h>

#include "qkd/sae/url.hpp"

namespace qkd::sae {
namespace {

TEST(KmeUrl, ParsesHostPortAndPrefix) {
    auto u = parse_kme_url("https://kme.example:8443/qkd/");
    ASSERT_TRUE(u) << u.error();
    EXPECT_EQ(u->host, "kme.example");
    EXPECT_EQ(u->port, 8443);
    EXPECT_EQ(u->base_path, "/qkd");
    EXPECT_FALSE(u->host_is_ip);
    EXPECT_EQ(u->host_header(), "kme.example:8443");
}

TEST(KmeUrl, DefaultPortAndIpLiterals) {
    auto a = parse_kme_url("https://127.0.0.1");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->port, 443);
    EXPECT_TRUE(a->host_is_ip);
    EXPECT_EQ(a->host_header(), "127.0.0.1");
    auto b = parse_kme_url("https://[::1]:9000");
    ASSERT_TRUE(b) << b.error();
    EXPECT_EQ(b->host, "::1");
    EXPECT_TRUE(b->host_is_ip);
    EXPECT_EQ(b->host_header(), "[::1]:9000");
}

TEST(KmeUrl, RejectsWhatIsNotHttpsHostPort) {
    for (const char* bad : {"http://kme:80", "kme:443", "https://", "https://:443", "https://kme:0", "https://kme:70000",
                            "https://kme:", "https://user@kme", "https://kme/x?y=1", "https://[::1", "https://[zz]:1",
                            "https://k me", "https://kme/a b"}) {
        auto u = parse_kme_url(bad);
        EXPECT_FALSE(u) << bad;
        if (!u) {
            EXPECT_NE(u.error().find("expected https://HOST[:PORT][/PREFIX]"), std::string::npos) << u.error();
        }
    }
}

TEST(PercentEncode, KeepsUnreservedEncodesTheRest) {
    EXPECT_EQ(percent_encode("SAE_B-1.x~"), "SAE_B-1.x~");
    EXPECT_EQ(percent_encode("a/b c?&="), "a%2Fb%20c%3F%26%3D");
    EXPECT_EQ(percent_encode("\xc3\xa9"), "%C3%A9");
}

}  // namespace
}  // namespace qkd::sae
