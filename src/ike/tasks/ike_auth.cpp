// IKE_AUTH with a pre-shared key (RFC 7296 1.2, 2.15), creating the first child SA (1.2, 2.17):
//
//   HDR, SK {IDi, [IDr], AUTH, SAi2, TSi, TSr}  -->
//                          <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
//
// The responder picks its gateway here, by IDi and IDr (gateway_select.cpp), and answers
// AUTHENTICATION_FAILED when none fits or the AUTH does not prove that gateway's PSK.
#include "../src/impl.hpp"

namespace qkd::ike {

using wire::ExchangeType;
using wire::NotifyType;

namespace {
Payload ts_payload(PayloadType t, const std::vector<TrafficSelector>& ts) { return {t, false, wire::TsPayload{ts}}; }
bool within(const std::vector<TrafficSelector>& got, const std::vector<TrafficSelector>& allowed) {
    return !got.empty() && narrow(got, allowed) == got;
}
}  // namespace

void Engine::Impl::build_auth_request(IkeSa& sa) {
    const GatewayConfig* gw = gateway(sa.gateway);
    const wire::IdPayload idi{gw->local_id};
    // RFC 7296 2.15: InitiatorSignedOctets = RealMessage1 | NonceRData | prf(SK_pi, RestOfInitIDPayload)
    auto auth = keymat::psk_auth(*sa.prf, gw->psk, sa.init_request, sa.nonce_r, sa.sk_pi, idi.body());
    sa.auth_child_spi = random_child_spi();
    std::vector<Payload> p;
    p.push_back({PayloadType::IdI, false, idi});
    // RFC 7296 3.5: IDr tells the responder which of its identities we want. Engine::initiate
    // refuses gateways without one exact remote_id; a pattern would send none.
    if (const Identity* want = gw->remote_id.exact()) p.push_back({PayloadType::IdR, false, wire::IdPayload{*want}});
    p.push_back({PayloadType::Auth, false, wire::AuthPayload{wire::AuthMethod::SharedKeyMic, {auth.view().begin(), auth.view().end()}}});
    // RFC 7296 2.4: INITIAL_CONTACT when we hold no other IKE SA with this peer, so that it
    // drops state left over from before a restart of ours.
    bool other = false;
    for (const auto& [spi, o] : sas) other |= o.get() != &sa && o->gateway == sa.gateway && o->state == SaState::Established;
    if (!other) p.push_back(wire::make_notify(NotifyType::InitialContact));
    p.push_back({PayloadType::Sa, false, esp_sa_payload(gw->esp_proposals, sa.auth_child_spi, false)});
    p.push_back(ts_payload(PayloadType::TsI, gw->local_ts));
    p.push_back(ts_payload(PayloadType::TsR, gw->remote_ts));
    send_request(sa, Task{TaskKind::IkeAuth}, ExchangeType::IkeAuth, p);
}

void Engine::Impl::process_auth_request(IkeSa& sa, const Message& m) {
    const std::uint32_t mid = m.header.message_id;
    if (sa.state != SaState::InitDone) {
        send_response(sa, ExchangeType::IkeAuth, mid, {wire::make_notify(NotifyType::InvalidSyntax)});
        return;
    }
    const auto* idi = m.get<wire::IdPayload>(PayloadType::IdI);
    const auto* idr_in = m.get<wire::IdPayload>(PayloadType::IdR);
    const auto* auth = m.get<wire::AuthPayload>(PayloadType::Auth);
    // RFC 7296 2.21.2: AUTHENTICATION_FAILED in the IKE_AUTH response, then the SA is gone.
    auto refuse = [&](const std::string& why) {
        send_response(sa, ExchangeType::IkeAuth, mid, {wire::make_notify(NotifyType::AuthenticationFailed)});
        destroy(sa, "AUTHENTICATION_FAILED: " + why, true);
    };
    // The gateway is final only now: IDi (and IDr, if sent) pick it (gateway_select.cpp).
    const auto choice = gateway_for_auth(sa, idi->id, idr_in ? &idr_in->id : nullptr);
    if (!choice.gw) {
        refuse(choice.why);
        return;
    }
    const GatewayConfig* gw = choice.gw;
    bool ok = auth->method == wire::AuthMethod::SharedKeyMic;
    if (ok) {
        // The PSK is the chosen gateway's (one per gateway, also for a remote_id pattern).
        auto expect = keymat::psk_auth(*sa.prf, gw->psk, sa.init_request, sa.nonce_r, sa.sk_pi, idi->body());
        ok = ct_equal(expect.view(), auth->data);
    }
    if (!ok) {
        refuse("peer " + idi->id.str() + " did not prove the PSK of gateway " + gw->name);
        return;
    }
    sa.gateway = gw->name;
    sa.local_id = gw->local_id;
    sa.peer_id = idi->id;
    const wire::IdPayload idr{gw->local_id};
    // ResponderSignedOctets = RealMessage2 | NonceIData | prf(SK_pr, RestOfRespIDPayload)
    auto my_auth = keymat::psk_auth(*sa.prf, gw->psk, sa.init_response, sa.nonce_i, sa.sk_pr, idr.body());
    std::vector<Payload> p;
    p.push_back({PayloadType::IdR, false, idr});
    p.push_back({PayloadType::Auth, false, wire::AuthPayload{wire::AuthMethod::SharedKeyMic, {my_auth.view().begin(), my_auth.view().end()}}});

    std::optional<ChildSa> child;
    std::optional<keymat::ChildKeys> keys;
    const auto* sai = m.get<wire::SaPayload>(PayloadType::Sa);
    const auto* tsi = m.get<wire::TsPayload>(PayloadType::TsI);
    const auto* tsr = m.get<wire::TsPayload>(PayloadType::TsR);
    if (sai && tsi && tsr) {
        auto sel = select_esp(gw->esp_proposals, *sai, false, 0);
        // RFC 7296 2.9: narrow the initiator's selectors to what we allow.
        auto ts_i = narrow(tsi->selectors, gw->remote_ts);
        auto ts_r = narrow(tsr->selectors, gw->local_ts);
        if (!sel) {
            p.push_back(wire::make_notify(NotifyType::NoProposalChosen));
        } else if (ts_i.empty() || ts_r.empty()) {
            p.push_back(wire::make_notify(NotifyType::TsUnacceptable));
        } else {
            child.emplace();
            child->id = next_child_id++;
            child->spi_in = random_child_spi();
            child->spi_out = sel->peer_spi;
            child->encr = sel->encr;
            child->esn = sel->esn;
            child->local_ts = ts_r;
            child->remote_ts = ts_i;
            // RFC 7296 2.17: KEYMAT = prf+(SK_d, Ni | Nr) with the IKE_SA_INIT nonces.
            auto k = keymat::derive_child_keys(*sa.prf, sa.sk_d, nullptr, sa.nonce_i, sa.nonce_r, sel->encr.key_bits / 8);
            if (k) keys.emplace(std::move(k).value());
            p.push_back({PayloadType::Sa, false, selected_esp_payload(*sel, child->spi_in, false)});
            p.push_back(ts_payload(PayloadType::TsI, ts_i));
            p.push_back(ts_payload(PayloadType::TsR, ts_r));
        }
    }
    send_response(sa, ExchangeType::IkeAuth, mid, p);
    transition(sa, SaState::Established);
    if (m.notify(NotifyType::InitialContact)) {
        // RFC 7296 2.4: the peer restarted; every older IKE SA with the same authenticated
        // identities is stale. Other peers of a gateway with a remote_id pattern are not.
        for (auto& [spi, o] : sas)
            if (o.get() != &sa && o->state != SaState::Dead && o->peer_id && o->local_id &&
                same_identity(*o->peer_id, *sa.peer_id) && same_identity(*o->local_id, *sa.local_id))
                destroy(*o, "peer sent INITIAL_CONTACT: stale IKE SA removed", false);
    }
    established(sa);
    if (child && keys) {
        schedule_child(sa, *child);
        sa.children.push_back(*child);
        ++stats.child_up;
        sink.child_sa_up(child_keys(sa, *child, std::move(*keys), false));
    }
}

void Engine::Impl::process_auth_response(IkeSa& sa, const Message& m) {
    const GatewayConfig* gw = gateway(sa.gateway);
    const auto* idr = m.get<wire::IdPayload>(PayloadType::IdR);
    const auto* auth = m.get<wire::AuthPayload>(PayloadType::Auth);
    if (!idr || !auth) {
        const auto* e = m.first_error();
        destroy(sa, "peer answered IKE_AUTH with " + (e ? wire::to_string(e->type) : std::string("no AUTH")), true);
        return;
    }
    if (!gw->remote_id.match(idr->id)) {
        destroy(sa, "peer identity " + idr->id.str() + ", expected " + gw->remote_id.str(), true);
        return;
    }
    auto expect = keymat::psk_auth(*sa.prf, gw->psk, sa.init_response, sa.nonce_i, sa.sk_pr, idr->body());
    if (auth->method != wire::AuthMethod::SharedKeyMic || !ct_equal(expect.view(), auth->data)) {
        destroy(sa, "AUTHENTICATION_FAILED: responder AUTH does not match the PSK", true);
        return;
    }
    sa.local_id = gw->local_id;
    sa.peer_id = idr->id;
    transition(sa, SaState::Established);
    established(sa);
    const auto* sar = m.get<wire::SaPayload>(PayloadType::Sa);
    const auto* tsi = m.get<wire::TsPayload>(PayloadType::TsI);
    const auto* tsr = m.get<wire::TsPayload>(PayloadType::TsR);
    if (!sar || !tsi || !tsr) {
        const auto* e = m.first_error();
        sink.ike_sa_event(info(sa), IkeSaEvent::Up,
                          "IKE SA up without child SA: " + (e ? wire::to_string(e->type) : std::string("no SA offered")));
        return;
    }
    auto sel = accept_esp(gw->esp_proposals, *sar, false);
    if (!sel || !within(tsi->selectors, gw->local_ts) || !within(tsr->selectors, gw->remote_ts)) {
        // The responder chose something we did not offer: close the IKE SA (RFC 7296 2.21.3).
        queue_task(sa, Task{TaskKind::DeleteIke});
        return;
    }
    ChildSa c;
    c.id = next_child_id++;
    c.spi_in = sa.auth_child_spi;
    c.spi_out = sel->peer_spi;
    c.encr = sel->encr;
    c.esn = sel->esn;
    c.local_ts = tsi->selectors;
    c.remote_ts = tsr->selectors;
    auto keys = keymat::derive_child_keys(*sa.prf, sa.sk_d, nullptr, sa.nonce_i, sa.nonce_r, sel->encr.key_bits / 8);
    if (!keys) return;
    schedule_child(sa, c);
    sa.children.push_back(c);
    ++stats.child_up;
    sink.child_sa_up(child_keys(sa, c, std::move(keys).value(), true));
}

}  // namespace qkd::ike
