// RFC 4303 3.4.3 window and Appendix A2.2 ESN inference, edge by edge.
#include "qkd/dataplane/replay_window.hpp"

#include <gtest/gtest.h>

using qkd::dp::ReplayWindow;

TEST(ReplayWindow, ZeroIsNeverValid) {
    ReplayWindow w(64, false);
    EXPECT_FALSE(w.check(0));
    EXPECT_TRUE(w.check(1));
}

TEST(ReplayWindow, DuplicatesAndWindowEdges) {
    ReplayWindow w(64, false);
    for (std::uint64_t s : {1u, 2u, 5u}) {
        ASSERT_TRUE(w.check(s));
        w.update(s);
    }
    EXPECT_FALSE(w.check(5));
    EXPECT_FALSE(w.check(2));
    EXPECT_TRUE(w.check(3));  // a gap inside the window is still acceptable
    w.update(200);
    EXPECT_EQ(w.top(), 200u);
    EXPECT_TRUE(w.check(137));   // 200 - 63: the last slot of a 64-wide window
    EXPECT_FALSE(w.check(136));  // just left of it
    EXPECT_FALSE(w.check(200));
    w.update(137);
    EXPECT_FALSE(w.check(137));
}

TEST(ReplayWindow, BigJumpClearsBitmap) {
    ReplayWindow w(128, false);
    for (std::uint64_t s = 1; s <= 128; ++s) w.update(s);
    w.update(1000);
    for (std::uint64_t s = 1000 - 127; s < 1000; ++s) EXPECT_TRUE(w.check(s)) << s;
    EXPECT_FALSE(w.check(1000 - 128));
}

TEST(ReplayWindow, RingReuseDoesNotLeakOldBits) {
    // Slot of seq s is s % size; moving the top by less than the window must clear the slots
    // it passes over so that s + size is not seen as a replay of s.
    ReplayWindow w(64, false);
    w.update(10);
    w.update(70);  // advance 60: slot of 10 is still inside (70 - 10 < 64)
    EXPECT_FALSE(w.check(10));
    w.update(74);               // now 10 is out; 74 is in slot 10
    EXPECT_FALSE(w.check(10));  // left of window
    EXPECT_FALSE(w.check(74));
    EXPECT_TRUE(w.check(73));  // passed over, never received
}

TEST(ReplayWindow, SizeIsRoundedAndClamped) {
    EXPECT_EQ(ReplayWindow(65, false).size(), 128u);
    EXPECT_EQ(ReplayWindow(1, false).size(), 64u);
    EXPECT_EQ(ReplayWindow(1u << 20, false).size(), qkd::dp::replay_window_max);
}

TEST(ReplayWindow, DisabledAcceptsDuplicates) {
    ReplayWindow w(0, false);
    w.update(5);
    EXPECT_TRUE(w.check(5));
    EXPECT_TRUE(w.check(1));
    EXPECT_FALSE(w.check(0));
}

TEST(ReplayWindow, NonEsnInferenceIsIdentity) {
    ReplayWindow w(64, false);
    w.update(0xfffffff0u);
    EXPECT_EQ(w.infer(5), 5u);
    EXPECT_FALSE(w.check(w.infer(5)));  // without ESN a wrapped number is just very old
}

TEST(ReplayWindow, EsnCaseAWithinOneSubspace) {
    // Tl >= W - 1: Seq >= Tl - W + 1 -> Th' = Th, else Th' = Th + 1.
    ReplayWindow w(64, true);
    const std::uint64_t top = (std::uint64_t{3} << 32) | 1000;
    w.update(top);
    EXPECT_EQ(w.infer(1000 - 63), (std::uint64_t{3} << 32) | (1000 - 63));  // bottom of window
    EXPECT_EQ(w.infer(5000), (std::uint64_t{3} << 32) | 5000);              // ahead, same subspace
    EXPECT_EQ(w.infer(1000 - 64),
              (std::uint64_t{4} << 32) | (1000 - 64));  // below bottom: next subspace
    EXPECT_EQ(w.infer(0), std::uint64_t{4} << 32);
}

TEST(ReplayWindow, EsnCaseBWindowSpansSubspaces) {
    // Tl < W - 1: Seq >= Tl - W + 1 (mod 2^32) -> Th' = Th - 1, else Th' = Th.
    ReplayWindow w(64, true);
    const std::uint64_t top = (std::uint64_t{7} << 32) | 10;
    w.update(top);
    EXPECT_EQ(w.infer(0xffffffffu), (std::uint64_t{6} << 32) | 0xffffffffu);
    EXPECT_EQ(w.infer(0xffffffffu - 52),
              (std::uint64_t{6} << 32) | (0xffffffffu - 52));  // bottom slot
    EXPECT_EQ(w.infer(11), (std::uint64_t{7} << 32) | 11);
    EXPECT_EQ(w.infer(0), std::uint64_t{7} << 32);
    EXPECT_TRUE(w.check(w.infer(0xffffffffu)));
    EXPECT_TRUE(w.check(w.infer(0xffffffffu - 52)));
    // One below the bottom is read as far ahead in the current subspace (the ICV then decides).
    EXPECT_EQ(w.infer(0xffffffffu - 53), (std::uint64_t{7} << 32) | (0xffffffffu - 53));
}

TEST(ReplayWindow, EsnBeforeFirstWrapHasNoPreviousSubspace) {
    ReplayWindow w(64, true);
    w.update(3);
    EXPECT_EQ(w.infer(0xfffffff0u),
              0u);  // would be "subspace -1": mapped to 0, which check() rejects
    EXPECT_FALSE(w.check(w.infer(0xfffffff0u)));
}
