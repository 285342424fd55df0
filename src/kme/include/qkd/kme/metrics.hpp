#pragma once
// Prometheus text-format metrics (exposition format 0.0.4), served on their own loopback port.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace qkd::kme {

class KeyManager;

enum class Endpoint { Status, EncKeys, DecKeys, Reserve, Other, Count_ };

class Metrics {
public:
    void record(Endpoint e, int http_status, std::chrono::nanoseconds latency);
    void tls_handshake(bool ok) { (ok ? handshakes_ok_ : handshakes_failed_)++; }
    std::string render(KeyManager& km) const;

    static constexpr std::array<double, 10> kBucketsSeconds{0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0};

private:
    static constexpr std::array<int, 8> kStatuses{200, 400, 401, 404, 405, 413, 503, 0};  // 0 = other
    std::atomic<std::uint64_t> requests_[static_cast<int>(Endpoint::Count_)][kStatuses.size()]{};
    std::atomic<std::uint64_t> buckets_[static_cast<int>(Endpoint::Count_)][kBucketsSeconds.size() + 1]{};
    std::atomic<std::uint64_t> latency_sum_ns_[static_cast<int>(Endpoint::Count_)]{};
    std::atomic<std::uint64_t> handshakes_ok_{0}, handshakes_failed_{0};
};

}  // namespace qkd::kme
