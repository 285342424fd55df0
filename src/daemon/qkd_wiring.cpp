// qkdgated's QKD key source: one SAE client per [[qkd_profile]] that a gateway uses, created at
// start on the daemon's io_context (qkd_key_source.hpp).
#include <set>

#include "qkd/common/log.hpp"
#include "qkd/daemon/gateway_daemon.hpp"

namespace qkd::daemon {

Result<void, DaemonError> GatewayDaemon::start_qkd() {
    std::set<std::string> used;
    for (auto& g : cfg_.gateways)
        if (g.qkd) used.insert(g.qkd->profile);
    if (used.empty()) return {};
    // config.cpp read only the profile names; the SAE layer owns the [[qkd_profile]] tables.
    auto all = sae::load_profiles_file(cfg_.path);
    if (!all) return Err{DaemonError{Errc::config_value, all.error()}};
    std::vector<sae::Profile> profiles;
    for (auto& p : *all)
        if (used.count(p.name)) profiles.push_back(std::move(p));
    auto src = QkdKeySource::create(io_.get_executor(), std::move(profiles));
    if (!src) return Err{DaemonError{Errc::config_value, src.error()}};
    qkd_ = std::move(*src);
    for (auto& n : qkd_->profile_names()) spdlog::info("qkd profile \"{}\": SAE client ready", n);
    return {};
}

}  // namespace qkd::daemon

namespace qkd::daemon {

// The engine's QKD round asks for a key (ike-tasks.md "The QKD key request"): the initiator's as
// the master SAE (Get key for the peer's SAE ID), the responder's as the slave (Get key with key
// IDs, the master being the peer's SAE ID). The answer always reaches the engine from a fresh
// io_context turn, never from inside this call: the round parks itself (wait) after it returns.
void GatewayDaemon::qkd_key_request(const ike::QkdKeyRequest& req) {
    auto answer = [this, id = req.ike_sa_id, slot = req.slot](ike::QkdKeyAnswer a) {
        boost::asio::post(io_, [this, id, slot, a = std::move(a)]() mutable {
            if (!engine_) return;
            engine_->on_qkd_key(id, slot, std::move(a));
            arm_timer();
        });
    };
    const GatewayEntry* g = cfg_.find(req.gateway);
    if (g == nullptr || !g->qkd || !qkd_) {
        ike::QkdKeyAnswer a;
        a.error = "gateway '" + req.gateway + "' has no qkd section (profile, peer_sae_id); the QKD method needs one";
        spdlog::warn("gateway {}: QKD key for IKE SA {}: {}", req.gateway, req.ike_sa_id, a.error);
        answer(std::move(a));
        return;
    }
    const QkdSettings q = *g->qkd;
    const std::string gw = req.gateway;
    const std::uint64_t sa_id = req.ike_sa_id;
    const bool master = req.master;
    auto done = [this, answer, gw, sa_id, master, q](QkdKeyResult r) {
        ike::QkdKeyAnswer a;
        if (r) {
            a.key_id = r->key_id;
            a.key = std::move(r->key);
            qkd_rtt_[gw] = r->rtt;  // one entry per configured gateway
            spdlog::info("gateway {}: IKE SA {}: QKD key {} from profile \"{}\" as {} ({} bits, KME {:.1f} ms)", gw, sa_id,
                         r->key_id_text, q.profile, master ? "master" : "slave", q.key_size,
                         static_cast<double>(r->rtt.count()) / 1000.0);
        } else {
            a.error = "QKD key from profile \"" + q.profile + "\" (" + std::string(to_string(r.error().kind)) +
                      "): " + r.error().message;
            spdlog::error("gateway {}: IKE SA {}: {}; mode = {}: no SA or rekey without a QKD key (SAs already up stay)", gw,
                          sa_id, a.error, q.mode == QkdMode::require ? "require" : "prefer");
        }
        answer(std::move(a));
    };
    if (master)
        qkd_->fetch_master(q.profile, q.peer_sae_id, q.key_size, q.timeout, std::move(done));
    else
        qkd_->fetch_slave(q.profile, q.peer_sae_id, req.key_id, q.key_size, q.timeout, std::move(done));
}

void GatewayDaemon::qkd_annotate(nlohmann::json& j, const ike::IkeSaInfo& sa) const {
    if (!j.contains("qkd")) return;
    auto it = qkd_rtt_.find(sa.gateway);
    j["qkd"]["kme_rtt_ms"] = it == qkd_rtt_.end() ? nlohmann::json(nullptr)
                                                  : nlohmann::json(static_cast<double>(it->second.count()) / 1000.0);
    if (const GatewayEntry* g = cfg_.find(sa.gateway); g && g->qkd) j["qkd"]["profile"] = g->qkd->profile;
}

nlohmann::json GatewayDaemon::qkd_json() const {
    nlohmann::json j{{"profiles", qkd_ ? qkd_->counters_json() : nlohmann::json::object()}};
    nlohmann::json fb = nlohmann::json::object();
    for (auto& g : cfg_.gateways)
        if (g.qkd) fb[g.name] = qkd_fallbacks_.count(g.name) ? qkd_fallbacks_.at(g.name) : 0;
    j["fallbacks"] = fb;
    return j;
}

}  // namespace qkd::daemon
