// The public Engine API: thin wrappers over Engine::Impl.
#include <algorithm>

#include "impl.hpp"

namespace qkd::ike {

Engine::Engine(Clock& clock, Rng& rng, EventSink& sink, EngineOptions opts)
    : impl_(std::make_unique<Impl>(clock, rng, sink, opts)) {
    rng.fill(impl_->cookie_secret);
}

Engine::~Engine() = default;

namespace {
Err<EngineError> fail(EngineErrc c, std::string m) { return Err{EngineError{c, std::move(m)}}; }

// RFC 7296 3.5: an initiator sends one identity as IDr and checks the responder's IDr against
// it; a list or a pattern names no one identity to ask for.
std::string cannot_initiate(const GatewayConfig& gw) {
    return "gateway \"" + gw.name + "\": remote_id pattern \"" + gw.remote_id.str() +
           "\" cannot be used to initiate: an initiator sends one exact identity as IDr; give one exact remote_id, or "
           "use this gateway to respond only";
}
}  // namespace

Result<void, EngineError> Engine::add_gateway(GatewayConfig cfg) {
    if (cfg.name.empty()) return fail(EngineErrc::InvalidConfig, "gateway without a name");
    if (impl_->gateway(cfg.name)) return fail(EngineErrc::DuplicateGateway, "gateway \"" + cfg.name + "\" already exists");
    if (cfg.psk.size() < 16)
        return fail(EngineErrc::InvalidConfig, "gateway \"" + cfg.name + "\": PSK of " + std::to_string(cfg.psk.size()) +
                                                   " octets, expected at least 16");
    if (cfg.ike_proposals.empty() || cfg.esp_proposals.empty())
        return fail(EngineErrc::InvalidConfig, "gateway \"" + cfg.name + "\" needs IKE and ESP proposals");
    if (cfg.remote_id.empty()) return fail(EngineErrc::InvalidConfig, "gateway \"" + cfg.name + "\" needs a remote_id");
    if (cfg.auto_start && !cfg.remote_id.exact()) return fail(EngineErrc::InvalidConfig, cannot_initiate(cfg));
    if (cfg.local_ts.empty() || cfg.remote_ts.empty())
        return fail(EngineErrc::InvalidConfig, "gateway \"" + cfg.name + "\" needs local and remote traffic selectors");
    if (cfg.local_ts.size() > kMaxTrafficSelectors || cfg.remote_ts.size() > kMaxTrafficSelectors)
        return fail(EngineErrc::InvalidConfig, "gateway \"" + cfg.name + "\": more than " +
                                                   std::to_string(kMaxTrafficSelectors) + " traffic selectors on one side");
    if (cfg.ike_rekey_margin >= cfg.ike_lifetime || cfg.child_rekey_margin >= cfg.child_lifetime)
        return fail(EngineErrc::InvalidConfig, "gateway \"" + cfg.name + "\": rekey margin must be below the lifetime");
    for (const auto& p : cfg.ike_proposals)
        for (auto g : p.ke)
            if (g == crypto::KeGroup::Qkd)
                return fail(EngineErrc::InvalidConfig, "gateway \"" + cfg.name + "\": the QKD method is supported in the "
                                                       "additional key exchanges (ke1_qkd .. ke7_qkd), not as the first one");
            else if (!crypto::ke_supported(static_cast<std::uint16_t>(g)))
                return fail(EngineErrc::InvalidConfig, "unsupported key exchange method " + std::to_string(static_cast<unsigned>(g)));
    const bool start = cfg.auto_start;
    const std::string name = cfg.name;
    impl_->gateways.emplace(name, std::move(cfg));
    if (start) {
        if (auto r = initiate(name); !r) return Err{r.error()};
    }
    return {};
}

Result<void, EngineError> Engine::remove_gateway(std::string_view name) {
    if (!impl_->gateway(name)) return fail(EngineErrc::UnknownGateway, "no gateway \"" + std::string(name) + "\"");
    for (auto& [spi, sa] : impl_->sas)
        if (sa->gateway == name) impl_->destroy(*sa, "gateway removed", false);
    impl_->reap();
    impl_->gateways.erase(impl_->gateways.find(name));
    return {};
}

Result<std::uint64_t, EngineError> Engine::initiate(std::string_view name) {
    const GatewayConfig* gw = impl_->gateway(name);
    if (!gw) return fail(EngineErrc::UnknownGateway, "no gateway \"" + std::string(name) + "\"");
    if (!gw->remote_id.exact()) return fail(EngineErrc::InvalidConfig, cannot_initiate(*gw));
    if (IkeSa* sa = impl_->find_by_gateway(name); sa && sa->state != SaState::Deleting)
        return fail(EngineErrc::Busy, "gateway \"" + std::string(name) + "\" already has an IKE SA (" +
                                          std::string(to_string(sa->state)) + ")");
    return impl_->initiate(*gw);
}

// Every IKE SA of the gateway: a responder gateway with a remote_id pattern may hold several.
Result<void, EngineError> Engine::terminate(std::string_view name) {
    if (!impl_->gateway(name)) return fail(EngineErrc::UnknownGateway, "no gateway \"" + std::string(name) + "\"");
    bool any = false;
    for (auto& [spi, sa] : impl_->sas) {
        if (sa->gateway != name || sa->state == SaState::Dead || sa->rekeyed_to) continue;
        any = true;
        if (sa->state == SaState::Established)
            impl_->queue_task(*sa, Task{TaskKind::DeleteIke});
        else if (sa->state != SaState::Deleting)
            impl_->destroy(*sa, "terminated by operator", false);
    }
    if (!any) return fail(EngineErrc::NotConnected, "gateway \"" + std::string(name) + "\" has no IKE SA");
    impl_->reap();
    return {};
}

Result<void, EngineError> Engine::rekey_ike(std::string_view name) {
    IkeSa* sa = impl_->find_by_gateway(name);
    if (!sa || sa->state != SaState::Established)
        return fail(EngineErrc::NotConnected, "gateway \"" + std::string(name) + "\" has no established IKE SA");
    impl_->queue_task(*sa, Task{TaskKind::IkeRekey});
    return {};
}

Result<void, EngineError> Engine::rekey_child(std::string_view name) {
    IkeSa* sa = impl_->find_by_gateway(name);
    if (!sa || sa->state != SaState::Established)
        return fail(EngineErrc::NotConnected, "gateway \"" + std::string(name) + "\" has no established IKE SA");
    bool any = false;
    for (auto& c : sa->children)
        if (!c.rekeying && !c.deleting) {
            impl_->queue_task(*sa, Task{TaskKind::ChildRekey, c.id});
            any = true;
        }
    if (!any) return fail(EngineErrc::NotConnected, "gateway \"" + std::string(name) + "\" has no child SA to rekey");
    return {};
}

void Engine::on_datagram(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> bytes) {
    impl_->on_datagram(local, remote, bytes);
}

void Engine::on_timer() { impl_->on_timer(); }
std::optional<TimePoint> Engine::next_deadline() const { return impl_->next_deadline(); }

void Engine::on_child_sa_expired(std::uint32_t spi_in, bool hard) {
    for (auto& [spi, sa] : impl_->sas) {
        if (sa->state != SaState::Established) continue;
        for (auto& c : sa->children) {
            if (c.spi_in != spi_in || c.deleting) continue;
            if (hard) {
                c.deleting = true;
                impl_->queue_task(*sa, Task{TaskKind::DeleteChild, c.id, {c.spi_in}});
            } else if (!c.rekeying) {
                impl_->queue_task(*sa, Task{TaskKind::ChildRekey, c.id});
            }
            return;
        }
    }
}

std::vector<IkeSaInfo> Engine::list_ike_sas() const {
    std::vector<IkeSaInfo> out;
    for (const auto& [spi, sa] : impl_->sas)
        if (sa->state != SaState::Dead) out.push_back(impl_->info(*sa));
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
}

std::optional<IkeSaInfo> Engine::ike_sa_info(std::uint64_t id) const {
    for (const auto& [spi, sa] : impl_->sas)
        if (sa->id == id && sa->state != SaState::Dead) return impl_->info(*sa);
    return std::nullopt;
}

std::vector<ChildSaInfo> Engine::list_child_sas() const {
    std::vector<ChildSaInfo> out;
    const TimePoint t = impl_->now();
    for (const auto& [spi, sa] : impl_->sas) {
        if (sa->state == SaState::Dead) continue;
        for (const auto& c : sa->children) {
            if (!c.installed) continue;  // a redundant SA from a rekey collision, being deleted
            ChildSaInfo i;
            i.gateway = sa->gateway;
            i.id = c.id;
            i.ike_sa_id = sa->id;
            i.spi_in = c.spi_in;
            i.spi_out = c.spi_out;
            i.local_ts = c.local_ts;
            i.remote_ts = c.remote_ts;
            i.algorithm = esp_algorithm_string(c.encr, c.pfs, c.addke);
            i.esn = c.esn;
            i.encap = impl_->use_encap(*sa);
            i.age = std::chrono::duration_cast<Seconds>(t - c.established);
            if (!c.rekeying && c.rekey_at > t) i.rekey_in = std::chrono::duration_cast<Seconds>(c.rekey_at - t);
            out.push_back(std::move(i));
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
}

EngineStats Engine::stats() const { return impl_->stats; }

}  // namespace qkd::ike
