#include "qkd/dataplane/replay_window.hpp"

#include <algorithm>

namespace qkd::dp {

ReplayWindow::ReplayWindow(std::uint32_t size, bool esn) : enabled_(size != 0), esn_(esn) {
    std::uint32_t s =
        std::clamp(size == 0 ? replay_window_min : size, replay_window_min, replay_window_max);
    s = (s + 63) / 64 * 64;
    size_ = s;
    bits_.assign(size_ / 64, 0);
}

std::uint64_t ReplayWindow::infer(std::uint32_t seq_lo) const {
    if (!esn_) return seq_lo;
    // RFC 4303 A2.2, with W = window size, T = top_, Tl/Th its low and high halves.
    const std::uint32_t w = size_;
    const std::uint32_t tl = static_cast<std::uint32_t>(top_);
    const std::uint32_t th = static_cast<std::uint32_t>(top_ >> 32);
    std::uint32_t th_new;
    if (tl >= w - 1) {
        // Case A: the window lies within one sequence number subspace.
        th_new = (seq_lo >= tl - w + 1) ? th : th + 1;
    } else {
        // Case B: the window spans two subspaces; Tl - W + 1 wraps (mod 2^32).
        const std::uint32_t bottom = tl - w + 1;
        if (seq_lo >= bottom) {
            // From the previous subspace. Before the first wrap there is none: such a number
            // is older than anything ever sent, so map it to 0 which check() rejects.
            if (th == 0) return 0;
            th_new = th - 1;
        } else {
            th_new = th;
        }
    }
    return (static_cast<std::uint64_t>(th_new) << 32) | seq_lo;
}

bool ReplayWindow::check(std::uint64_t seq) const {
    if (seq == 0) return false;
    if (!enabled_) return true;
    if (seq > top_) return true;
    if (top_ - seq >= size_) return false;  // left of the window
    return !test_bit(seq);
}

void ReplayWindow::update(std::uint64_t seq) {
    if (seq > top_) {
        const std::uint64_t advance = seq - top_;
        if (advance >= size_) {
            std::fill(bits_.begin(), bits_.end(), 0);
        } else {
            for (std::uint64_t s = top_ + 1; s < seq; ++s) clear_bit(s);
        }
        top_ = seq;
    }
    set_bit(seq);
}

}  // namespace qkd::dp
