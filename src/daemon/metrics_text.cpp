// The Prometheus text of qkdgated (metrics_text.hpp). Metric names: qkdgate_<what>[_total|_seconds].
#include "qkd/daemon/metrics_text.hpp"

#include <fmt/format.h>

#include <cctype>

namespace qkd::daemon {

std::string metrics_label(const std::string& v) {
    std::string o;
    o.reserve(v.size());
    for (char c : v) {
        if (c == '\\') o += "\\\\";
        else if (c == '"') o += "\\\"";
        else if (c == '\n') o += "\\n";
        else o += c;
    }
    return o;
}

namespace {

struct Out {
    std::string s;
    void head(const char* name, const char* type, const char* help) {
        s += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    template <class V>
    void line(const char* name, const std::string& labels, V v) {
        s += labels.empty() ? fmt::format("{} {}\n", name, v) : fmt::format("{}{{{}}} {}\n", name, labels, v);
    }
};

std::string lbl(const char* k, const std::string& v) { return fmt::format("{}=\"{}\"", k, metrics_label(v)); }

}  // namespace

std::string render_metrics(const MetricsSnapshot& m) {
    Out o;
    o.head("qkdgate_ike_sas", "gauge", "IKE SAs by gateway and state");
    std::map<std::pair<std::string, std::string>, std::uint64_t> by_state;
    for (auto& sa : m.ike_sas) {
        std::string st(ike::to_string(sa.state));
        for (auto& ch : st) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        ++by_state[{sa.gateway, st}];
    }
    for (auto& [k, n] : by_state) o.line("qkdgate_ike_sas", lbl("gateway", k.first) + "," + lbl("state", k.second), n);
    o.head("qkdgate_child_sas", "gauge", "Child SAs by gateway");
    std::map<std::string, std::uint64_t> children;
    for (auto& c : m.child_sas) ++children[c.gateway];
    for (auto& [g, n] : children) o.line("qkdgate_child_sas", lbl("gateway", g), n);

    o.head("qkdgate_exchanges_total", "counter", "IKE SA and child SA set-ups and rekeys by result");
    const auto& e = m.engine;
    o.line("qkdgate_exchanges_total", "kind=\"ike_sa\",result=\"up\"", e.ike_up);
    o.line("qkdgate_exchanges_total", "kind=\"ike_sa\",result=\"failed\"", e.ike_failed);
    o.line("qkdgate_exchanges_total", "kind=\"ike_rekey\",result=\"done\"", e.ike_rekeyed);
    o.line("qkdgate_exchanges_total", "kind=\"child_sa\",result=\"up\"", e.child_up);
    o.line("qkdgate_exchanges_total", "kind=\"child_rekey\",result=\"done\"", e.child_rekeyed);
    o.head("qkdgate_ike_messages_total", "counter", "IKE datagrams received and sent");
    o.line("qkdgate_ike_messages_total", "direction=\"rx\"", e.rx);
    o.line("qkdgate_ike_messages_total", "direction=\"tx\"", e.tx);
    o.head("qkdgate_ike_retransmits_total", "counter", "IKE requests sent again");
    o.line("qkdgate_ike_retransmits_total", "", e.retransmits);
    o.head("qkdgate_ike_dropped_total", "counter", "IKE datagrams dropped (the log says why)");
    o.line("qkdgate_ike_dropped_total", "", e.dropped);

    o.head("qkdgate_qkd_keys_total", "counter", "QKD keys fetched from the KME, by profile and role");
    for (auto& [p, c] : m.qkd) {
        o.line("qkdgate_qkd_keys_total", lbl("profile", p) + ",role=\"master\"", c.keys_master);
        o.line("qkdgate_qkd_keys_total", lbl("profile", p) + ",role=\"slave\"", c.keys_slave);
    }
    o.head("qkdgate_qkd_failures_total", "counter", "QKD key fetches that failed, by kind");
    for (auto& [p, c] : m.qkd)
        for (std::size_t i = 0; i < kQkdFailKinds; ++i)
            o.line("qkdgate_qkd_failures_total",
                   lbl("profile", p) + "," + lbl("kind", std::string(to_string(static_cast<QkdFail>(i)))), c.failures[i]);
    o.head("qkdgate_qkd_kme_rtt_seconds", "histogram", "KME round-trip time of ETSI 014 key calls");
    for (auto& [p, c] : m.qkd) {
        std::uint64_t cum = 0;
        for (std::size_t i = 0; i < kRttBuckets.size(); ++i) {
            cum += c.rtt_buckets[i];
            o.line("qkdgate_qkd_kme_rtt_seconds_bucket", lbl("profile", p) + fmt::format(",le=\"{}\"", kRttBuckets[i]), cum);
        }
        o.line("qkdgate_qkd_kme_rtt_seconds_bucket", lbl("profile", p) + ",le=\"+Inf\"", c.rtt_count);
        o.line("qkdgate_qkd_kme_rtt_seconds_sum", lbl("profile", p), c.rtt_sum_seconds);
        o.line("qkdgate_qkd_kme_rtt_seconds_count", lbl("profile", p), c.rtt_count);
    }
    o.head("qkdgate_qkd_last_kme_rtt_seconds", "gauge", "KME round-trip time of the last key call");
    for (auto& [p, c] : m.qkd)
        o.line("qkdgate_qkd_last_kme_rtt_seconds", lbl("profile", p), static_cast<double>(c.last_rtt.count()) / 1e6);
    o.head("qkdgate_qkd_fallbacks_total", "counter", "SAs set up without QKD under mode = prefer (the KME failed)");
    for (auto& [g, n] : m.qkd_fallbacks) o.line("qkdgate_qkd_fallbacks_total", lbl("gateway", g), n);

    o.head("qkdgate_esp_bytes_total", "counter", "ESP inner bytes of the live child SAs");
    for (auto& t : m.esp) {
        o.line("qkdgate_esp_bytes_total", lbl("gateway", t.gateway) + ",direction=\"in\"", t.bytes_in);
        o.line("qkdgate_esp_bytes_total", lbl("gateway", t.gateway) + ",direction=\"out\"", t.bytes_out);
    }
    o.head("qkdgate_esp_packets_total", "counter", "ESP packets of the live child SAs");
    for (auto& t : m.esp) {
        o.line("qkdgate_esp_packets_total", lbl("gateway", t.gateway) + ",direction=\"in\"", t.packets_in);
        o.line("qkdgate_esp_packets_total", lbl("gateway", t.gateway) + ",direction=\"out\"", t.packets_out);
    }
    return std::move(o.s);
}

}  // namespace qkd::daemon
