// Gateways in and out of the running daemon: at start, and on reload (`qkdgate reload`, SIGHUP).
// A reload validates the whole new config first (TOML, PSK files, the IKE layer's checks in a
// scratch engine, the sockets of new local addresses) and changes nothing when any of it fails;
// then it applies the difference (config_diff.hpp). Gateways whose settings did not change are
// not touched at all: their SAs, policies and data-plane state carry on.
#include "qkd/common/log.hpp"
#include "qkd/daemon/config_diff.hpp"
#include "qkd/daemon/convert.hpp"
#include "qkd/daemon/gateway_daemon.hpp"

namespace qkd::daemon {

namespace {
using Fail = Err<DaemonError>;

// The scratch engine of a reload's validation sends and installs nothing.
struct NullSink final : ike::EventSink {
    void send_datagram(const ike::Endpoint&, const ike::Endpoint&, std::span<const std::uint8_t>) override {}
    void child_sa_up(const ike::ChildSaKeys&) override {}
    void child_sa_rekeyed(const ike::ChildSaRef&, const ike::ChildSaKeys&) override {}
    void child_sa_down(const ike::ChildSaRef&) override {}
};

nlohmann::json names(const std::vector<std::string>& v) { return nlohmann::json(v); }
}  // namespace

Result<void, DaemonError> GatewayDaemon::add_gateway(const GatewayEntry& g) {
    for (auto port : {cfg_.daemon.ike_port, cfg_.daemon.natt_port})
        if (auto r = udp_->bind(UdpAddr{g.local_address, port}); !r) return r;
    auto gc = to_gateway_config(g, cfg_.daemon);
    if (!gc) return Fail{gc.error()};
    gc->auto_start = false;  // the keeper initiates, so that it sees every attempt (gateway_keep.cpp)
    if (auto r = engine_->add_gateway(std::move(*gc)); !r)
        return Fail{DaemonError{Errc::engine, "gateway '" + g.name + "': " + r.error().message}};
    spdlog::info("gateway {}: {} -> {}, {} / {}{}", g.name, ipv4_to_string(g.local_address), ipv4_to_string(g.remote_address),
                 g.ike_proposals, g.esp_proposals, g.start_action == StartAction::start ? ", initiating" : "");
    keep_add(g);
    return {};
}

void GatewayDaemon::drop_gateway(const std::string& name) {
    if (auto it = keeps_.find(name); it != keeps_.end()) {
        it->second.timer->cancel();
        keeps_.erase(it);
    }
    (void)engine_->terminate(name);  // DELETE for established SAs (RFC 7296 1.4.1), sent now
    (void)engine_->remove_gateway(name);  // the rest goes without a word; child SAs leave the data plane
    arm_timer();
}

Result<nlohmann::json, DaemonError> GatewayDaemon::reload() {
    auto refuse = [&](const std::string& why) {
        spdlog::error("reload of {} refused, the running config stays: {}", cfg_.path, why);
        return Fail{DaemonError{Errc::config_value, "reload refused, the running config stays: " + why}};
    };
    auto next = load_config(cfg_.path);
    if (!next) return refuse(next.error().message);
    // Everything the IKE layer checks, in a scratch engine; and the sockets of new addresses.
    {
        NullSink sink;
        ike::Engine scratch(SystemClock::instance(), SystemRng::instance(), sink, opt_.engine);
        for (auto& g : next->gateways) {
            auto gc = to_gateway_config(g, cfg_.daemon);
            if (!gc) return refuse(gc.error().message);
            gc->auto_start = false;
            if (auto r = scratch.add_gateway(std::move(*gc)); !r) return refuse("gateway '" + g.name + "': " + r.error().message);
        }
    }
    for (auto& g : next->gateways)
        for (auto port : {cfg_.daemon.ike_port, cfg_.daemon.natt_port})
            if (auto r = udp_->bind(UdpAddr{g.local_address, port}); !r) return refuse(r.error().message);

    const auto diff = diff_gateways(cfg_, *next);
    const auto restart = daemon_settings_needing_restart(cfg_.daemon, next->daemon);
    DaemonSettings running = cfg_.daemon;  // sockets, data plane and engine options stay until a restart
    if (running.log_level != next->daemon.log_level) {
        running.log_level = next->daemon.log_level;
        spdlog::set_level(spdlog::level::from_str(running.log_level));
    }
    cfg_ = std::move(*next);
    cfg_.daemon = running;

    for (auto& n : diff.removed) drop_gateway(n);
    for (auto& n : diff.changed) drop_gateway(n);
    for (auto& n : diff.changed)
        if (auto r = add_gateway(*cfg_.find(n)); !r) spdlog::error("reload: {}", r.error().message);
    for (auto& n : diff.added)
        if (auto r = add_gateway(*cfg_.find(n)); !r) spdlog::error("reload: {}", r.error().message);
    for (auto& n : diff.retuned) keep_add(*cfg_.find(n));  // new policy; starts it if now start_action = "start"
    arm_timer();

    std::string msg = "reloaded " + cfg_.path + ": " + std::to_string(diff.added.size()) + " added, " +
                      std::to_string(diff.removed.size()) + " removed, " + std::to_string(diff.changed.size()) + " changed, " +
                      std::to_string(diff.retuned.size()) + " retuned, " + std::to_string(diff.unchanged.size()) + " unchanged";
    if (!restart.empty()) {
        std::string list;
        for (auto& r : restart) list += (list.empty() ? "" : ", ") + r;
        msg += "; [daemon] " + list + " changed: applied at the next restart of qkdgated";
    }
    spdlog::info("{}", msg);
    return nlohmann::json{{"message", msg},           {"added", names(diff.added)},         {"removed", names(diff.removed)},
                          {"changed", names(diff.changed)}, {"retuned", names(diff.retuned)}, {"unchanged", names(diff.unchanged)},
                          {"restart_needed", names(restart)}};
}

}  // namespace qkd::daemon
