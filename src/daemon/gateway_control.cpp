// qkdgated's control requests (control.hpp): show (filtered, paged), initiate, terminate, rekey,
// reload. Moved out of gateway_daemon.cpp; the keep-up logic they call is in gateway_keep.cpp.
#include "qkd/common/log.hpp"
#include "qkd/daemon/convert.hpp"
#include "qkd/daemon/gateway_daemon.hpp"

namespace qkd::daemon {

namespace {
using Fail = Err<DaemonError>;
DaemonError engine_err(const ike::EngineError& e) { return DaemonError{Errc::engine, e.message}; }
}  // namespace

void GatewayDaemon::finish_waiter(std::uint64_t ike_sa_id) {
    auto w = waiters_.find(ike_sa_id);
    if (w == waiters_.end() || !engine_) return;
    Waiter waiter = std::move(w->second);
    waiters_.erase(w);
    if (auto sa = engine_->ike_sa_info(ike_sa_id); sa && sa->child_sas > 0) {
        waiter.reply(nlohmann::json{{"message", "gateway " + waiter.gateway + " is up"}, {"ike_sa", ike_sa_json(*sa)}});
        return;
    }
    waiter.reply(Fail{DaemonError{Errc::engine, "gateway " + waiter.gateway + ": IKE SA without child SA: " + waiter.reason}});
}

void GatewayDaemon::handle_deferred(const ControlRequest& req, ControlReply reply) {
    if (req.cmd != ControlCmd::initiate || !req.wait || !cfg_.find(req.gateway) || !engine_) {
        reply(handle(req));
        return;
    }
    auto id = keep_initiate(req.gateway);
    if (!id) {
        reply(Fail{engine_err(id.error())});
        return;
    }
    waiters_[*id] = Waiter{req.gateway, std::move(reply), false, {}};
}

Result<nlohmann::json, DaemonError> GatewayDaemon::show_ike_sas(const ControlRequest& req) const {
    std::vector<ListRow> rows;
    for (auto& sa : engine_->list_ike_sas()) {
        if (!req.gateway.empty() && sa.gateway != req.gateway) continue;
        if (!peer_matches(req.peer, sa.remote.str(), sa.remote_id)) continue;
        auto j = ike_sa_json(sa);
        qkd_annotate(j, sa);
        if (sa.initiator && sa.state == ike::IkeSaState::Connecting) keep_annotate(j);
        rows.push_back(ListRow{sa.id, std::move(j)});
    }
    keep_rows(req, rows);  // wanted gateways without an IKE SA: CONNECTING, waiting for the next try
    return list_answer(std::move(rows), req);
}

Result<nlohmann::json, DaemonError> GatewayDaemon::show_child_sas(const ControlRequest& req) const {
    // The peer filter needs each child SA's IKE SA (address, identity).
    std::map<std::uint64_t, std::pair<std::string, std::string>> peers;
    if (!req.peer.empty())
        for (auto& sa : engine_->list_ike_sas()) peers[sa.id] = {sa.remote.str(), sa.remote_id};
    std::vector<ListRow> rows;
    for (auto& sa : engine_->list_child_sas()) {
        if (!req.gateway.empty() && sa.gateway != req.gateway) continue;
        if (!req.peer.empty()) {
            auto p = peers.find(sa.ike_sa_id);
            if (p == peers.end() || !peer_matches(req.peer, p->second.first, p->second.second)) continue;
        }
        std::optional<dp::SaCounters> in, o;
        if (auto it = children_.find(sa.spi_in); it != children_.end()) {
            if (auto c = dp_->counters(it->second.in)) in = *c;
            if (auto c = dp_->counters(it->second.out)) o = *c;
        }
        rows.push_back(ListRow{sa.id, child_sa_json(sa, in ? &*in : nullptr, o ? &*o : nullptr)});
    }
    return list_answer(std::move(rows), req);
}

Result<nlohmann::json, DaemonError> GatewayDaemon::handle(const ControlRequest& req) {
    auto known = [&]() -> Result<void, DaemonError> {
        if (!cfg_.find(req.gateway))
            return Fail{DaemonError{Errc::engine, "no gateway named \"" + req.gateway + "\" in " + cfg_.path}};
        return {};
    };
    switch (req.cmd) {
        case ControlCmd::show_ike_sa: return show_ike_sas(req);
        case ControlCmd::show_child_sa: return show_child_sas(req);
        case ControlCmd::initiate: {
            if (auto k = known(); !k) return Fail{k.error()};
            auto r = keep_initiate(req.gateway);
            if (!r) return Fail{engine_err(r.error())};
            return nlohmann::json{{"message", "initiating gateway " + req.gateway}};
        }
        case ControlCmd::terminate: {
            if (auto k = known(); !k) return Fail{k.error()};
            // Retries stop first, so the Down events of the DELETE are not answered by a new try.
            const bool retrying = keep_terminate(req.gateway);
            auto r = engine_->terminate(req.gateway);
            arm_timer();
            if (!r && retrying && r.error().code == ike::EngineErrc::NotConnected)
                return nlohmann::json{{"message", "gateway " + req.gateway + " had no IKE SA; its retries are stopped"}};
            if (!r) return Fail{engine_err(r.error())};
            return nlohmann::json{{"message", "terminating gateway " + req.gateway + " (no retries until initiate)"}};
        }
        case ControlCmd::rekey: {
            if (auto k = known(); !k) return Fail{k.error()};
            auto r = req.what == RekeyWhat::ike ? engine_->rekey_ike(req.gateway) : engine_->rekey_child(req.gateway);
            arm_timer();
            if (!r) return Fail{engine_err(r.error())};
            return nlohmann::json{{"message", std::string("rekeying the ") + (req.what == RekeyWhat::ike ? "IKE SA" : "child SAs") +
                                                  " of gateway " + req.gateway}};
        }
        case ControlCmd::reload: return reload();
        case ControlCmd::show_qkd: return qkd_json();
    }
    return Fail{DaemonError{Errc::control_request, "unhandled command"}};
}

}  // namespace qkd::daemon
