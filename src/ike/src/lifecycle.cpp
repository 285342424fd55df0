// IKE/child SA lifecycle: establishment, timers, key hand-over to the data plane, teardown.
#include <algorithm>

#include "impl.hpp"
#include "qkd/common/uuid.hpp"

namespace qkd::ike {

namespace {
// Rekey jitter (RFC 7296 2.8.1 suggests randomising to avoid collisions): up to 1/8 of the margin.
Seconds jitter(Rng& rng, Seconds margin) {
    if (margin.count() < 8) return Seconds{0};
    std::uint8_t b[2];
    rng.fill(b);
    return Seconds{((b[0] << 8 | b[1]) % (margin.count() / 8 + 1))};
}
}  // namespace

bool Engine::Impl::use_encap(const IkeSa& sa) const { return sa.nat_local || sa.nat_remote || sa.force_encap; }

void Engine::Impl::established(IkeSa& sa, IkeSaEvent ev) {
    const GatewayConfig* gw = gateway(sa.gateway);
    sa.established = now();
    const Seconds life = gw ? gw->ike_lifetime : Seconds{14400};
    const Seconds margin = gw ? gw->ike_rekey_margin : Seconds{600};
    sa.expire_at = sa.established + life;
    sa.rekey_at = sa.established + life - margin - jitter(rng, margin);
    half_open_by_spi_i.erase(sa.spi_i);
    if (ev == IkeSaEvent::Up) ++stats.ike_up;
    sink.ike_sa_event(info(sa), ev, ev == IkeSaEvent::Up ? "established" : "rekeyed");
}

void Engine::Impl::schedule_child(const IkeSa& sa, ChildSa& c) {
    const GatewayConfig* gw = gateway(sa.gateway);
    const Seconds life = gw ? gw->child_lifetime : Seconds{3600};
    const Seconds margin = gw ? gw->child_rekey_margin : Seconds{300};
    c.established = now();
    c.expire_at = c.established + life;
    c.rekey_at = c.established + life - margin - jitter(rng, margin);
}

ChildSaKeys Engine::Impl::child_keys(const IkeSa& sa, const ChildSa& c, keymat::ChildKeys&& k, bool we_initiated) const {
    ChildSaKeys out;
    out.ref = ref(sa, c);
    out.encr = c.encr;
    auto& in = we_initiated ? k.r_to_i : k.i_to_r;
    auto& o = we_initiated ? k.i_to_r : k.r_to_i;
    out.key_in = std::move(in.key);
    out.salt_in = std::move(in.salt);
    out.key_out = std::move(o.key);
    out.salt_out = std::move(o.salt);
    out.esn = c.esn;
    out.replay_window = opts.replay_window;
    out.local_ts = c.local_ts;
    out.remote_ts = c.remote_ts;
    out.local_addr = sa.local.addr;
    out.remote_addr = sa.remote.addr;
    if (use_encap(sa)) out.encap = UdpEncap{sa.local.port, sa.remote.port};
    const GatewayConfig* gw = gateway(sa.gateway);
    if (gw) {
        // The kernel's soft expiry drives our rekey a little after our own timer would.
        out.hard_lifetime = gw->child_lifetime;
        out.soft_lifetime = gw->child_lifetime - gw->child_rekey_margin;
    }
    return out;
}

void Engine::Impl::remove_child(IkeSa& sa, std::uint64_t child_id, bool notify_sink) {
    auto it = std::find_if(sa.children.begin(), sa.children.end(), [&](const ChildSa& c) { return c.id == child_id; });
    if (it == sa.children.end()) return;
    if (notify_sink) sink.child_sa_down(ref(sa, *it));
    sa.children.erase(it);
}

void Engine::Impl::destroy(IkeSa& sa, std::string_view reason, bool failed) {
    if (sa.state == SaState::Dead) return;
    const bool was_up = sa.state == SaState::Established || sa.state == SaState::Deleting;
    for (const auto& c : sa.children) sink.child_sa_down(ref(sa, c));
    sa.children.clear();
    half_open_by_spi_i.erase(sa.spi_i);
    transition(sa, SaState::Dead);
    if (failed) ++stats.ike_failed;
    // An IKE SA replaced by a rekey ends silently: its successor reported IkeSaEvent::Rekeyed.
    if ((was_up && !sa.rekeyed_to) || failed)
        sink.ike_sa_event(info(sa), failed ? IkeSaEvent::Failed : IkeSaEvent::Down, reason);
}

void Engine::Impl::reap() {
    for (auto it = sas.begin(); it != sas.end();) {
        if (it->second->state == SaState::Dead) {
            if (auto h = half_open_by_spi_i.find(it->second->spi_i);
                h != half_open_by_spi_i.end() && h->second == it->first)
                half_open_by_spi_i.erase(h);
            it = sas.erase(it);
        } else {
            ++it;
        }
    }
}

IkeSaInfo Engine::Impl::info(const IkeSa& sa) const {
    IkeSaInfo i;
    i.gateway = sa.gateway;
    i.id = sa.id;
    switch (sa.state) {
        case SaState::New: case SaState::InitSent: case SaState::InitDone: case SaState::AuthSent: i.state = IkeSaState::Connecting; break;
        case SaState::Established:
            i.state = sa.rekeyed_to || (sa.active && sa.active->spec().kind == TaskKind::IkeRekey) ? IkeSaState::Rekeying
                                                                                                  : IkeSaState::Established;
            break;
        case SaState::Deleting: i.state = IkeSaState::Deleting; break;
        case SaState::Dead: i.state = IkeSaState::Closed; break;
    }
    i.initiator = sa.initiator;
    i.spi_i = sa.spi_i;
    i.spi_r = sa.spi_r;
    i.local = sa.local;
    i.remote = sa.remote;
    if (const GatewayConfig* gw = gateway(sa.gateway)) {
        i.local_id = gw->local_id.str();
        i.remote_id = gw->remote_id.str();
    }
    if (sa.local_id) i.local_id = sa.local_id->str();
    if (sa.peer_id) i.remote_id = sa.peer_id->str();
    if (sa.group != crypto::KeGroup::None) {
        // RFC 9370: every additional key exchange in order, "PSK/DH21+MLKEM768/AES256-GCM16".
        AdditionalKeChoice addke{};
        for (std::size_t n = 1; n < kKeSlots; ++n) addke[n - 1] = sa.kex.method(n);
        i.algorithm = algorithm_string(sa.encr, sa.group, addke);
        i.proposal = ike_proposal_string(sa.encr, sa.prf_alg, sa.group, addke);
        for (auto g : sa.kex.methods())
            if (g != crypto::KeGroup::None) i.key_exchanges.push_back(ke_method_label(g));
    }
    i.nat_local = sa.nat_local;
    i.nat_remote = sa.nat_remote;
    const TimePoint t = now();
    if (sa.qkd_key_time) {
        i.qkd_key_id = uuid_format(sa.qkd_key_id);
        i.qkd_key_age = std::chrono::duration_cast<Seconds>(t - *sa.qkd_key_time);
    }
    i.qkd_keys_used = sa.qkd_keys_used;
    const TimePoint since = sa.state == SaState::Established ? sa.established : sa.created;
    i.age = std::chrono::duration_cast<Seconds>(t - since);
    if (sa.state == SaState::Established && !sa.rekeyed_to && sa.rekey_at > t && sa.rekey_at != TimePoint::max())
        i.rekey_in = std::chrono::duration_cast<Seconds>(sa.rekey_at - t);
    i.child_sas = sa.children.size();
    return i;
}

}  // namespace qkd::ike
