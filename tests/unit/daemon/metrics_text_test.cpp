// The Prometheus text of qkdgated (src/daemon/metrics_text.cpp): a pure function of a snapshot.
#include <gtest/gtest.h>

#include "qkd/daemon/metrics_text.hpp"

namespace qkd::daemon {
namespace {

bool has(const std::string& text, const std::string& line) { return text.find(line + "\n") != std::string::npos; }

TEST(MetricsText, QkdCountersAndTheKmeLatencyHistogram) {
    MetricsSnapshot s;
    QkdCounters c;
    c.keys_master = 5;
    c.keys_slave = 2;
    c.failures[static_cast<std::size_t>(QkdFail::timeout)] = 1;
    c.observe_rtt(std::chrono::microseconds(800));     // <= 1 ms
    c.observe_rtt(std::chrono::microseconds(3000));    // <= 5 ms
    c.observe_rtt(std::chrono::microseconds(7'000'000));  // beyond the last bucket: +Inf only
    s.qkd["kme-a"] = c;
    s.qkd_fallbacks["gw \"x\""] = 3;
    s.engine.ike_up = 4;
    const std::string t = render_metrics(s);
    EXPECT_TRUE(has(t, "qkdgate_qkd_keys_total{profile=\"kme-a\",role=\"master\"} 5")) << t;
    EXPECT_TRUE(has(t, "qkdgate_qkd_keys_total{profile=\"kme-a\",role=\"slave\"} 2")) << t;
    EXPECT_TRUE(has(t, "qkdgate_qkd_failures_total{profile=\"kme-a\",kind=\"timeout\"} 1")) << t;
    EXPECT_TRUE(has(t, "qkdgate_qkd_failures_total{profile=\"kme-a\",kind=\"replayed\"} 0")) << t;
    // Cumulative buckets (Prometheus histogram convention).
    EXPECT_TRUE(has(t, "qkdgate_qkd_kme_rtt_seconds_bucket{profile=\"kme-a\",le=\"0.001\"} 1")) << t;
    EXPECT_TRUE(has(t, "qkdgate_qkd_kme_rtt_seconds_bucket{profile=\"kme-a\",le=\"0.0025\"} 1")) << t;
    EXPECT_TRUE(has(t, "qkdgate_qkd_kme_rtt_seconds_bucket{profile=\"kme-a\",le=\"0.005\"} 2")) << t;
    EXPECT_TRUE(has(t, "qkdgate_qkd_kme_rtt_seconds_bucket{profile=\"kme-a\",le=\"5\"} 2")) << t;
    EXPECT_TRUE(has(t, "qkdgate_qkd_kme_rtt_seconds_bucket{profile=\"kme-a\",le=\"+Inf\"} 3")) << t;
    EXPECT_TRUE(has(t, "qkdgate_qkd_kme_rtt_seconds_count{profile=\"kme-a\"} 3")) << t;
    EXPECT_TRUE(has(t, "qkdgate_qkd_last_kme_rtt_seconds{profile=\"kme-a\"} 7")) << t;
    // Label values are escaped.
    EXPECT_TRUE(has(t, "qkdgate_qkd_fallbacks_total{gateway=\"gw \\\"x\\\"\"} 3")) << t;
    EXPECT_TRUE(has(t, "qkdgate_exchanges_total{kind=\"ike_sa\",result=\"up\"} 4")) << t;
    EXPECT_TRUE(has(t, "# TYPE qkdgate_qkd_kme_rtt_seconds histogram")) << t;
}

TEST(MetricsText, LabelEscaping) {
    EXPECT_EQ(metrics_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

}  // namespace
}  // namespace qkd::daemon
