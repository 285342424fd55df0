#include <gtest/gtest.h>

#include "qkd/kme/router.hpp"

using qkd::kme::parse_target;

TEST(RouterTarget, DecodesPathSegmentsAndQuery) {
    auto t = parse_target("/api/v1/keys/SAE%20B%2F1/enc_keys?number=3&size=1024");
    ASSERT_TRUE(t);
    ASSERT_EQ(t->segments.size(), 5u);
    EXPECT_EQ(t->segments[3], "SAE B/1");
    ASSERT_EQ(t->query.size(), 2u);
    EXPECT_EQ(t->query[1].first, "size");
    EXPECT_EQ(t->query[1].second, "1024");
}

TEST(RouterTarget, RejectsBrokenPercentEncoding) {
    EXPECT_FALSE(parse_target("/api/v1/keys/SAE%2/status"));
    EXPECT_FALSE(parse_target("/api/v1/keys/SAE%zz/status"));
    EXPECT_FALSE(parse_target("/api/v1/keys/x/dec_keys?key_ID=%"));
    EXPECT_FALSE(parse_target("api/v1"));
}
