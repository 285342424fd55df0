#pragma once
// The secret-key budget of one link direction: material appears at the configured secret key
// rate up to the device buffer (max_key_count keys of the default size), not during outages.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

#include "qkd/kme/config.hpp"

namespace qkd::kme {

class Pool {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    Pool(const LinkConfig& cfg, double capacity_bits, TimePoint start);
    // Bits available now.
    double available(TimePoint now);
    // Takes `bits` if that much is available; false (and nothing taken) otherwise.
    bool take(double bits, TimePoint now);
    bool in_outage(TimePoint now) const;
    // Bits taken from the pool and still held by the KME, not yet handed out (the prefetch stock):
    // they stay in the device buffer, so the pool refills only up to capacity minus them.
    void set_held(double bits);

private:
    void refill(TimePoint now);
    double rate_;
    double cap_;
    double held_ = 0;
    double bits_;
    std::vector<Outage> outages_;
    TimePoint start_, last_;
    std::mutex mu_;
};

}  // namespace qkd::kme
