// DropLog: one line per peer per interval with the count of drops not logged, and a global cap.
#include <gtest/gtest.h>

#include "qkd/daemon/drop_log.hpp"

namespace qkd::daemon {
namespace {

using namespace std::chrono_literals;

TEST(DropLog, OneLinePerPeerPerSecondWithSuppressedCount) {
    DropLog log(1s, 10);
    const auto t0 = std::chrono::steady_clock::time_point{} + 100s;
    const ike::Endpoint a{ike::IpAddr::v4(192, 0, 2, 1), 500}, b{ike::IpAddr::v4(192, 0, 2, 2), 500};
    auto first = log.note(t0, a, ike::DropReason::Malformed, "payload length 9 below 4");
    ASSERT_TRUE(first);
    EXPECT_NE(first->find("192.0.2.1"), std::string::npos);
    EXPECT_NE(first->find("malformed (payload length 9 below 4)"), std::string::npos);
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(log.note(t0 + 100ms, a, ike::DropReason::IntegrityFailed, {}));
    EXPECT_TRUE(log.note(t0 + 100ms, b, ike::DropReason::UnknownSa, {}));  // another peer is not held back
    auto later = log.note(t0 + 1s, a, ike::DropReason::IntegrityFailed, {});
    ASSERT_TRUE(later);
    EXPECT_NE(later->find("5 more from this address not logged"), std::string::npos) << *later;
}

TEST(DropLog, GlobalCapAgainstSpoofedSources) {
    DropLog log(1s, 3, 8);
    const auto t0 = std::chrono::steady_clock::time_point{} + 100s;
    int lines = 0;
    for (int i = 0; i < 100; ++i)
        lines += log.note(t0, {ike::IpAddr::v4(10, 0, 0, static_cast<std::uint8_t>(i)), 500}, ike::DropReason::Malformed, {}) ? 1 : 0;
    EXPECT_EQ(lines, 3);
    auto next = log.note(t0 + 2s, {ike::IpAddr::v4(10, 0, 1, 1), 500}, ike::DropReason::Malformed, {});
    ASSERT_TRUE(next);
    EXPECT_NE(next->find("from other addresses not logged"), std::string::npos) << *next;
}

}  // namespace
}  // namespace qkd::daemon
