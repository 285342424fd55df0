#include <gtest/gtest.h>

#include <set>
#include <string>

#include "qkd/common/encoding.hpp"
#include "qkd/common/rng.hpp"
#include "qkd/common/uuid.hpp"

namespace {
std::vector<std::uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }
}  // namespace

TEST(Base64, Rfc4648Section10Vectors) {
    const std::pair<const char*, const char*> v[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                     {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                     {"foobar", "Zm9vYmFy"}};
    for (auto [plain, enc] : v) {
        EXPECT_EQ(qkd::base64_encode(bytes_of(plain)), enc);
        auto d = qkd::base64_decode(enc);
        ASSERT_TRUE(d) << enc;
        EXPECT_EQ(*d, bytes_of(plain));
        auto s = qkd::base64_decode_secret(enc);
        ASSERT_TRUE(s);
        EXPECT_EQ(std::vector<std::uint8_t>(s->view().begin(), s->view().end()), bytes_of(plain));
    }
}

TEST(Base64, AllByteValuesRoundTrip) {
    for (int len = 0; len < 70; ++len) {
        std::vector<std::uint8_t> b(len);
        qkd::random_bytes(b);
        auto d = qkd::base64_decode(qkd::base64_encode(b));
        ASSERT_TRUE(d);
        EXPECT_EQ(*d, b);
    }
    std::vector<std::uint8_t> all(256);
    for (int i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
    EXPECT_EQ(*qkd::base64_decode(qkd::base64_encode(all)), all);
}

TEST(Base64, RejectsNonCanonicalInput) {
    for (const char* bad : {"Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "Zm-v", "Zm_v", "====",
                            "Zg==Zg==", "=Zg="}) {
        EXPECT_FALSE(qkd::base64_decode(bad).has_value()) << bad;
        EXPECT_FALSE(qkd::base64_decode_secret(bad).has_value()) << bad;
    }
}

TEST(Hex, RoundTripAndRejects) {
    auto d = qkd::hex_decode("00ffA5");
    ASSERT_TRUE(d);
    EXPECT_EQ(qkd::hex_encode(*d), "00ffa5");
    EXPECT_FALSE(qkd::hex_decode("abc"));
    EXPECT_FALSE(qkd::hex_decode("zz"));
}

TEST(Uuid, ParseFormatAndVersion) {
    auto u = qkd::uuid_parse("550E8400-e29b-41d4-a716-446655440000");
    ASSERT_TRUE(u);
    EXPECT_EQ(qkd::uuid_format(*u), "550e8400-e29b-41d4-a716-446655440000");
    for (const char* bad : {"", "550e8400e29b41d4a716446655440000", "550e8400-e29b-41d4-a716-44665544000",
                            "550e8400-e29b-41d4-a716-4466554400000", "550e8400+e29b-41d4-a716-446655440000",
                            "550e8400-e29b-41d4-a716-44665544000g"}) {
        EXPECT_FALSE(qkd::uuid_parse(bad)) << bad;
    }
    auto r = qkd::uuid_random_v4();
    auto s = qkd::uuid_format(r);
    EXPECT_EQ(s[14], '4');
    EXPECT_TRUE(s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');
    EXPECT_NE(qkd::uuid_format(qkd::uuid_random_v4()), s);
}

TEST(Uuid, RandomAcrossBlocksAreDistinctVersion4AndRoundTrip) {
    // uuid_random_v4 draws its bytes in blocks of 64: cross several block boundaries.
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        auto u = qkd::uuid_random_v4();
        auto s = qkd::uuid_format(u);
        ASSERT_EQ(s.size(), 36u);
        EXPECT_EQ(s[14], '4');
        EXPECT_TRUE(s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b') << s;
        auto back = qkd::uuid_parse(s);
        ASSERT_TRUE(back) << s;
        EXPECT_EQ(*back, u);
        EXPECT_TRUE(seen.insert(s).second) << "repeated " << s;
    }
    // a bad digit in either half of a byte, a hyphen moved
    for (const char* bad : {"g50e8400-e29b-41d4-a716-446655440000", "5g0e8400-e29b-41d4-a716-446655440000",
                            "550e840-0e29b-41d4-a716-446655440000"})
        EXPECT_FALSE(qkd::uuid_parse(bad)) << bad;
}
