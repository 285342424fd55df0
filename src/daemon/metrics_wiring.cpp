// qkdgated's Prometheus endpoint: what the daemon knows, gathered on its io_context thread
// (metrics_text.hpp) and served on 127.0.0.1:[daemon] metrics_port (metrics_server.hpp).
#include "qkd/daemon/gateway_daemon.hpp"
#include "qkd/daemon/metrics_server.hpp"

namespace qkd::daemon {

Result<void, DaemonError> GatewayDaemon::start_metrics() {
    if (cfg_.daemon.metrics_port == 0) return {};
    auto m = MetricsServer::start(io_, cfg_.daemon.metrics_port, [this] { return render_metrics(metrics_snapshot()); });
    if (!m) return Err{m.error()};
    metrics_ = std::move(*m);
    return {};
}

std::uint16_t GatewayDaemon::metrics_port() const { return metrics_ ? metrics_->port() : 0; }

MetricsSnapshot GatewayDaemon::metrics_snapshot() {
    MetricsSnapshot s;
    if (engine_) {
        s.ike_sas = engine_->list_ike_sas();
        s.child_sas = engine_->list_child_sas();
        s.engine = engine_->stats();
    }
    if (qkd_)
        for (auto& n : qkd_->profile_names())
            if (auto* c = qkd_->counters(n)) s.qkd[n] = *c;
    for (auto& g : cfg_.gateways)
        if (g.qkd) s.qkd_fallbacks[g.name] = qkd_fallbacks_.count(g.name) ? qkd_fallbacks_.at(g.name) : 0;
    // ESP counters of the live child SAs, summed per gateway (the data plane keeps them per SA).
    std::map<std::string, EspTraffic> esp;
    for (auto& sa : s.child_sas) {
        auto it = children_.find(sa.spi_in);
        if (it == children_.end() || !dp_) continue;
        auto& t = esp[sa.gateway];
        t.gateway = sa.gateway;
        if (auto c = dp_->counters(it->second.in)) t.bytes_in += c->bytes, t.packets_in += c->packets;
        if (auto c = dp_->counters(it->second.out)) t.bytes_out += c->bytes, t.packets_out += c->packets;
    }
    for (auto& [g, t] : esp) s.esp.push_back(t);
    return s;
}

}  // namespace qkd::daemon
