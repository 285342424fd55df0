#include <gtest/gtest.h>

#include "qkd/kme/pool.hpp"

using namespace std::chrono;
using qkd::kme::LinkConfig;
using qkd::kme::Pool;

TEST(Pool, FillsAtTheKeyRateUpToCapacity) {
    LinkConfig lc;
    lc.key_rate_bps = 1000;
    lc.start_full = false;
    auto t0 = steady_clock::time_point(hours(1));
    Pool p(lc, 10000, t0);
    EXPECT_NEAR(p.available(t0), 0, 1e-6);
    EXPECT_NEAR(p.available(t0 + seconds(2)), 2000, 1);
    EXPECT_FALSE(p.take(3000, t0 + seconds(2)));
    EXPECT_TRUE(p.take(1500, t0 + seconds(2)));
    EXPECT_NEAR(p.available(t0 + seconds(2)), 500, 1);
    EXPECT_NEAR(p.available(t0 + seconds(100)), 10000, 1);  // capped
}

TEST(Pool, NoMaterialDuringScheduledOutages) {
    LinkConfig lc;
    lc.key_rate_bps = 1000;
    lc.start_full = false;
    lc.outages.push_back({1.0, 2.0, 10.0});  // down in [1,3) of every 10 s
    auto t0 = steady_clock::time_point(hours(1));
    Pool p(lc, 1e9, t0);
    EXPECT_FALSE(p.in_outage(t0 + milliseconds(500)));
    EXPECT_TRUE(p.in_outage(t0 + milliseconds(1500)));
    EXPECT_TRUE(p.in_outage(t0 + milliseconds(11500)));
    EXPECT_NEAR(p.available(t0 + seconds(4)), 2000, 101);  // 4 s minus 2 s of outage
}
