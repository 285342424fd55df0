// Remote identity forms (qkd/ike/identity.hpp): exact identities, '*' patterns, lists, and the
// precedence a responder uses to pick a gateway.
#include <gtest/gtest.h>

#include "qkd/ike/identity.hpp"

using namespace qkd::ike;

namespace {
Identity id(std::string_view text) { return *Identity::parse(text); }
IdentityPattern pat(std::string_view text) {
    auto p = IdentityPattern::parse(text);
    EXPECT_TRUE(p.ok()) << text << ": " << (p ? "" : p.error().message);
    return std::move(p).value();
}
}  // namespace

TEST(IdentityPattern, Forms) {
    EXPECT_EQ(pat("gw-b.example").kind(), IdentityPattern::Kind::Exact);
    EXPECT_EQ(pat("192.0.2.1").kind(), IdentityPattern::Kind::Exact);
    EXPECT_EQ(pat("@#0a0b").kind(), IdentityPattern::Kind::Exact);
    EXPECT_EQ(pat("%any").kind(), IdentityPattern::Kind::Any);
    EXPECT_EQ(pat("*").kind(), IdentityPattern::Kind::Any);
    auto mail = pat("*@bench.qkdgate");
    EXPECT_EQ(mail.kind(), IdentityPattern::Kind::Wildcard);
    EXPECT_EQ(mail.identity().type, IdType::Rfc822);
    EXPECT_EQ(mail.str(), "*@bench.qkdgate");
    auto host = pat("bench-*");
    EXPECT_EQ(host.identity().type, IdType::Fqdn);
    EXPECT_EQ(pat("@*.example").identity().type, IdType::Fqdn);  // a leading '@' forces an FQDN
    EXPECT_EQ(pat("@*.example").str(), "*.example");
}

TEST(IdentityPattern, Rejections) {
    struct Case {
        std::string text;
        IdentityErrc code;
        std::string expect;
    } cases[] = {
        {"", IdentityErrc::Empty, "empty identity"},
        {std::string(256, 'a'), IdentityErrc::Invalid, "256 characters, expected at most 255"},
        {"@", IdentityErrc::Invalid, "\"@\" is not an identity"},
        {"@#zz", IdentityErrc::Invalid, "\"@#zz\" is not an identity"},
        {"@#0a*", IdentityErrc::NotAPattern, "a KEY_ID identity cannot contain '*'"},
        {"10.1.*.1", IdentityErrc::NotAPattern, "IP address identities cannot be patterns"},
        {"2001:db8::*", IdentityErrc::NotAPattern, "IP address identities cannot be patterns"},
    };
    for (const auto& c : cases) {
        auto p = IdentityPattern::parse(c.text);
        ASSERT_FALSE(p.ok()) << c.text;
        EXPECT_EQ(p.error().code, c.code) << c.text;
        EXPECT_NE(p.error().message.find(c.expect), std::string::npos) << p.error().message;
    }
}

TEST(IdentityPattern, WildcardMatching) {
    struct Case {
        std::string pattern, identity;
        bool match;
    } cases[] = {
        {"*@bench.qkdgate", "bench-0@bench.qkdgate", true},
        {"*@bench.qkdgate", "@bench.qkdgate", false},  // "@host" is the FQDN bench.qkdgate, not RFC822
        {"*@bench.qkdgate", "a@bench.qkdgate.evil", false},
        {"*@bench.qkdgate", "bench.qkdgate", false},  // FQDN: the type must agree
        {"bench-*", "bench-17", true},
        {"bench-*", "bench-", true},  // '*' also matches nothing
        {"bench-*", "xbench-1", false},
        {"bench-*", "bench-1@x", false},  // RFC822, not FQDN
        {"*.west.example", "a.b.west.example", true},
        {"*.west.example", "west.example", false},
        {"a*b*c", "aXXbYYc", true},
        {"a*b*c", "aXXbYY", false},
        {"a*b*c", "abcbc", true},
        {"**x", "yyx", true},
        {"BENCH-*.Example", "bench-1.example", true},  // ASCII case-insensitive for FQDN / RFC822
        {"*", "192.0.2.1", true},
        {"%any", "@#0a0b", true},
    };
    for (const auto& c : cases) EXPECT_EQ(pat(c.pattern).match(id(c.identity)).has_value(), c.match) << c.pattern << " vs " << c.identity;
}

TEST(IdentityPattern, ExactComparesByType) {
    EXPECT_TRUE(pat("GW-B.example").match(id("gw-b.example")));
    EXPECT_TRUE(pat("user@Example.org").match(id("USER@example.org")));
    EXPECT_FALSE(pat("gw-b.example").match(id("gw-b.example.")));
    EXPECT_FALSE(pat("192.0.2.1").match(id("192.0.2.2")));
    EXPECT_FALSE(pat("@#0a0b").match(id("@#0a0c")));
    EXPECT_TRUE(same_identity(id("@#0a0b"), id("@#0A0B")));  // both hex-decode to 0a 0b
    EXPECT_FALSE(same_identity(id("192.0.2.1"), id("@192.0.2.1")));  // IPv4 vs FQDN
}

// Exact beats any pattern; more literal characters beat fewer; "%any" is last.
TEST(IdentityPattern, Precedence) {
    const auto who = id("bench-3.west.example");
    auto exact = *pat("bench-3.west.example").match(who);
    auto narrow = *pat("bench-*.west.example").match(who);
    auto wide = *pat("*.west.example").match(who);
    auto any = *pat("%any").match(who);
    EXPECT_TRUE(exact.exact);
    EXPECT_GT(exact, narrow);
    EXPECT_GT(narrow, wide);
    EXPECT_GT(wide, any);
    EXPECT_EQ(narrow.literal, 19u);
    EXPECT_EQ(any, (IdMatch{false, 0}));
}

TEST(RemoteIdentity, ListsAndExact) {
    RemoteIdentity one = id("gw-b.example");  // an Identity converts
    ASSERT_NE(one.exact(), nullptr);
    EXPECT_EQ(one.exact()->str(), "gw-b.example");
    EXPECT_EQ(one.str(), "gw-b.example");

    const std::vector<std::string> texts{"gw-b.example", "*@bench.qkdgate", "bench-*"};
    auto list = RemoteIdentity::parse(texts);
    ASSERT_TRUE(list.ok()) << list.error().message;
    EXPECT_EQ(list->exact(), nullptr);  // a list cannot initiate
    EXPECT_EQ(list->str(), "gw-b.example, *@bench.qkdgate, bench-*");
    EXPECT_TRUE(list->match(id("gw-b.example"))->exact);
    EXPECT_FALSE(list->match(id("bench-1@bench.qkdgate"))->exact);
    EXPECT_TRUE(list->match(id("bench-1")));
    EXPECT_FALSE(list->match(id("gw-c.example")));
    EXPECT_EQ(RemoteIdentity::parse("bench-*")->exact(), nullptr);
    ASSERT_NE(RemoteIdentity::parse("gw-b.example")->exact(), nullptr);
    EXPECT_TRUE(RemoteIdentity{}.empty());
}

TEST(RemoteIdentity, ListRejections) {
    auto empty = RemoteIdentity::parse(std::span<const std::string>{});
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.error().code, IdentityErrc::Empty);
    const std::vector<std::string> twice{"a.example", "A.EXAMPLE"};
    auto dup = RemoteIdentity::parse(twice);
    ASSERT_FALSE(dup.ok());
    EXPECT_NE(dup.error().message.find("\"A.EXAMPLE\" is listed twice"), std::string::npos) << dup.error().message;
    const std::vector<std::string> bad{"a.example", "10.*.0.1"};
    auto b = RemoteIdentity::parse(bad);
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.error().message.find("\"10.*.0.1\""), std::string::npos);
    std::vector<std::string> many;
    for (std::size_t i = 0; i <= kMaxRemoteIds; ++i) many.push_back("gw-" + std::to_string(i) + ".example");
    auto m = RemoteIdentity::parse(many);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, IdentityErrc::TooMany);
}
