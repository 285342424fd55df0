#pragma once
// What qkdgated's Prometheus endpoint shows, and its text form (exposition format 0.0.4). The
// daemon fills a MetricsSnapshot on its io_context thread; render_metrics is a pure function, so
// the format is unit-tested without sockets.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qkd/daemon/qkd_key_source.hpp"
#include "qkd/ike/engine.hpp"

namespace qkd::daemon {

struct EspTraffic {
    std::string gateway;
    std::uint64_t bytes_in = 0, bytes_out = 0, packets_in = 0, packets_out = 0;
};

struct MetricsSnapshot {
    std::vector<ike::IkeSaInfo> ike_sas;
    std::vector<ike::ChildSaInfo> child_sas;
    ike::EngineStats engine;
    std::map<std::string, QkdCounters> qkd;                // by profile
    std::map<std::string, std::uint64_t> qkd_fallbacks;    // by gateway (policy prefer)
    std::vector<EspTraffic> esp;                           // live child SAs, summed per gateway
};

std::string render_metrics(const MetricsSnapshot& s);

// Prometheus label value escaping (backslash, double quote, newline).
std::string metrics_label(const std::string& v);

}  // namespace qkd::daemon
