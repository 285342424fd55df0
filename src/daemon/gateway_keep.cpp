// Keeping wanted gateways up: the daemon's side of reconnect.hpp. Engine events feed a Keeper per
// gateway; a timer per gateway starts the next attempt. The engine never re-initiates by itself
// (src/ike/README.md, "Contract with the daemon"), so every retry starts here.
//
// Hook for the QKD layer: any IkeSaEvent::Failed of an SA that never came up (whatever the reason,
// e.g. "no QKD key from the KME" under qkd.mode = "require") is retried with the same back-off,
// so a tunnel comes back by itself once the cause is gone.
#include <ctime>

#include "qkd/common/log.hpp"
#include "qkd/daemon/gateway_daemon.hpp"

namespace qkd::daemon {

namespace asio = boost::asio;

namespace {
constexpr std::chrono::seconds kKeepWatch{5};

std::uint32_t jitter_random() {
    std::uint8_t b[4];
    SystemRng::instance().fill(b);
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

std::string utc_time(std::chrono::system_clock::time_point t) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

bool live(ike::IkeSaState s) { return s != ike::IkeSaState::Closed; }
bool established(ike::IkeSaState s) { return s == ike::IkeSaState::Established || s == ike::IkeSaState::Rekeying; }
}  // namespace

void GatewayDaemon::keep_add(const GatewayEntry& g) {
    auto [it, fresh] =
        keeps_.try_emplace(g.name, Keep{Keeper(RetryPolicy::of(g)), std::make_unique<asio::steady_timer>(io_), ++keep_gen_});
    if (!fresh) it->second.k.set_policy(RetryPolicy::of(g));
    if (!keep_watch_) {
        keep_watch_ = std::make_unique<asio::steady_timer>(io_);
        keep_watch();
    }
    if (g.start_action != StartAction::start || it->second.k.wanted()) return;
    it->second.k.want();
    // Not from inside start()/reload(): the first attempt runs once they have returned.
    asio::post(io_, [this, name = g.name] { keep_attempt(name); });
}

void GatewayDaemon::keep_sync(const std::string& gw, Keeper& k) {
    bool up = false;
    for (auto& sa : engine_->list_ike_sas())
        if (sa.gateway == gw && established(sa.state)) up = true;
    if (up) k.up(KeepClock::now());
    else k.connecting();
}

Result<std::uint64_t, ike::EngineError> GatewayDaemon::keep_initiate(const std::string& gw) {
    auto it = keeps_.find(gw);
    if (it != keeps_.end()) {
        it->second.k.want();
        it->second.timer->cancel();
    }
    auto id = engine_->initiate(gw);
    arm_timer();
    if (it == keeps_.end()) return id;
    auto& k = it->second.k;
    if (id) {
        k.attempt_started();
    } else if (id.error().code == ike::EngineErrc::Busy) {
        keep_sync(gw, k);
    } else if (id.error().code == ike::EngineErrc::InvalidConfig || id.error().code == ike::EngineErrc::UnknownGateway) {
        k.unwant();  // retrying cannot help (e.g. a remote_id pattern cannot initiate)
    } else if (auto d = k.attempt_refused(id.error().message, KeepClock::now(), jitter_random())) {
        keep_arm(gw, *d);
    }
    return id;
}

void GatewayDaemon::keep_attempt(const std::string& gw) {
    auto it = keeps_.find(gw);
    if (it == keeps_.end() || stopping_ || !engine_ || !it->second.k.wanted()) return;
    auto& k = it->second.k;
    auto id = engine_->initiate(gw);
    arm_timer();
    if (id) {
        k.attempt_started();
        spdlog::debug("gateway {}: attempt {} started (IKE SA {})", gw, k.attempt(), *id);
        return;
    }
    if (id.error().code == ike::EngineErrc::Busy) {  // the peer was quicker: its SA is being set up
        keep_sync(gw, k);
        return;
    }
    spdlog::warn("gateway {}: cannot initiate: {}", gw, id.error().message);
    if (auto d = k.attempt_refused(id.error().message, KeepClock::now(), jitter_random())) keep_arm(gw, *d);
}

void GatewayDaemon::keep_event(const ike::IkeSaInfo& sa, ike::IkeSaEvent ev, std::string_view reason) {
    if (ev == ike::IkeSaEvent::Up || ev == ike::IkeSaEvent::Rekeyed) {
        up_ids_.insert(sa.id);
        if (up_ids_.size() >= up_ids_prune_at_) {
            // A rekeyed IKE SA ends without an event: forget the ids the engine no longer has.
            std::set<std::uint64_t> keep{sa.id};
            for (auto& s : engine_->list_ike_sas())
                if (up_ids_.count(s.id)) keep.insert(s.id);
            up_ids_ = std::move(keep);
            up_ids_prune_at_ = 2 * up_ids_.size() + 64;
        }
        if (auto it = keeps_.find(sa.gateway); it != keeps_.end()) {
            if (it->second.k.phase() != KeepPhase::up && it->second.k.attempt() > 1)
                spdlog::info("gateway {}: up again after {} attempts", sa.gateway, it->second.k.attempt());
            it->second.k.up(KeepClock::now());
            it->second.timer->cancel();
        }
        return;
    }
    const bool was_up = up_ids_.erase(sa.id) > 0;
    auto it = keeps_.find(sa.gateway);
    if (stopping_ || it == keeps_.end()) return;
    const SaEnd why = ev == ike::IkeSaEvent::Failed ? (was_up ? SaEnd::established_failed : SaEnd::setup_failed) : SaEnd::closed;
    // Not from inside the engine's callback: initiate() must not run re-entrantly.
    asio::post(io_, [this, gw = sa.gateway, gen = it->second.gen, why, r = std::string(reason)] { keep_after_end(gw, gen, why, r); });
}

void GatewayDaemon::keep_after_end(const std::string& gw, std::uint64_t gen, SaEnd why, const std::string& reason) {
    auto it = keeps_.find(gw);
    if (it == keeps_.end() || it->second.gen != gen || stopping_ || !engine_) return;
    auto& k = it->second.k;
    if (k.wanted()) {
        // Another IKE SA of the gateway (the peer's new one, an INITIAL_CONTACT replacement) is
        // alive: nothing to do.
        bool any = false, up = false;
        for (auto& sa : engine_->list_ike_sas())
            if (sa.gateway == gw && live(sa.state)) {
                any = true;
                up |= established(sa.state);
            }
        if (any) {
            if (up) k.up(KeepClock::now());
            else k.connecting();
            return;
        }
    }
    const bool was_wanted = k.wanted();
    auto d = k.ended(why, reason, KeepClock::now(), jitter_random());
    if (d) {
        // One line per retry (the failure itself was logged by ike_sa_event).
        spdlog::info("gateway {}: attempt {} in {:.1f} s", gw, k.attempt() + 1, static_cast<double>(d->count()) / 1000.0);
        keep_arm(gw, *d);
    } else if (k.phase() == KeepPhase::given_up) {
        spdlog::warn("gateway {}: giving up after {} attempts (keyingtries = {}); `qkdgate initiate {}` tries again", gw,
                     k.attempt(), k.policy().keyingtries, gw);
    } else if (was_wanted && !k.wanted()) {
        spdlog::info("gateway {}: left down ({})", gw,
                     why == SaEnd::established_failed ? "dpd_action = \"clear\"" : "close_action = \"none\"");
    }
}

void GatewayDaemon::keep_arm(const std::string& gw, Millis d) {
    auto it = keeps_.find(gw);
    if (it == keeps_.end()) return;
    it->second.timer->expires_after(d);
    it->second.timer->async_wait([this, gw](boost::system::error_code ec) {
        if (!ec) keep_attempt(gw);
    });
}

bool GatewayDaemon::keep_terminate(const std::string& gw) {
    auto it = keeps_.find(gw);
    if (it == keeps_.end()) return false;
    const auto phase = it->second.k.phase();
    const bool retrying = it->second.k.wanted() && (phase == KeepPhase::waiting || phase == KeepPhase::given_up);
    it->second.k.unwant();
    it->second.timer->cancel();
    return retrying;
}

void GatewayDaemon::keep_watch() {
    keep_watch_->expires_after(kKeepWatch);
    keep_watch_->async_wait([this](boost::system::error_code ec) {
        if (ec || stopping_ || !engine_) return;
        std::vector<std::string> check;
        for (auto& [name, k] : keeps_)
            if (k.k.wanted() && (k.k.phase() == KeepPhase::connecting || k.k.phase() == KeepPhase::up)) check.push_back(name);
        if (!check.empty()) {
            std::set<std::string> alive;
            for (auto& sa : engine_->list_ike_sas())
                if (live(sa.state)) alive.insert(sa.gateway);
            for (auto& gw : check) {
                if (alive.count(gw)) continue;
                // e.g. a peer's half-open SA that timed out: the engine reports no event for it.
                const auto& k = keeps_.at(gw);
                keep_after_end(gw, k.gen, k.k.phase() == KeepPhase::up ? SaEnd::closed : SaEnd::setup_failed, "IKE SA gone");
            }
        }
        keep_watch();
    });
}

void GatewayDaemon::keep_annotate(nlohmann::json& row) const {
    auto it = keeps_.find(row.value("gateway", std::string()));
    if (it == keeps_.end() || it->second.k.phase() != KeepPhase::connecting) return;
    row["attempt"] = it->second.k.attempt();
    if (!it->second.k.last_error().empty()) row["last_error"] = it->second.k.last_error();
}

void GatewayDaemon::keep_rows(const ControlRequest& req, std::vector<ListRow>& rows) const {
    const auto now = KeepClock::now();
    for (auto& [name, keep] : keeps_) {
        const auto& k = keep.k;
        if (!k.wanted() || (k.phase() != KeepPhase::waiting && k.phase() != KeepPhase::given_up)) continue;
        if (!req.gateway.empty() && req.gateway != name) continue;
        const GatewayEntry* g = cfg_.find(name);
        if (!g) continue;
        const std::string remote = ipv4_to_string(g->remote_address) + ":" + std::to_string(g->remote_port);
        const std::string rid = g->remote_id.empty() ? std::string() : g->remote_id.front();
        if (!peer_matches(req.peer, remote, rid)) continue;
        nlohmann::json j{{"gateway", name},
                         {"id", nullptr},
                         {"state", k.phase() == KeepPhase::waiting ? "CONNECTING" : "DOWN"},
                         {"role", "initiator"},
                         {"local", ipv4_to_string(g->local_address)},
                         {"remote", remote},
                         {"local_id", g->local_id},
                         {"remote_id", rid},
                         {"child_sas", 0},
                         {"last_error", k.last_error()}};
        if (auto t = k.next_try()) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*t - now);
            j["attempt"] = k.attempt() + 1;
            j["next_try_in_ms"] = std::max<std::int64_t>(0, left.count());
            j["next_try"] = utc_time(std::chrono::system_clock::now() + left);
        } else {
            j["attempt"] = k.attempt();
            j["gave_up"] = true;
        }
        rows.push_back(ListRow{0, std::move(j)});
    }
}

}  // namespace qkd::daemon
