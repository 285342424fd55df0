#include "qkd/kme/pool.hpp"

#include <algorithm>
#include <cmath>

namespace qkd::kme {

Pool::Pool(const LinkConfig& cfg, double capacity_bits, TimePoint start)
    : rate_(cfg.key_rate_bps), cap_(capacity_bits), bits_(cfg.start_full ? capacity_bits : 0),
      outages_(cfg.outages), start_(start), last_(start) {}

bool Pool::in_outage(TimePoint now) const {
    const double t = std::chrono::duration<double>(now - start_).count();
    for (const auto& o : outages_) {
        if (t < o.start_s) continue;
        double into = t - o.start_s;
        if (o.every_s > 0) into = std::fmod(into, o.every_s);
        if (into < o.duration_s) return true;
    }
    return false;
}

void Pool::refill(TimePoint now) {
    // Keys held ahead (set_held) are part of the device buffer: available + held <= capacity, so
    // Get status never counts more keys than the buffer holds (issue 17, item 5).
    const double cap = std::max(0.0, cap_ - held_);
    if (now <= last_) {
        bits_ = std::min(bits_, cap);
        return;
    }
    // Integrate the rate over [last_, now] skipping outages, in steps no longer than 100 ms so an
    // outage boundary is never missed by more than that.
    auto t = last_;
    while (t < now) {
        auto step = std::min<std::chrono::steady_clock::duration>(now - t, std::chrono::milliseconds(100));
        if (!in_outage(t)) bits_ += rate_ * std::chrono::duration<double>(step).count();
        t += step;
        if (bits_ >= cap) break;
    }
    bits_ = std::min(bits_, cap);
    last_ = now;
}

double Pool::available(TimePoint now) {
    std::lock_guard lk(mu_);
    refill(now);
    return bits_;
}

void Pool::set_held(double bits) {
    std::lock_guard lk(mu_);
    held_ = std::max(0.0, bits);
}

bool Pool::take(double bits, TimePoint now) {
    std::lock_guard lk(mu_);
    refill(now);
    if (bits_ + 1e-9 < bits) return false;
    bits_ -= bits;
    return true;
}

}  // namespace qkd::kme
