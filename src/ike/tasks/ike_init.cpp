// IKE_SA_INIT (RFC 7296 1.2), with cookies (2.6), INVALID_KE_PAYLOAD retry (1.3 / 2.7),
// NAT detection (2.23) and the fragmentation offer (RFC 7383 2.3).
//
//   HDR, SAi1, KEi, Ni, N(NAT_DETECTION_*), [N(FRAGMENTATION_SUPPORTED)]  -->
//                 <--  HDR, SAr1, KEr, Nr, N(NAT_DETECTION_*), [N(FRAGMENTATION_SUPPORTED)]
#include "task.hpp"
#include "qkd/crypto/digest.hpp"

namespace qkd::ike {

using wire::ExchangeType;
using wire::NotifyType;

namespace {

std::array<std::uint8_t, 8> be64(std::uint64_t v) {
    std::array<std::uint8_t, 8> b{};
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
    return b;
}

// RFC 7296 2.23: SHA-1(SPIi | SPIr | IP | Port)
std::vector<std::uint8_t> nat_hash(std::uint64_t spi_i, std::uint64_t spi_r, const Endpoint& ep) {
    const auto si = be64(spi_i), sr = be64(spi_r);
    const std::uint8_t port[2] = {std::uint8_t(ep.port >> 8), std::uint8_t(ep.port)};
    auto h = crypto::sha1({si, sr, std::span(ep.addr.bytes.data(), ep.addr.size()), port});
    return {h.begin(), h.end()};
}

bool unspecified(const IpAddr& a) {
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a.bytes[i]) return false;
    return true;
}

void stateless_reply(Engine::Impl& e, const Endpoint& local, const Endpoint& remote, const wire::Header& req, Payload p) {
    wire::Header h;
    h.spi_i = req.spi_i;
    h.exchange = ExchangeType::IkeSaInit;
    h.flags = wire::kFlagResponse;
    e.send_raw(local, remote, wire::encode_plain(h, {std::move(p)}));
}

}  // namespace

std::vector<Payload> Engine::Impl::nat_detection(const IkeSa& sa, std::uint64_t spi_r) const {
    auto src = nat_hash(sa.spi_i, spi_r, sa.local);
    if (sa.force_encap) {
        // strongSwan's encap=yes: a source hash that cannot match makes the peer see a NAT.
        std::vector<std::uint8_t> fake(20);
        rng.fill(fake);
        src = fake;
    }
    return {wire::make_notify(NotifyType::NatDetectionSourceIp, src),
            wire::make_notify(NotifyType::NatDetectionDestinationIp, nat_hash(sa.spi_i, spi_r, sa.remote))};
}

void Engine::Impl::check_nat(IkeSa& sa, const std::vector<Payload>& payloads, std::uint64_t spi_r) {
    const auto src_expect = nat_hash(sa.spi_i, spi_r, sa.remote);
    const auto dst_expect = nat_hash(sa.spi_i, spi_r, sa.local);
    bool have_src = false, src_match = false, have_dst = false, dst_match = false;
    for (const auto& p : payloads) {
        auto* n = std::get_if<wire::NotifyPayload>(&p.body);
        if (!n) continue;
        if (n->type == NotifyType::NatDetectionSourceIp) {
            have_src = true;
            src_match |= n->data == src_expect;
        } else if (n->type == NotifyType::NatDetectionDestinationIp) {
            have_dst = true;
            dst_match |= n->data == dst_expect;
        }
    }
    sa.nat_remote = have_src && !src_match;
    sa.nat_local = have_dst && !dst_match;
}

Result<std::uint64_t, EngineError> Engine::Impl::initiate(const GatewayConfig& gw) {
    IkeSa& sa = new_sa(gw, true);
    sa.group = gw.ike_proposals.front().ke.front();
    start_task(sa, make_ike_init(*this));
    if (sa.state == SaState::Dead) {
        reap();
        return Err{EngineError{EngineErrc::Crypto, "could not create a key exchange for gateway \"" + gw.name + "\""}};
    }
    return sa.id;
}

namespace {

bool offers_addke(const GatewayConfig& gw) {
    for (const auto& p : gw.ike_proposals)
        for (const auto& slot : p.addke)
            if (!slot.empty()) return true;
    return false;
}

class IkeInit final : public ExchangeTask {
public:
    explicit IkeInit(Engine::Impl& e) : ExchangeTask(e, Task{TaskKind::IkeInit}) {}
    IkeInit(Engine::Impl& e, const IkeSelection& sel) : ExchangeTask(e, Task{TaskKind::IkeInit}), sel_(sel) {}
    ExchangeType exchange() const override { return ExchangeType::IkeSaInit; }

    // HDR, [N(COOKIE),] SAi1, KEi, Ni, N(NAT_DETECTION_*), [N(FRAGMENTATION_SUPPORTED)]  -->
    Step build_i(IkeSa& sa, std::vector<Payload>& p) override {
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        // RFC 7296 2.6: a retry after COOKIE keeps every other payload unchanged.
        if (sa.nonce_i.empty()) sa.nonce_i = e_.random_nonce();
        if (sa.kex.method(0) != sa.group) sa.kex.set_method(0, sa.group);
        auto kei = sa.kex.build_i(0);
        if (!kei) {
            e_.destroy(sa, kei.error().why, true);
            return Step::abort(kei.error().why);
        }
        if (!sa.cookie.empty()) p.push_back(wire::make_notify(NotifyType::Cookie, sa.cookie));
        p.push_back({PayloadType::Sa, false, ike_sa_payload(gw->ike_proposals, {})});
        p.push_back({PayloadType::Ke, false, wire::KePayload{static_cast<std::uint16_t>(sa.group), std::move(kei).value()}});
        p.push_back({PayloadType::Nonce, false, wire::NoncePayload{sa.nonce_i}});
        for (auto& n : e_.nat_detection(sa, 0)) p.push_back(std::move(n));
        if (gw->fragmentation) p.push_back(wire::make_notify(NotifyType::FragmentationSupported));
        // RFC 9242 3.1 / RFC 9370 2.2.1: additional key exchanges need IKE_INTERMEDIATE.
        if (offers_addke(*gw)) p.push_back(wire::make_notify(NotifyType::IntermediateExchangeSupported));
        sa.next_request_id = 0;
        sa.active.reset();
        transition(sa, SaState::InitSent);
        return Step::done();
    }

    //                 <--  HDR, SAr1, KEr, Nr, N(NAT_DETECTION_*), [N(FRAGMENTATION_SUPPORTED)]
    Step process_i(IkeSa& sa, const Message& msg) override {
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        const wire::Header& h = msg.header;
        if (const auto* c = msg.notify(NotifyType::Cookie)) {
            // RFC 7296 2.6: retry with the cookie as the first payload.
            if (sa.init_retries++ >= kMaxInitRetries || c->data.empty() || c->data.size() > 64)
                return fail(sa, "responder keeps asking for cookies");
            sa.cookie = c->data;
            return Step::more();
        }
        if (const auto* n = msg.notify(NotifyType::InvalidKePayload)) {
            // RFC 7296 1.3: restart with the group the responder selected, if we offered it.
            const auto g = n->data.size() == 2 ? static_cast<crypto::KeGroup>(n->data[0] << 8 | n->data[1]) : crypto::KeGroup::None;
            bool offered = false;
            for (const auto& p : gw->ike_proposals)
                for (auto k : p.ke) offered |= k == g;
            if (!offered || g == sa.group || sa.init_retries++ >= kMaxInitRetries)
                return fail(sa, "INVALID_KE_PAYLOAD asks for a group we did not offer");
            sa.group = g;
            return Step::more();
        }
        if (const auto* err = msg.first_error()) return fail(sa, "peer answered IKE_SA_INIT with " + wire::to_string(err->type));
        const auto* sar = msg.get<wire::SaPayload>(PayloadType::Sa);
        const auto* ker = msg.get<wire::KePayload>(PayloadType::Ke);
        const auto* nr = msg.get<wire::NoncePayload>(PayloadType::Nonce);
        auto sel = accept_ike(gw->ike_proposals, *sar);
        if (!sel || sel->group != sa.group || ker->group != static_cast<std::uint16_t>(sa.group) || h.spi_r == 0)
            return fail(sa, "IKE_SA_INIT response selects a proposal or group we did not offer");
        sa.intermediate = offers_addke(*gw) && msg.notify(NotifyType::IntermediateExchangeSupported);
        for (std::size_t n = 1; n < kKeSlots; ++n) sa.kex.set_method(n, sel->addke[n - 1]);
        if (sa.kex.next(0) && !sa.intermediate)
            return fail(sa, "IKE_SA_INIT response selects additional key exchanges without INTERMEDIATE_EXCHANGE_SUPPORTED");
        if (auto ok = sa.kex.check(0, ker->group, ker->data, false); !ok) return fail(sa, "responder KE: " + ok.error().why);
        if (auto ok = sa.kex.process_i(0, ker->data); !ok) return fail(sa, "responder KE: " + ok.error().why);
        sa.spi_r = h.spi_r;
        sa.encr = sel->encr;
        sa.prf_alg = sel->prf;
        sa.prf.emplace(sel->prf);
        sa.nonce_r = nr->data;
        sa.fragmentation = gw->fragmentation && msg.notify(NotifyType::FragmentationSupported);
        e_.check_nat(sa, msg.payloads, h.spi_r);
        if (auto why = derive_keys(sa); !why.empty()) return fail(sa, why);
        if (e_.use_encap(sa)) {
            // RFC 7296 2.23: behind a NAT, IKE_AUTH and everything after use port 4500.
            sa.local.port = 4500;
            sa.remote.port = 4500;
        }
        transition(sa, SaState::AuthSent);
        // RFC 9370 2.2.2: one IKE_INTERMEDIATE per negotiated additional key exchange, then IKE_AUTH.
        e_.start_task(sa, sa.kex.next(0) ? make_ike_intermediate(e_) : make_ike_auth(e_));
        return Step::done();
    }

    // Responder: the gate (process_init_request) has chosen the proposal and checked KEi.
    Step process_r(IkeSa& sa, const Message& msg) override {
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        const auto* kei = msg.get<wire::KePayload>(PayloadType::Ke);
        sa.encr = sel_.encr;
        sa.prf_alg = sel_.prf;
        sa.group = sel_.group;
        sa.prf.emplace(sel_.prf);
        sa.nonce_i = msg.get<wire::NoncePayload>(PayloadType::Nonce)->data;
        sa.kex.set_method(0, sel_.group);
        for (std::size_t n = 1; n < kKeSlots; ++n) sa.kex.set_method(n, sel_.addke[n - 1]);
        sa.intermediate = msg.notify(NotifyType::IntermediateExchangeSupported) != nullptr;
        auto ker = sa.kex.process_r(0, kei->data);
        if (!ker) return Step::failed(ker.error().notify, ker.error().why);
        ker_ = std::move(ker).value();
        sa.nonce_r = e_.random_nonce();
        sa.fragmentation = gw->fragmentation && msg.notify(NotifyType::FragmentationSupported);
        e_.check_nat(sa, msg.payloads, 0);
        if (auto why = derive_keys(sa); !why.empty()) return Step::failed(NotifyType::NoProposalChosen, why);
        return Step::done();
    }

    // <-- HDR, SAr1, KEr, Nr, N(NAT_DETECTION_*), [N(FRAGMENTATION_SUPPORTED)]
    Step build_r(IkeSa& sa, std::vector<Payload>& p) override {
        p.push_back({PayloadType::Sa, false, selected_ike_payload(sel_, {})});
        p.push_back({PayloadType::Ke, false, wire::KePayload{static_cast<std::uint16_t>(sa.group), ker_}});
        p.push_back({PayloadType::Nonce, false, wire::NoncePayload{sa.nonce_r}});
        for (auto& n : e_.nat_detection(sa, sa.spi_r)) p.push_back(std::move(n));
        if (sa.fragmentation) p.push_back(wire::make_notify(NotifyType::FragmentationSupported));
        if (sa.intermediate) p.push_back(wire::make_notify(NotifyType::IntermediateExchangeSupported));
        return Step::done();
    }

    void after_r(IkeSa& sa, const Step&) override {
        sa.expected_request = 1;
        transition(sa, SaState::InitDone);
    }

private:
    Step fail(IkeSa& sa, const std::string& why) {
        e_.destroy(sa, why, true);
        return Step::abort(why);
    }
    // RFC 7296 2.14: SKEYSEED = prf(Ni | Nr, g^ir); {SK_d | SK_ai | ... | SK_pr} = prf+(...)
    static std::string derive_keys(IkeSa& sa) {
        return install_ike_keys(sa, keymat::skeyseed_initial(*sa.prf, sa.nonce_i, sa.nonce_r, *sa.kex.secret(0)));
    }

    IkeSelection sel_;
    std::vector<std::uint8_t> ker_;
};

}  // namespace

std::unique_ptr<ExchangeTask> make_ike_init(Engine::Impl& e) { return std::make_unique<IkeInit>(e); }

void Engine::Impl::roll_init_window() {
    const TimePoint t = now();
    if (t - init_window < std::chrono::seconds{1}) return;
    init_work_prev = t - init_window < std::chrono::seconds{2} ? init_work : 0;
    init_work = 0;
    init_window = t;
}

bool Engine::Impl::init_rate_high() {
    roll_init_window();
    return opts.cookie_rate > 0 && std::max(init_work, init_work_prev) >= opts.cookie_rate;
}

// The stateless gate: everything an IKE_SA_INIT request must pass before it costs a key
// generation and an SA (RFC 7296 2.6 cookies, proposal choice, INVALID_KE_PAYLOAD).
void Engine::Impl::process_init_request(const Endpoint& local, const Endpoint& remote, const OuterMessage& m, Datagram raw) {
    const wire::Header& h = m.header;
    if (h.spi_r != 0 || h.message_id != 0) {
        drop(remote, DropReason::BadInitRequest, "SPIr or message ID not zero");
        return;
    }
    if (auto r = wire::check_rules(h, m.encrypted, m.plain); !r) {
        drop(remote, DropReason::BadInitRequest, r.error().message);
        return;
    }
    // RFC 7296 2.1: a retransmitted IKE_SA_INIT gets the same answer, not a new SA.
    if (auto it = half_open_by_spi_i.find(h.spi_i); it != half_open_by_spi_i.end()) {
        IkeSa* sa = find(it->second);
        if (sa && sa->remote.addr == remote.addr && std::equal(raw.begin(), raw.end(), sa->init_request.begin(), sa->init_request.end()))
            for (const auto& pkt : sa->last_response) send_raw(sa->local, sa->remote, pkt);
        else
            drop(remote, DropReason::InitMismatch);
        return;
    }
    const GatewayConfig* gw = gateway_for_peer(local, remote);
    if (!gw) {
        drop(remote, DropReason::NoGateway);
        return;
    }
    Message msg{h, m.plain};
    const auto* ni = msg.get<wire::NoncePayload>(PayloadType::Nonce);
    const auto* kei = msg.get<wire::KePayload>(PayloadType::Ke);
    const auto* sai = msg.get<wire::SaPayload>(PayloadType::Sa);

    // RFC 7296 2.6: under half-open load, or when IKE_SA_INIT requests arrive faster than we
    // want to spend key generations on them, ask for a stateless cookie first: a cookie proves
    // the initiator's address before any expensive step.
    if (half_open() >= opts.cookie_threshold || init_rate_high()) {
        const auto spi = be64(h.spi_i);
        auto hash = crypto::sha256({ni->data, std::span(remote.addr.bytes.data(), remote.addr.size()), spi, cookie_secret});
        std::vector<std::uint8_t> cookie{cookie_version};
        cookie.insert(cookie.end(), hash.begin(), hash.end());
        const auto* got = msg.notify(NotifyType::Cookie);
        const bool first = !m.plain.empty() && std::holds_alternative<wire::NotifyPayload>(m.plain.front().body) &&
                           std::get<wire::NotifyPayload>(m.plain.front().body).type == NotifyType::Cookie;
        if (!got || !first || !ct_equal(got->data, cookie)) {
            ++stats.cookies_sent;
            stateless_reply(*this, local, remote, h, wire::make_notify(NotifyType::Cookie, cookie));
            return;
        }
    }
    if (half_open() >= opts.max_half_open) {
        drop(remote, DropReason::HalfOpenLimit);
        return;
    }
    auto sel = select_ike(gw->ike_proposals, *sai, kei->group);
    if (!sel) {
        stateless_reply(*this, local, remote, h, wire::make_notify(NotifyType::NoProposalChosen));
        return;
    }
    if (kei->group != static_cast<std::uint16_t>(sel->group)) {
        // RFC 7296 1.3: tell the initiator which group we selected.
        ++stats.invalid_ke_sent;
        const auto g = static_cast<std::uint16_t>(sel->group);
        stateless_reply(*this, local, remote, h,
                        wire::make_notify(NotifyType::InvalidKePayload, {std::uint8_t(g >> 8), std::uint8_t(g)}));
        return;
    }
    bool addke = false;
    for (auto g : sel->addke) addke |= g != crypto::KeGroup::None;
    if (addke && !msg.notify(NotifyType::IntermediateExchangeSupported)) {
        // RFC 9370 2.2.1: additional key exchanges run in IKE_INTERMEDIATE, which the initiator
        // did not announce; its proposal is not one we can carry out.
        stateless_reply(*this, local, remote, h, wire::make_notify(NotifyType::NoProposalChosen));
        return;
    }
    // Cheap checks of KEi (method, length) before the key generation they would otherwise cost.
    KeyExchanges kex;
    kex.set_method(0, sel->group);
    if (auto ok = kex.check(0, kei->group, kei->data, true); !ok) {
        stateless_reply(*this, local, remote, h, wire::make_notify(ok.error().notify));
        return;
    }
    roll_init_window();
    ++init_work;
    IkeSa& sa = new_sa(*gw, false);
    sa.spi_i = h.spi_i;
    sa.local = local;
    if (unspecified(sa.local.addr)) sa.local.addr = gw->local.addr;
    sa.remote = remote;
    sa.init_request.assign(raw.begin(), raw.end());
    auto task = std::make_unique<IkeInit>(*this, *sel);
    const Step st = task->process_r(sa, msg);
    if (st.status == Status::Failed) {
        // Still stateless to the peer: no SA is kept for a request we cannot answer.
        sas.erase(sa.spi_r);
        stateless_reply(*this, local, remote, h, *st.error);
        return;
    }
    half_open_by_spi_i[sa.spi_i] = sa.spi_r;
    respond(sa, ExchangeType::IkeSaInit, 0, std::move(task), st);
}

void Engine::Impl::process_init_response(IkeSa& sa, const OuterMessage& m, Datagram raw) {
    const wire::Header& h = m.header;
    if (sa.state != SaState::InitSent || !sa.active || sa.active->waiting || h.message_id != 0) {
        drop(sa.remote, DropReason::UnexpectedResponse, "IKE_SA_INIT response");
        return;
    }
    if (auto r = wire::check_rules(h, m.encrypted, m.plain); !r) {
        drop(sa.remote, DropReason::Malformed, "IKE_SA_INIT response: " + r.error().message);
        return;
    }
    sa.init_response.assign(raw.begin(), raw.end());  // RealMessage2 (2.15)
    Outstanding done = std::move(*sa.active);
    sa.active.reset();
    const Step st = done.task->process_i(sa, Message{h, m.plain});
    after_response(sa, std::move(done.task), st);
}

}  // namespace qkd::ike
