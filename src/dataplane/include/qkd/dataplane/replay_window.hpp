#pragma once
// RFC 4303 3.4.3 anti-replay window with the Appendix A2 extended-sequence-number inference.
// A bitmap of `size` bits (a multiple of 64) kept as a ring indexed by seq % size.
// Not thread-safe: one SA's inbound path runs under that SA's lock.
#include <cstdint>
#include <vector>

namespace qkd::dp {

inline constexpr std::uint32_t replay_window_min = 64;
inline constexpr std::uint32_t replay_window_max = 65536;

class ReplayWindow {
  public:
    // size 0 disables the replay check (the highest sequence number is still tracked for ESN
    // inference, which then uses a 64-packet window). Other sizes are rounded up to a multiple of
    // 64 and clamped to [replay_window_min, replay_window_max].
    ReplayWindow(std::uint32_t size, bool esn);

    // RFC 4303 A2.2: the full sequence number of a packet carrying `seq_lo`. Without ESN the high
    // half is always 0.
    std::uint64_t infer(std::uint32_t seq_lo) const;
    // True if `seq` is new: above the top, or inside the window and not yet seen. Seq 0 is never
    // valid (RFC 4303 3.3.3: the first packet sent has sequence number 1).
    bool check(std::uint64_t seq) const;
    // Marks `seq` as received; call only after the ICV verified (RFC 4303 3.4.3).
    void update(std::uint64_t seq);

    std::uint64_t top() const { return top_; }
    std::uint32_t size() const { return size_; }

  private:
    bool test_bit(std::uint64_t seq) const { return bits_[(seq % size_) / 64] >> (seq % 64) & 1; }
    void set_bit(std::uint64_t seq) { bits_[(seq % size_) / 64] |= std::uint64_t{1} << (seq % 64); }
    void clear_bit(std::uint64_t seq) {
        bits_[(seq % size_) / 64] &= ~(std::uint64_t{1} << (seq % 64));
    }

    std::uint32_t size_;  // bits
    bool enabled_;
    bool esn_;
    std::uint64_t top_ = 0;  // highest authenticated sequence number (T); 0 = none yet
    std::vector<std::uint64_t> bits_;
};

}  // namespace qkd::dp
