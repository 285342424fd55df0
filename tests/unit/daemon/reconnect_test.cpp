// The keep-up logic of qkdgated: back-off schedule (capped doubling minus jitter) and the
// per-gateway state machine, with made-up times.
#include <gtest/gtest.h>

#include "qkd/daemon/reconnect.hpp"

using namespace qkd::daemon;
using namespace std::chrono_literals;

namespace {
RetryPolicy policy(unsigned tries = 0) {
    RetryPolicy p;
    p.delay = 1000ms;
    p.delay_max = 60000ms;
    p.keyingtries = tries;
    return p;
}
constexpr std::uint32_t kNoJitter = 0, kFullJitter = UINT32_MAX;
}  // namespace

TEST(Backoff, DoublesUpToTheCap) {
    const auto p = policy();
    const std::int64_t want[] = {0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    for (unsigned n = 0; n < std::size(want); ++n) EXPECT_EQ(backoff_delay(p, n, kNoJitter).count(), want[n]) << "failed = " << n;
    // No overflow however many failures.
    EXPECT_EQ(backoff_delay(p, 1000000, kNoJitter).count(), 60000);
}

TEST(Backoff, JitterTakesAtMostAQuarter) {
    const auto p = policy();
    EXPECT_EQ(backoff_delay(p, 3, kFullJitter).count(), 3000);  // 4000 - 1000
    EXPECT_EQ(backoff_delay(p, 9, kFullJitter).count(), 45000);  // cap 60000 - 15000
    const auto mid = backoff_delay(p, 3, UINT32_MAX / 2).count();
    EXPECT_GT(mid, 3000);
    EXPECT_LT(mid, 4000);
    // Every value within [3/4 d, d].
    for (std::uint32_t r = 0; r < 4000000000u; r += 123456789u) {
        auto d = backoff_delay(p, 5, r).count();
        EXPECT_GE(d, 12000);
        EXPECT_LE(d, 16000);
    }
}

TEST(Backoff, CustomSteps) {
    RetryPolicy p = policy();
    p.delay = 2000ms;
    p.delay_max = 5000ms;
    EXPECT_EQ(backoff_delay(p, 1, kNoJitter).count(), 2000);
    EXPECT_EQ(backoff_delay(p, 2, kNoJitter).count(), 4000);
    EXPECT_EQ(backoff_delay(p, 3, kNoJitter).count(), 5000);
}

TEST(Keeper, FailedSetupsBackOffForEver) {
    Keeper k(policy());
    const auto t0 = KeepClock::time_point{} + 1000s;
    k.want();
    EXPECT_TRUE(k.wanted());
    std::int64_t expect = 1000;
    for (int i = 1; i <= 10; ++i) {
        k.attempt_started();
        EXPECT_EQ(k.phase(), KeepPhase::connecting);
        EXPECT_EQ(k.attempt(), static_cast<unsigned>(i));
        auto d = k.ended(SaEnd::setup_failed, "peer did not answer 6 transmissions", t0, kNoJitter);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->count(), expect) << "attempt " << i;
        EXPECT_EQ(k.phase(), KeepPhase::waiting);
        EXPECT_EQ(*k.next_try(), t0 + *d);
        EXPECT_EQ(k.last_error(), "peer did not answer 6 transmissions");
        expect = std::min<std::int64_t>(expect * 2, 60000);
    }
}

TEST(Keeper, KeyingtriesGivesUpUntilWantedAgain) {
    Keeper k(policy(3));
    const auto t = KeepClock::time_point{} + 5s;
    k.want();
    for (int i = 1; i <= 2; ++i) {
        k.attempt_started();
        EXPECT_TRUE(k.ended(SaEnd::setup_failed, "AUTHENTICATION_FAILED", t, kNoJitter));
    }
    k.attempt_started();
    EXPECT_FALSE(k.ended(SaEnd::setup_failed, "AUTHENTICATION_FAILED", t, kNoJitter));
    EXPECT_EQ(k.phase(), KeepPhase::given_up);
    EXPECT_FALSE(k.next_try());
    EXPECT_TRUE(k.wanted());  // still shown (as DOWN), retried after `initiate`
    k.want();
    EXPECT_EQ(k.attempt(), 0u);
    k.attempt_started();
    EXPECT_TRUE(k.ended(SaEnd::setup_failed, "x", t, kNoJitter));
}

TEST(Keeper, SuccessResetsTheBackoff) {
    Keeper k(policy());
    auto t = KeepClock::time_point{} + 100s;
    k.want();
    for (int i = 0; i < 5; ++i) {
        k.attempt_started();
        k.ended(SaEnd::setup_failed, "no answer", t, kNoJitter);
    }
    k.attempt_started();
    k.up(t);
    EXPECT_EQ(k.phase(), KeepPhase::up);
    // Up for a while, then DPD fails: re-initiate at once, then back off from the first step.
    auto d = k.ended(SaEnd::established_failed, "peer did not answer 6 transmissions", t + 60s, kNoJitter);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->count(), 0);
    k.attempt_started();
    EXPECT_EQ(k.attempt(), 1u);
    d = k.ended(SaEnd::setup_failed, "no answer", t + 61s, kNoJitter);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->count(), 1000);
}

TEST(Keeper, BriefUpKeepsBackingOff) {
    Keeper k(policy());
    auto t = KeepClock::time_point{} + 100s;
    k.want();
    for (int i = 0; i < 3; ++i) {
        k.attempt_started();
        k.ended(SaEnd::setup_failed, "no answer", t, kNoJitter);
    }
    k.attempt_started();  // 4th
    k.up(t);
    auto d = k.ended(SaEnd::closed, "deleted by peer", t + 2s, kNoJitter);  // a peer deleting at once
    ASSERT_TRUE(d);
    EXPECT_EQ(d->count(), 8000);
}

TEST(Keeper, DpdAndCloseActions) {
    const auto t = KeepClock::time_point{} + 100s;
    for (auto dpd : {DpdAction::restart, DpdAction::clear}) {
        auto p = policy();
        p.dpd_action = dpd;
        Keeper k(p);
        k.want();
        k.attempt_started();
        k.up(t);
        auto d = k.ended(SaEnd::established_failed, "peer did not answer", t + 100s, kNoJitter);
        EXPECT_EQ(d.has_value(), dpd == DpdAction::restart);
        EXPECT_EQ(k.wanted(), dpd == DpdAction::restart);
        EXPECT_EQ(k.phase(), dpd == DpdAction::restart ? KeepPhase::waiting : KeepPhase::idle);
    }
    for (auto close : {CloseAction::start, CloseAction::none}) {
        auto p = policy();
        p.close_action = close;
        Keeper k(p);
        k.want();
        k.attempt_started();
        k.up(t);
        auto d = k.ended(SaEnd::closed, "deleted by peer", t + 100s, kNoJitter);
        EXPECT_EQ(d.has_value(), close == CloseAction::start);
        if (d) {
            EXPECT_EQ(d->count(), 0);
        }
        EXPECT_EQ(k.wanted(), close == CloseAction::start);
    }
}

TEST(Keeper, UnwantedOrAlreadyWaitingDoesNothing) {
    const auto t = KeepClock::time_point{} + 100s;
    Keeper k(policy());
    EXPECT_FALSE(k.ended(SaEnd::setup_failed, "x", t, kNoJitter));  // never wanted (a responder-only gateway)
    EXPECT_EQ(k.last_error(), "x");
    k.want();
    k.attempt_started();
    ASSERT_TRUE(k.ended(SaEnd::setup_failed, "first", t, kNoJitter));
    // A peer's SA failing while we wait does not schedule a second attempt.
    EXPECT_FALSE(k.ended(SaEnd::setup_failed, "second", t, kNoJitter));
    EXPECT_EQ(k.phase(), KeepPhase::waiting);
    k.unwant();  // terminate
    EXPECT_EQ(k.phase(), KeepPhase::idle);
    EXPECT_FALSE(k.next_try());
    EXPECT_FALSE(k.ended(SaEnd::closed, "deleted", t, kNoJitter));
}

TEST(Keeper, RefusedInitiateCountsAsAFailedAttempt) {
    Keeper k(policy());
    k.want();
    auto d = k.attempt_refused("busy", KeepClock::time_point{} + 1s, kNoJitter);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->count(), 1000);
    EXPECT_EQ(k.attempt(), 1u);
}

TEST(RetryPolicyOf, TakesTheGatewaySettings) {
    GatewayEntry g;
    g.retry_delay = 2s;
    g.retry_delay_max = 30s;
    g.keyingtries = 4;
    g.dpd_action = DpdAction::clear;
    g.close_action = CloseAction::none;
    auto p = RetryPolicy::of(g);
    EXPECT_EQ(p.delay, 2000ms);
    EXPECT_EQ(p.delay_max, 30000ms);
    EXPECT_EQ(p.keyingtries, 4u);
    EXPECT_EQ(p.dpd_action, DpdAction::clear);
    EXPECT_EQ(p.close_action, CloseAction::none);
}
