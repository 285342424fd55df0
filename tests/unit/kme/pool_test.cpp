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

TEST(Pool, HeldBitsStayInsideTheBuffer) {
    LinkConfig lc;
    lc.key_rate_bps = 1000;
    auto t0 = steady_clock::time_point(hours(1));
    Pool p(lc, 10000, t0);  // starts full
    ASSERT_TRUE(p.take(4000, t0));
    p.set_held(4000);  // the 4000 bits taken are still in the KME (stocked keys)
    EXPECT_NEAR(p.available(t0 + seconds(100)), 6000, 1);
    p.set_held(1000);  // 3000 bits handed out: the device refills at its rate
    EXPECT_NEAR(p.available(t0 + seconds(101)), 7000, 1);
    EXPECT_NEAR(p.available(t0 + seconds(200)), 9000, 1);
    p.set_held(9500);  // more held than the pool leaves room for: the pool shrinks at once
    EXPECT_NEAR(p.available(t0 + seconds(200)), 500, 1);
}
