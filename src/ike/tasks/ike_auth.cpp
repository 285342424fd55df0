// IKE_AUTH with a pre-shared key (RFC 7296 1.2, 2.15), creating the first child SA (1.2, 2.17):
//
//   HDR, SK {IDi, [IDr], AUTH, SAi2, TSi, TSr}  -->
//                          <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
//
// The responder picks its gateway here, by IDi and IDr (gateway_select.cpp), and answers
// AUTHENTICATION_FAILED when none fits or the AUTH does not prove that gateway's PSK.
#include "task.hpp"

namespace qkd::ike {

using wire::ExchangeType;
using wire::NotifyType;

namespace {
Payload ts_payload(PayloadType t, const std::vector<TrafficSelector>& ts) { return {t, false, wire::TsPayload{ts}}; }
bool within(const std::vector<TrafficSelector>& got, const std::vector<TrafficSelector>& allowed) {
    return !got.empty() && narrow(got, allowed) == got;
}

class IkeAuth final : public ExchangeTask {
public:
    explicit IkeAuth(Engine::Impl& e) : ExchangeTask(e, Task{TaskKind::IkeAuth}) {}
    ExchangeType exchange() const override { return ExchangeType::IkeAuth; }

    // HDR, SK {IDi, [IDr], AUTH, [N(INITIAL_CONTACT)], SAi2, TSi, TSr}  -->
    Step build_i(IkeSa& sa, std::vector<Payload>& p) override {
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        const wire::IdPayload idi{gw->local_id};
        // RFC 7296 2.15: InitiatorSignedOctets = RealMessage1 | NonceRData | prf(SK_pi, RestOfInitIDPayload)
        // [| IntAuth_i | IntAuth_r | IKE_AUTH_MID] (RFC 9242 3.3.3)
        mid_ = sa.next_request_id;
        const auto tail = int_auth_tail(sa, mid_);
        auto auth = keymat::psk_auth(*sa.prf, gw->psk, sa.init_request, sa.nonce_r, sa.sk_pi, idi.body(), tail);
        sa.auth_child_spi = e_.random_child_spi();
        p.push_back({PayloadType::IdI, false, idi});
        // RFC 7296 3.5: IDr tells the responder which of its identities we want. Engine::initiate
        // refuses gateways without one exact remote_id; a pattern would send none.
        if (const Identity* want = gw->remote_id.exact()) p.push_back({PayloadType::IdR, false, wire::IdPayload{*want}});
        p.push_back({PayloadType::Auth, false, wire::AuthPayload{wire::AuthMethod::SharedKeyMic, {auth.view().begin(), auth.view().end()}}});
        // RFC 7296 2.4: INITIAL_CONTACT when we hold no other IKE SA with this peer, so that it
        // drops state left over from before a restart of ours.
        bool other = false;
        for (const auto& [spi, o] : e_.sas) other |= o.get() != &sa && o->gateway == sa.gateway && o->state == SaState::Established;
        if (!other) p.push_back(wire::make_notify(NotifyType::InitialContact));
        p.push_back({PayloadType::Sa, false, esp_sa_payload(gw->esp_proposals, sa.auth_child_spi, false)});
        p.push_back(ts_payload(PayloadType::TsI, gw->local_ts));
        p.push_back(ts_payload(PayloadType::TsR, gw->remote_ts));
        return Step::done();
    }

    //                          <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
    Step process_i(IkeSa& sa, const Message& m) override {
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        const auto* idr = m.get<wire::IdPayload>(PayloadType::IdR);
        const auto* auth = m.get<wire::AuthPayload>(PayloadType::Auth);
        if (!idr || !auth) {
            const auto* err = m.first_error();
            return fail(sa, "peer answered IKE_AUTH with " + (err ? wire::to_string(err->type) : std::string("no AUTH")));
        }
        if (!gw->remote_id.match(idr->id)) return fail(sa, "peer identity " + idr->id.str() + ", expected " + gw->remote_id.str());
        auto expect = keymat::psk_auth(*sa.prf, gw->psk, sa.init_response, sa.nonce_i, sa.sk_pr, idr->body(), int_auth_tail(sa, mid_));
        if (auth->method != wire::AuthMethod::SharedKeyMic || !ct_equal(expect.view(), auth->data))
            return fail(sa, "AUTHENTICATION_FAILED: responder AUTH does not match the PSK");
        sa.local_id = gw->local_id;
        sa.peer_id = idr->id;
        transition(sa, SaState::Established);
        e_.established(sa);
        const auto* sar = m.get<wire::SaPayload>(PayloadType::Sa);
        const auto* tsi = m.get<wire::TsPayload>(PayloadType::TsI);
        const auto* tsr = m.get<wire::TsPayload>(PayloadType::TsR);
        if (!sar || !tsi || !tsr) {
            const auto* err = m.first_error();
            e_.sink.ike_sa_event(e_.info(sa), IkeSaEvent::Up,
                                 "IKE SA up without child SA: " + (err ? wire::to_string(err->type) : std::string("no SA offered")));
            return Step::done();
        }
        auto sel = accept_esp(gw->esp_proposals, *sar, false);
        if (!sel || !within(tsi->selectors, gw->local_ts) || !within(tsr->selectors, gw->remote_ts)) {
            // The responder chose something we did not offer: close the IKE SA (RFC 7296 2.21.3).
            e_.queue_task(sa, Task{TaskKind::DeleteIke});
            return Step::done();
        }
        ChildSa c;
        c.id = e_.next_child_id++;
        c.spi_in = sa.auth_child_spi;
        c.spi_out = sel->peer_spi;
        c.encr = sel->encr;
        c.esn = sel->esn;
        c.local_ts = tsi->selectors;
        c.remote_ts = tsr->selectors;
        auto keys = keymat::derive_child_keys(*sa.prf, sa.sk_d, nullptr, sa.nonce_i, sa.nonce_r, sel->encr.key_bits / 8);
        if (!keys) return Step::done();
        e_.schedule_child(sa, c);
        sa.children.push_back(c);
        ++e_.stats.child_up;
        e_.sink.child_sa_up(e_.child_keys(sa, c, std::move(keys).value(), true));
        return Step::done();
    }

    Step process_r(IkeSa& sa, const Message& m) override {
        if (sa.state != SaState::InitDone) return Step::failed(NotifyType::InvalidSyntax, "IKE_AUTH on an SA past IKE_SA_INIT");
        if (const auto pending = sa.kex.next(sa.ke_done)) {
            // RFC 9370 2.2.2: every negotiated additional key exchange precedes IKE_AUTH.
            refused_ = true;
            return Step::failed(NotifyType::InvalidSyntax, "IKE_AUTH before the IKE_INTERMEDIATE of ADDKE" + std::to_string(*pending));
        }
        mid_ = m.header.message_id;
        const auto* idi = m.get<wire::IdPayload>(PayloadType::IdI);
        const auto* idr_in = m.get<wire::IdPayload>(PayloadType::IdR);
        const auto* auth = m.get<wire::AuthPayload>(PayloadType::Auth);
        // The gateway is final only now: IDi (and IDr, if sent) pick it (gateway_select.cpp).
        const auto choice = e_.gateway_for_auth(sa, idi->id, idr_in ? &idr_in->id : nullptr);
        if (!choice.gw) return refuse(choice.why);
        const GatewayConfig* gw = choice.gw;
        bool ok = auth->method == wire::AuthMethod::SharedKeyMic;
        if (ok) {
            // The PSK is the chosen gateway's (one per gateway, also for a remote_id pattern).
            auto expect = keymat::psk_auth(*sa.prf, gw->psk, sa.init_request, sa.nonce_r, sa.sk_pi, idi->body(), int_auth_tail(sa, mid_));
            ok = ct_equal(expect.view(), auth->data);
        }
        if (!ok) return refuse("peer " + idi->id.str() + " did not prove the PSK of gateway " + gw->name);
        sa.gateway = gw->name;
        sa.local_id = gw->local_id;
        sa.peer_id = idi->id;
        initial_contact_ = m.notify(NotifyType::InitialContact) != nullptr;
        if (const auto* x = m.get<wire::SaPayload>(PayloadType::Sa)) sai_ = *x;
        if (const auto* x = m.get<wire::TsPayload>(PayloadType::TsI)) tsi_ = *x;
        if (const auto* x = m.get<wire::TsPayload>(PayloadType::TsR)) tsr_ = *x;
        return Step::done();
    }

    // <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
    Step build_r(IkeSa& sa, std::vector<Payload>& p) override {
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        const wire::IdPayload idr{gw->local_id};
        // ResponderSignedOctets = RealMessage2 | NonceIData | prf(SK_pr, RestOfRespIDPayload)
        auto my_auth = keymat::psk_auth(*sa.prf, gw->psk, sa.init_response, sa.nonce_i, sa.sk_pr, idr.body(), int_auth_tail(sa, mid_));
        p.push_back({PayloadType::IdR, false, idr});
        p.push_back({PayloadType::Auth, false, wire::AuthPayload{wire::AuthMethod::SharedKeyMic, {my_auth.view().begin(), my_auth.view().end()}}});
        if (!sai_ || !tsi_ || !tsr_) return Step::done();
        auto sel = select_esp(gw->esp_proposals, *sai_, false, 0);
        // RFC 7296 2.9: narrow the initiator's selectors to what we allow.
        auto ts_i = narrow(tsi_->selectors, gw->remote_ts);
        auto ts_r = narrow(tsr_->selectors, gw->local_ts);
        if (!sel) {
            p.push_back(wire::make_notify(NotifyType::NoProposalChosen));
        } else if (ts_i.empty() || ts_r.empty()) {
            p.push_back(wire::make_notify(NotifyType::TsUnacceptable));
        } else {
            child_.emplace();
            child_->id = e_.next_child_id++;
            child_->spi_in = e_.random_child_spi();
            child_->spi_out = sel->peer_spi;
            child_->encr = sel->encr;
            child_->esn = sel->esn;
            child_->local_ts = ts_r;
            child_->remote_ts = ts_i;
            // RFC 7296 2.17: KEYMAT = prf+(SK_d, Ni | Nr) with the IKE_SA_INIT nonces.
            auto k = keymat::derive_child_keys(*sa.prf, sa.sk_d, nullptr, sa.nonce_i, sa.nonce_r, sel->encr.key_bits / 8);
            if (k) keys_.emplace(std::move(k).value());
            p.push_back({PayloadType::Sa, false, selected_esp_payload(*sel, child_->spi_in, false)});
            p.push_back(ts_payload(PayloadType::TsI, ts_i));
            p.push_back(ts_payload(PayloadType::TsR, ts_r));
        }
        return Step::done();
    }

    void after_r(IkeSa& sa, const Step& st) override {
        if (st.status == Status::Failed) {
            // RFC 7296 2.21.2: AUTHENTICATION_FAILED in the IKE_AUTH response, then the SA is gone.
            if (refused_) e_.destroy(sa, wire::to_string(std::get<wire::NotifyPayload>(st.error->body).type) + ": " + st.why, true);
            return;
        }
        transition(sa, SaState::Established);
        if (initial_contact_) {
            // RFC 7296 2.4: the peer restarted; every older IKE SA with the same authenticated
            // identities is stale. Other peers of a gateway with a remote_id pattern are not.
            for (auto& [spi, o] : e_.sas)
                if (o.get() != &sa && o->state != SaState::Dead && o->peer_id && o->local_id &&
                    same_identity(*o->peer_id, *sa.peer_id) && same_identity(*o->local_id, *sa.local_id))
                    e_.destroy(*o, "peer sent INITIAL_CONTACT: stale IKE SA removed", false);
        }
        e_.established(sa);
        if (child_ && keys_) {
            e_.schedule_child(sa, *child_);
            sa.children.push_back(*child_);
            ++e_.stats.child_up;
            e_.sink.child_sa_up(e_.child_keys(sa, *child_, std::move(*keys_), false));
        }
    }

private:
    Step fail(IkeSa& sa, const std::string& why) {
        e_.destroy(sa, why, true);
        return Step::abort(why);
    }
    Step refuse(const std::string& why) {
        refused_ = true;
        return Step::failed(NotifyType::AuthenticationFailed, why);
    }
    // RFC 9242 3.3.3: IntAuth_i | IntAuth_r | IKE_AUTH_MID, only after IKE_INTERMEDIATE exchanges.
    static std::vector<std::uint8_t> int_auth_tail(const IkeSa& sa, std::uint32_t mid) {
        if (sa.int_exchanges == 0) return {};
        std::vector<std::uint8_t> t(sa.int_auth_i);
        t.insert(t.end(), sa.int_auth_r.begin(), sa.int_auth_r.end());
        for (int s = 24; s >= 0; s -= 8) t.push_back(static_cast<std::uint8_t>(mid >> s));
        return t;
    }
    std::uint32_t mid_ = 0;
    bool refused_ = false, initial_contact_ = false;
    // Copies: a task may answer after its request is gone (Status::Wait).
    std::optional<wire::SaPayload> sai_;
    std::optional<wire::TsPayload> tsi_, tsr_;
    std::optional<ChildSa> child_;
    std::optional<keymat::ChildKeys> keys_;
};

}  // namespace

std::unique_ptr<ExchangeTask> make_ike_auth(Engine::Impl& e) { return std::make_unique<IkeAuth>(e); }

}  // namespace qkd::ike
