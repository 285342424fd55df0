// CREATE_CHILD_SA (RFC 7296 1.3): child SA rekey with optional PFS (1.3.3), IKE SA rekey (1.3.2,
// 2.18), and simultaneous child rekeys (2.8.1).
//
//   Child rekey:  HDR, SK {N(REKEY_SA), SA, Ni, [KEi], TSi, TSr}  -->
//                                   <--  HDR, SK {SA, Nr, [KEr], TSi, TSr}
//   IKE rekey:    HDR, SK {SA, Ni, KEi}  -->
//                                   <--  HDR, SK {SA, Nr, KEr}
#include <algorithm>
#include <array>

#include "../src/impl.hpp"

namespace qkd::ike {

using wire::ExchangeType;
using wire::NotifyType;

namespace {

std::vector<std::uint8_t> spi_bytes(std::uint64_t v, std::size_t n) {
    std::vector<std::uint8_t> b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * (n - 1 - i)));
    return b;
}
std::uint64_t spi_value(const std::vector<std::uint8_t>& b) {
    std::uint64_t v = 0;
    for (auto x : b) v = v << 8 | x;
    return v;
}
Payload ke_payload(const crypto::KeyExchange& ke) {
    return {PayloadType::Ke, false,
            wire::KePayload{static_cast<std::uint16_t>(ke.group()), {ke.public_value().begin(), ke.public_value().end()}}};
}
Payload invalid_ke(crypto::KeGroup g) {
    const auto v = static_cast<std::uint16_t>(g);
    return wire::make_notify(NotifyType::InvalidKePayload, {std::uint8_t(v >> 8), std::uint8_t(v)});
}
ChildSa* find_child(IkeSa& sa, std::uint64_t id) {
    for (auto& c : sa.children)
        if (c.id == id) return &c;
    return nullptr;
}
// RFC 7296 2.8.1: "the lowest of the four nonces"
bool lower(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}

}  // namespace

void Engine::Impl::begin_create_child(IkeSa& sa, Task& task) {
    const GatewayConfig* gw = gateway(sa.gateway);
    task.nonce = random_nonce();
    std::vector<Payload> p;
    if (task.kind == TaskKind::ChildRekey) {
        ChildSa* c = find_child(sa, task.child_id);
        if (!c || c->deleting || c->rekeying) return;
        c->rekeying = true;
        task.new_spi_in = random_child_spi();
        crypto::KeGroup g = task.ke_group;
        if (g == crypto::KeGroup::None && !gw->esp_proposals.front().ke.empty()) g = gw->esp_proposals.front().ke.front();
        p.push_back(wire::make_notify(NotifyType::RekeySa, {}, wire::ProtocolId::Esp, spi_bytes(c->spi_in, 4)));
        p.push_back({PayloadType::Sa, false, esp_sa_payload(gw->esp_proposals, task.new_spi_in, true)});
        p.push_back({PayloadType::Nonce, false, wire::NoncePayload{task.nonce}});
        if (g != crypto::KeGroup::None) {
            auto ke = crypto::KeyExchange::generate(g);
            if (!ke) return;
            task.ke.emplace(std::move(ke).value());
            p.push_back(ke_payload(*task.ke));
        }
        p.push_back({PayloadType::TsI, false, wire::TsPayload{c->local_ts}});
        p.push_back({PayloadType::TsR, false, wire::TsPayload{c->remote_ts}});
    } else {
        if (sa.rekeyed_to) return;
        task.new_ike_spi = random_spi();
        auto ke = crypto::KeyExchange::generate(task.ke_group != crypto::KeGroup::None ? task.ke_group : sa.group);
        if (!ke) return;
        task.ke.emplace(std::move(ke).value());
        p.push_back({PayloadType::Sa, false, ike_sa_payload(gw->ike_proposals, spi_bytes(task.new_ike_spi, 8))});
        p.push_back({PayloadType::Nonce, false, wire::NoncePayload{task.nonce}});
        p.push_back(ke_payload(*task.ke));
    }
    send_request(sa, std::move(task), ExchangeType::CreateChildSa, p);
}

void Engine::Impl::process_create_child_request(IkeSa& sa, const Message& m) {
    const std::uint32_t mid = m.header.message_id;
    auto reply = [&](std::vector<Payload> p) { send_response(sa, ExchangeType::CreateChildSa, mid, p); };
    if (sa.state != SaState::Established || sa.rekeyed_to) {
        reply({wire::make_notify(NotifyType::TemporaryFailure)});
        return;
    }
    const GatewayConfig* gw = gateway(sa.gateway);
    const auto* sai = m.get<wire::SaPayload>(PayloadType::Sa);
    const auto* ni = m.get<wire::NoncePayload>(PayloadType::Nonce);
    const auto* kei = m.get<wire::KePayload>(PayloadType::Ke);
    const bool ike = !sai->proposals.empty() && sai->proposals.front().protocol == wire::ProtocolId::Ike;
    std::vector<std::uint8_t> nr = random_nonce();

    if (ike) {
        // RFC 7296 2.8.2: if our own rekey of this IKE SA is in flight, answer normally and decide
        // which new SA survives when our response arrives (lowest of the four nonces loses).
        const bool collision = sa.active && sa.active->task.kind == TaskKind::IkeRekey && !sa.collision_spi;
        auto sel = select_ike(gw->ike_proposals, *sai, kei ? kei->group : 0);
        if (!sel || sai->proposals[sel->number - 1].spi.size() != 8) {
            reply({wire::make_notify(NotifyType::NoProposalChosen)});
            return;
        }
        if (!kei || kei->group != static_cast<std::uint16_t>(sel->group)) {
            reply({invalid_ke(sel->group)});
            return;
        }
        auto ke = crypto::KeyExchange::generate(sel->group);
        if (!ke) {
            reply({wire::make_notify(NotifyType::NoProposalChosen)});
            return;
        }
        auto g_ir = ke->derive(kei->data);
        if (!g_ir) {
            reply({wire::make_notify(NotifyType::InvalidSyntax)});
            return;
        }
        // The rekey initiator becomes the original initiator of the new IKE SA.
        auto n = std::make_unique<IkeSa>();
        n->id = next_sa_id++;
        n->gateway = sa.gateway;
        n->initiator = false;
        n->spi_i = spi_value(sai->proposals[sel->number - 1].spi);
        n->spi_r = random_spi();
        n->state = SaState::Established;
        n->local = sa.local;
        n->remote = sa.remote;
        n->nat_local = sa.nat_local;
        n->nat_remote = sa.nat_remote;
        n->fragmentation = sa.fragmentation;
        n->force_encap = sa.force_encap;
        n->local_id = sa.local_id;
        n->peer_id = sa.peer_id;
        n->encr = sel->encr;
        n->prf_alg = sel->prf;
        n->group = sel->group;
        n->prf.emplace(sel->prf);
        n->nonce_i = ni->data;
        n->nonce_r = nr;
        n->created = n->last_rx = now();
        // RFC 7296 2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old SA's PRF.
        auto skeyseed = keymat::skeyseed_rekey(*sa.prf, sa.sk_d, *g_ir, n->nonce_i, n->nonce_r);
        auto keys = keymat::derive_ike_keys(*n->prf, skeyseed, n->nonce_i, n->nonce_r, n->spi_i, n->spi_r, n->encr.key_bits / 8 + 4);
        if (!keys) {
            reply({wire::make_notify(NotifyType::NoProposalChosen)});
            return;
        }
        n->crypter = wire::SkCrypter::create(keys->sk_er.view(), keys->sk_ei.view());
        n->sk_d = std::move(keys->sk_d);
        n->sk_pi = std::move(keys->sk_pi);
        n->sk_pr = std::move(keys->sk_pr);
        reply({{PayloadType::Sa, false, selected_ike_payload(*sel, spi_bytes(n->spi_r, 8))},
               {PayloadType::Nonce, false, wire::NoncePayload{nr}},
               ke_payload(*ke)});
        if (collision) {
            sa.collision_spi = n->spi_r;
            IkeSa& ref_n = *n;
            sas.emplace(n->spi_r, std::move(n));
            established(ref_n, IkeSaEvent::Rekeyed);
            return;
        }
        // RFC 7296 2.18: child SAs move to the new IKE SA; the initiator deletes the old one.
        n->children = std::move(sa.children);
        sa.children.clear();
        sa.rekeyed_to = n->id;
        sa.queue.clear();
        IkeSa& ref_n = *n;
        sas.emplace(n->spi_r, std::move(n));
        established(ref_n, IkeSaEvent::Rekeyed);
        ++stats.ike_rekeyed;
        return;
    }

    // Child SA rekey: N(REKEY_SA) names the SA by the peer's inbound SPI (our outbound).
    const auto* rekey = m.notify(NotifyType::RekeySa);
    if (!rekey) {
        reply({wire::make_notify(NotifyType::NoAdditionalSas)});
        return;
    }
    ChildSa* old = nullptr;
    for (auto& c : sa.children)
        if (rekey->spi.size() == 4 && c.spi_out == spi_value(rekey->spi) && c.installed) old = &c;
    if (!old) {
        reply({wire::make_notify(NotifyType::ChildSaNotFound, {}, wire::ProtocolId::Esp, rekey->spi)});
        return;
    }
    if (old->deleting) {
        reply({wire::make_notify(NotifyType::TemporaryFailure)});
        return;
    }
    auto sel = select_esp(gw->esp_proposals, *sai, true, kei ? kei->group : 0);
    if (!sel) {
        reply({wire::make_notify(NotifyType::NoProposalChosen)});
        return;
    }
    std::optional<crypto::KeyExchange> ke;
    std::optional<SecretBytes> g_ir;
    if (sel->group != crypto::KeGroup::None) {
        if (!kei || kei->group != static_cast<std::uint16_t>(sel->group)) {
            reply({invalid_ke(sel->group)});
            return;
        }
        auto k = crypto::KeyExchange::generate(sel->group);
        if (!k) {
            reply({wire::make_notify(NotifyType::NoProposalChosen)});
            return;
        }
        auto s = k->derive(kei->data);
        if (!s) {
            reply({wire::make_notify(NotifyType::InvalidSyntax)});
            return;
        }
        ke.emplace(std::move(k).value());
        g_ir.emplace(std::move(s).value());
    }
    ChildSa c;
    c.id = next_child_id++;
    c.spi_in = random_child_spi();
    c.spi_out = sel->peer_spi;
    c.encr = sel->encr;
    c.pfs = sel->group;
    c.esn = sel->esn;
    c.local_ts = old->local_ts;
    c.remote_ts = old->remote_ts;
    c.replaces = old->id;
    c.peer_initiated = true;
    c.created_ni = ni->data;
    c.created_nr = nr;
    // RFC 7296 2.17: KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr)
    auto keys = keymat::derive_child_keys(*sa.prf, sa.sk_d, g_ir ? &*g_ir : nullptr, ni->data, nr, c.encr.key_bits / 8);
    if (!keys) {
        reply({wire::make_notify(NotifyType::NoProposalChosen)});
        return;
    }
    std::vector<Payload> p{{PayloadType::Sa, false, selected_esp_payload(*sel, c.spi_in, true)},
                           {PayloadType::Nonce, false, wire::NoncePayload{nr}}};
    if (ke) p.push_back(ke_payload(*ke));
    p.push_back({PayloadType::TsI, false, wire::TsPayload{c.remote_ts}});
    p.push_back({PayloadType::TsR, false, wire::TsPayload{c.local_ts}});
    reply(p);
    old->rekeying = true;
    const ChildSaRef old_ref = ref(sa, *old);
    schedule_child(sa, c);
    sa.children.push_back(c);
    ++stats.child_rekeyed;
    // The old SA stays until the initiator deletes it (RFC 7296 2.8).
    sink.child_sa_rekeyed(old_ref, child_keys(sa, c, std::move(keys).value(), false));
}

void Engine::Impl::process_create_child_response(IkeSa& sa, Task& task, const Message& m) {
    const GatewayConfig* gw = gateway(sa.gateway);
    const auto* e = m.first_error();
    ChildSa* old = task.kind == TaskKind::ChildRekey ? find_child(sa, task.child_id) : nullptr;
    if (e && task.kind == TaskKind::IkeRekey && sa.collision_spi) {
        // Our rekey failed but the peer's succeeded: its new SA takes over (it deletes the old one).
        if (IkeSa* theirs = find(*sa.collision_spi)) adopt_rekeyed(sa, *theirs);
        sa.collision_spi.reset();
        return;
    }
    if (e) {
        if (old) old->rekeying = false;
        if (e->type == NotifyType::InvalidKePayload && e->data.size() == 2 && task.attempts < kMaxInitRetries) {
            // RFC 7296 1.3: retry with the group the responder wants, if we offered it.
            const auto g = static_cast<crypto::KeGroup>(e->data[0] << 8 | e->data[1]);
            bool offered = false;
            if (task.kind == TaskKind::ChildRekey)
                for (const auto& p : gw->esp_proposals) offered |= std::find(p.ke.begin(), p.ke.end(), g) != p.ke.end();
            else
                for (const auto& p : gw->ike_proposals) offered |= std::find(p.ke.begin(), p.ke.end(), g) != p.ke.end();
            if (offered) {
                Task retry{task.kind, task.child_id};
                retry.ke_group = g;
                retry.attempts = task.attempts + 1;
                sa.queue.push_front(std::move(retry));
                return;
            }
        }
        // TEMPORARY_FAILURE (2.25) and the rest: try again after a short, random delay.
        std::uint8_t r;
        rng.fill(std::span(&r, 1));
        const auto later = now() + Seconds{2 + r % 8};
        if (old && e->type != NotifyType::ChildSaNotFound) old->rekey_at = later;
        if (task.kind == TaskKind::IkeRekey) sa.rekey_at = later;
        return;
    }
    const auto* sar = m.get<wire::SaPayload>(PayloadType::Sa);
    const auto* nr = m.get<wire::NoncePayload>(PayloadType::Nonce);
    const auto* ker = m.get<wire::KePayload>(PayloadType::Ke);

    if (task.kind == TaskKind::IkeRekey) {
        auto sel = accept_ike(gw->ike_proposals, *sar);
        if (!sel || sar->proposals[0].spi.size() != 8 || !ker || ker->group != static_cast<std::uint16_t>(task.ke->group())) {
            sa.rekey_at = now() + Seconds{10};
            return;
        }
        auto g_ir = task.ke->derive(ker->data);
        if (!g_ir) return;
        auto n = std::make_unique<IkeSa>();
        n->id = next_sa_id++;
        n->gateway = sa.gateway;
        n->initiator = true;
        n->spi_i = task.new_ike_spi;
        n->spi_r = spi_value(sar->proposals[0].spi);
        n->state = SaState::Established;
        n->local = sa.local;
        n->remote = sa.remote;
        n->nat_local = sa.nat_local;
        n->nat_remote = sa.nat_remote;
        n->fragmentation = sa.fragmentation;
        n->force_encap = sa.force_encap;
        n->local_id = sa.local_id;
        n->peer_id = sa.peer_id;
        n->encr = sel->encr;
        n->prf_alg = sel->prf;
        n->group = sel->group;
        n->prf.emplace(sel->prf);
        n->nonce_i = task.nonce;
        n->nonce_r = nr->data;
        n->created = n->last_rx = now();
        auto skeyseed = keymat::skeyseed_rekey(*sa.prf, sa.sk_d, *g_ir, n->nonce_i, n->nonce_r);
        auto keys = keymat::derive_ike_keys(*n->prf, skeyseed, n->nonce_i, n->nonce_r, n->spi_i, n->spi_r, n->encr.key_bits / 8 + 4);
        if (!keys) return;
        n->crypter = wire::SkCrypter::create(keys->sk_ei.view(), keys->sk_er.view());
        n->sk_d = std::move(keys->sk_d);
        n->sk_pi = std::move(keys->sk_pi);
        n->sk_pr = std::move(keys->sk_pr);
        IkeSa& ref_n = *n;
        sas.emplace(n->spi_i, std::move(n));
        established(ref_n, IkeSaEvent::Rekeyed);
        IkeSa* theirs = sa.collision_spi ? find(*sa.collision_spi) : nullptr;
        sa.collision_spi.reset();
        if (theirs) {
            // RFC 7296 2.8.2: the new IKE SA created with the lowest of the four nonces is deleted
            // by its initiator; the initiator of the surviving one deletes the old IKE SA.
            const std::array<const std::vector<std::uint8_t>*, 4> nonces{&ref_n.nonce_i, &ref_n.nonce_r, &theirs->nonce_i,
                                                                         &theirs->nonce_r};
            std::size_t low = 0;
            for (std::size_t i = 1; i < nonces.size(); ++i)
                if (lower(*nonces[i], *nonces[low])) low = i;
            if (low < 2) {
                ref_n.rekeyed_to = theirs->id;  // ours is redundant
                queue_task(ref_n, Task{TaskKind::DeleteIke});
                adopt_rekeyed(sa, *theirs);
                return;
            }
            theirs->rekeyed_to = ref_n.id;  // the peer deletes its redundant SA
        }
        adopt_rekeyed(sa, ref_n);
        ++stats.ike_rekeyed;
        queue_task(sa, Task{TaskKind::DeleteIke});
        start_next_task(ref_n);
        return;
    }

    if (!old) return;  // deleted meanwhile; the peer's new SA is deleted with its old one
    auto sel = accept_esp(gw->esp_proposals, *sar, true);
    const crypto::KeGroup sent = task.ke ? task.ke->group() : crypto::KeGroup::None;
    if (!sel || sel->group != sent || (sent != crypto::KeGroup::None && (!ker || ker->group != static_cast<std::uint16_t>(sent)))) {
        old->rekeying = false;
        old->rekey_at = now() + Seconds{10};
        return;
    }
    std::optional<SecretBytes> g_ir;
    if (task.ke) {
        auto s = task.ke->derive(ker->data);
        if (!s) {
            old->rekeying = false;
            return;
        }
        g_ir.emplace(std::move(s).value());
    }
    ChildSa c;
    c.id = next_child_id++;
    c.spi_in = task.new_spi_in;
    c.spi_out = sel->peer_spi;
    c.encr = sel->encr;
    c.pfs = sel->group;
    c.esn = sel->esn;
    c.local_ts = old->local_ts;
    c.remote_ts = old->remote_ts;
    c.replaces = old->id;
    c.created_ni = task.nonce;
    c.created_nr = nr->data;
    auto keys = keymat::derive_child_keys(*sa.prf, sa.sk_d, g_ir ? &*g_ir : nullptr, task.nonce, nr->data, c.encr.key_bits / 8);
    if (!keys) return;
    schedule_child(sa, c);

    // RFC 7296 2.8.1: if the peer rekeyed the same SA at the same time, the SA created with the
    // lowest of the four nonces is redundant and is deleted by the side that created it.
    const ChildSa* theirs = nullptr;
    for (const auto& x : sa.children)
        if (x.replaces == old->id && x.peer_initiated) theirs = &x;
    if (theirs) {
        const std::vector<std::uint8_t>* lowest = &c.created_ni;
        const std::array<const std::vector<std::uint8_t>*, 3> others{&c.created_nr, &theirs->created_ni, &theirs->created_nr};
        for (const auto* n : others)
            if (lower(*n, *lowest)) lowest = n;
        const bool ours_lost = lowest == &c.created_ni || lowest == &c.created_nr;
        if (ours_lost) {
            // Never installed here; the peer installed it as responder, so delete it there.
            c.installed = false;
            c.deleting = true;
            sa.children.push_back(c);
            queue_task(sa, Task{TaskKind::DeleteChild, c.id, {c.spi_in}});
            return;  // the peer, whose SA survives, deletes the old one
        }
    }
    const ChildSaRef old_ref = ref(sa, *old);
    old->deleting = true;
    const std::uint64_t old_id = old->id;
    const std::uint32_t old_spi = old->spi_in;
    sa.children.push_back(c);
    ++stats.child_rekeyed;
    sink.child_sa_rekeyed(old_ref, child_keys(sa, c, std::move(keys).value(), true));
    queue_task(sa, Task{TaskKind::DeleteChild, old_id, {old_spi}});
}

void Engine::Impl::adopt_rekeyed(IkeSa& old_sa, IkeSa& new_sa) {
    // RFC 7296 2.18: child SAs and pending child work move to the new IKE SA.
    for (auto& c : old_sa.children) new_sa.children.push_back(std::move(c));
    old_sa.children.clear();
    old_sa.rekeyed_to = new_sa.id;
    for (auto& t : old_sa.queue)
        if (t.kind != TaskKind::DeleteIke && t.kind != TaskKind::Dpd && t.kind != TaskKind::IkeRekey) new_sa.queue.push_back(std::move(t));
    old_sa.queue.clear();
}

}  // namespace qkd::ike
