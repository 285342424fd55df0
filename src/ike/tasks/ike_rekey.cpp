// CREATE_CHILD_SA rekeying the IKE SA (RFC 7296 1.3.2, 2.18), with the RFC 9370 2.2.4 additional
// key exchanges in IKE_FOLLOWUP_KE, and simultaneous IKE SA rekeys (2.8.2):
//
//   HDR, SK {SA, Ni, KEi}  -->
//                    <--  HDR, SK {SA, Nr, KEr, [N(ADDITIONAL_KEY_EXCHANGE)(link)]}
//   [HDR(IKE_FOLLOWUP_KE), SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)}  -->
//                    <--  HDR, SK {KEr(n), [N(ADDITIONAL_KEY_EXCHANGE)(link)]}]  per ADDKE
#include <array>

#include "create_child.hpp"

namespace qkd::ike {

using wire::ExchangeType;
using wire::NotifyType;
using namespace create_child;

namespace {


class IkeRekey final : public ExchangeTask {
public:
    IkeRekey(Engine::Impl& e, Task spec) : ExchangeTask(e, std::move(spec)) {}
    ExchangeType exchange() const override { return r_.slot ? ExchangeType::IkeFollowupKe : ExchangeType::CreateChildSa; }

    Step build_i(IkeSa& sa, std::vector<Payload>& p) override {
        if (r_.slot) {
            // A QKD round takes a fresh key from our KME first (qkd_round.cpp): every IKE SA, the
            // rekeyed ones too, has its own QKD key (issue 16).
            if (r_.kex.is_qkd(r_.slot) && !r_.kex.has_qkd_key(r_.slot)) return request_qkd_key(e_, sa, r_.slot, true, {});
            return r_.build_i(p);  // HDR, SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)}  -->
        }
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        nonce_ = e_.random_nonce();
        if (sa.rekeyed_to) return Step::abort("IKE SA already rekeyed");
        new_spi_ = e_.random_spi();
        const crypto::KeGroup g = spec_.ke_group != crypto::KeGroup::None ? spec_.ke_group : sa.group;
        r_.kex.set_method(0, g);
        auto kei = r_.kex.build_i(0);
        if (!kei) return Step::abort(kei.error().why);
        p.push_back({PayloadType::Sa, false, ike_sa_payload(gw->ike_proposals, spi_bytes(new_spi_, 8))});
        p.push_back({PayloadType::Nonce, false, wire::NoncePayload{nonce_}});
        p.push_back(ke_payload(g, std::move(kei).value()));
        return Step::done();
    }

    Step process_i(IkeSa& sa, const Message& m) override {
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        if (r_.slot == 0) {
            if (const auto* err = m.first_error()) {
                if (sa.collision_spi) {
                    // Our rekey failed but the peer's succeeded: its new SA takes over (it deletes the old one).
                    if (IkeSa* theirs = e_.find(*sa.collision_spi)) e_.adopt_rekeyed(sa, *theirs);
                    sa.collision_spi.reset();
                    return Step::abort("peer answered CREATE_CHILD_SA with " + wire::to_string(err->type));
                }
                return on_error(e_, sa, spec_, nullptr, *err);
            }
            const auto* sar = m.get<wire::SaPayload>(PayloadType::Sa);
            const auto* nr = m.get<wire::NoncePayload>(PayloadType::Nonce);
            const auto* ker = m.get<wire::KePayload>(PayloadType::Ke);
            auto sel = accept_ike(gw->ike_proposals, *sar);
            if (!sel || sar->proposals[0].spi.size() != 8 || !ker || ker->group != static_cast<std::uint16_t>(r_.kex.method(0))) {
                sa.rekey_at = e_.now() + Seconds{10};
                return Step::abort("CREATE_CHILD_SA response selects what we did not offer");
            }
            if (auto ok = r_.kex.process_i(0, ker->data); !ok) return Step::abort(ok.error().why);
            for (std::size_t n = 1; n < kKeSlots; ++n) r_.kex.set_method(n, sel->addke[n - 1]);
            sel_ = *sel;
            nr_ = nr->data;
            spi_r_ = spi_value(sar->proposals[0].spi);
        }
        bool more = false;
        if (auto why = r_.process_i(m, more)) {
            sa.rekey_at = e_.now() + Seconds{10};  // try the whole rekey again later
            return Step::abort("IKE SA rekey: " + *why);
        }
        if (more) return Step::more();  // IKE_FOLLOWUP_KE for the next additional key exchange
        auto n = successor(sa, sel_, true, new_spi_, spi_r_, nonce_, nr_);
        if (!n) return Step::abort("key derivation failed");
        IkeSa& ref_n = *n;
        e_.sas.emplace(n->spi_i, std::move(n));
        e_.established(ref_n, IkeSaEvent::Rekeyed);
        IkeSa* theirs = sa.collision_spi ? e_.find(*sa.collision_spi) : nullptr;
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
                e_.queue_task(ref_n, Task{TaskKind::DeleteIke});
                e_.adopt_rekeyed(sa, *theirs);
                return Step::done();
            }
            theirs->rekeyed_to = ref_n.id;  // the peer deletes its redundant SA
        }
        e_.adopt_rekeyed(sa, ref_n);
        ++e_.stats.ike_rekeyed;
        e_.queue_task(sa, Task{TaskKind::DeleteIke});
        e_.start_next_task(ref_n);
        return Step::done();
    }

    Step process_r(IkeSa& sa, const Message& m) override {
        if (r_.slot > 0 || !nr_.empty()) {
            // HDR, SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)}  -->   (RFC 9370 2.2.4)
            if (auto busy = refuse_if_busy(sa)) return *busy;
            if (auto q = r_.qkd_key_id_r(m)) {
                // QKD round: fetch the key the initiator names, answer once it is there.
                if (auto* st = std::get_if<Step>(&*q)) return fail_r(*st);
                qkd_responder_ = true;
                return request_qkd_key(e_, sa, r_.slot, false, std::get<0>(*q));
            }
            if (auto st = r_.process_r(m); st.status == Status::Failed) return fail_r(st);
            return complete_r(sa);
        }
        if (auto busy = refuse_if_busy(sa)) return fail_r(*busy);
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        const auto* sai = m.get<wire::SaPayload>(PayloadType::Sa);
        const auto* ni = m.get<wire::NoncePayload>(PayloadType::Nonce);
        const auto* kei = m.get<wire::KePayload>(PayloadType::Ke);
        nr_ = e_.random_nonce();
        // RFC 7296 2.8.2: if our own rekey of this IKE SA is in flight, answer normally and decide
        // which new SA survives when our response arrives (lowest of the four nonces loses).
        collision_ = sa.active && !sa.active->waiting && sa.active->spec().kind == TaskKind::IkeRekey && !sa.collision_spi;
        auto sel = select_ike(gw->ike_proposals, *sai, kei ? kei->group : 0);
        if (!sel || sai->proposals[sel->number - 1].spi.size() != 8)
            return fail_r(Step::failed(NotifyType::NoProposalChosen, "no acceptable IKE proposal"));
        if (!kei || kei->group != static_cast<std::uint16_t>(sel->group))
            return fail_r(Step::failed(invalid_ke(sel->group), "KE method"));
        r_.kex.set_method(0, sel->group);
        for (std::size_t n = 1; n < kKeSlots; ++n) r_.kex.set_method(n, sel->addke[n - 1]);
        auto ker = r_.kex.process_r(0, kei->data);
        if (!ker) return fail_r(Step::failed(ker.error().notify, ker.error().why));
        r_.ker = std::move(ker).value();
        ni_ = ni->data;
        spi_i_ = spi_value(sai->proposals[sel->number - 1].spi);
        spi_r_ = e_.random_spi();
        sel_ = *sel;
        if (r_.next()) {
            r_.link.resize(kLinkSize);
            e_.rng.fill(r_.link);
        }
        return complete_r(sa);
    }

    Step build_r(IkeSa&, std::vector<Payload>& p) override {
        if (r_.slot > 0) {
            r_.build_r(p);  //  <--  HDR, SK {KEr(n), [N(ADDITIONAL_KEY_EXCHANGE)(link)]}
            return Step::done();
        }
        //  <--  HDR, SK {SA, Nr, KEr, [N(ADDITIONAL_KEY_EXCHANGE)(link)]}
        p.push_back({PayloadType::Sa, false, selected_ike_payload(sel_, spi_bytes(spi_r_, 8))});
        p.push_back({PayloadType::Nonce, false, wire::NoncePayload{nr_}});
        p.push_back(ke_payload(sel_.group, r_.ker));
        if (r_.next()) p.push_back(wire::make_notify(NotifyType::AdditionalKeyExchange, r_.link));
        return Step::done();
    }

    const std::vector<std::uint8_t>* followup_link() const override { return !failed_ && !next_ && r_.next() ? &r_.link : nullptr; }

    void after_r(IkeSa& sa, const Step& st) override {
        if (st.status == Status::Failed || !next_) return;
        IkeSa& n = *next_;
        if (collision_) {
            sa.collision_spi = n.spi_r;
            e_.sas.emplace(n.spi_r, std::move(next_));
            e_.established(n, IkeSaEvent::Rekeyed);
            return;
        }
        // RFC 7296 2.18: child SAs move to the new IKE SA; the initiator deletes the old one.
        n.children = std::move(sa.children);
        sa.children.clear();
        sa.rekeyed_to = n.id;
        sa.queue.clear();
        e_.sas.emplace(n.spi_r, std::move(next_));
        e_.established(n, IkeSaEvent::Rekeyed);
        ++e_.stats.ike_rekeyed;
    }

private:
    // Once every key exchange is done, the new IKE SA (installed by after_r).
    // A QKD round's key (Engine::on_qkd_key): the initiator sends its round, the responder answers.
    Step resume(IkeSa& sa, ExternalKey& k) override {
        if (k.slot != r_.slot || !r_.kex.is_qkd(r_.slot)) return Step::failed(NotifyType::InvalidSyntax, "a QKD key for another round");
        if (!k.key) {
            // mode = require: no new IKE SA without a fresh QKD key; the old one lives on.
            const std::string why = "IKE SA rekey: " + r_.round_name() + ": no QKD key: " + k.error;
            if (qkd_responder_) return fail_r(Step::failed(NotifyType::NoProposalChosen, why));
            sa.rekey_at = e_.now() + Seconds{10};  // try the whole rekey again later
            return Step::abort(why);
        }
        qkd_key_id_ = k.key_id;
        r_.kex.set_qkd_key(r_.slot, k.key_id, std::move(*k.key));
        k.key.reset();
        if (!qkd_responder_) return Step::done();  // the driver runs build_i again
        auto ker = r_.kex.process_r(r_.slot, {});
        if (!ker) return fail_r(Step::failed(ker.error().notify, r_.round_name() + ": " + ker.error().why));
        r_.ker = std::move(ker).value();
        return complete_r(sa);
    }

    Step complete_r(IkeSa& sa) {
        if (r_.next()) return Step::done();
        // The rekey initiator becomes the original initiator of the new IKE SA.
        next_ = successor(sa, sel_, false, spi_i_, spi_r_, ni_, nr_);
        if (!next_) return fail_r(Step::failed(NotifyType::NoProposalChosen, "key derivation failed"));
        return Step::done();
    }
    Step fail_r(Step st) {
        failed_ = true;
        return st;
    }

    // The new IKE SA: RFC 7296 2.18 SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) with the old
    // SA's PRF, then the keys with the new SA's PRF, nonces and SPIs.
    std::unique_ptr<IkeSa> successor(IkeSa& sa, const IkeSelection& sel, bool initiator, std::uint64_t spi_i,
                                     std::uint64_t spi_r, const std::vector<std::uint8_t>& ni, const std::vector<std::uint8_t>& nr) {
        auto n = std::make_unique<IkeSa>();
        n->id = e_.next_sa_id++;
        n->gateway = sa.gateway;
        n->initiator = initiator;
        n->spi_i = spi_i;
        n->spi_r = spi_r;
        n->state = SaState::Established;
        n->local = sa.local;
        n->remote = sa.remote;
        n->nat_local = sa.nat_local;
        n->nat_remote = sa.nat_remote;
        n->fragmentation = sa.fragmentation;
        n->force_encap = sa.force_encap;
        n->local_id = sa.local_id;
        n->peer_id = sa.peer_id;
        n->encr = sel.encr;
        n->prf_alg = sel.prf;
        n->group = sel.group;
        n->prf.emplace(sel.prf);
        n->nonce_i = ni;
        n->nonce_r = nr;
        n->created = n->last_rx = e_.now();
        // RFC 9370 2.2.4: SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n))
        n->kex.set_method(0, sel.group);
        for (std::size_t k = 1; k < kKeSlots; ++k) n->kex.set_method(k, sel.addke[k - 1]);
        const auto adds = r_.adds();
        auto skeyseed = keymat::skeyseed_rekey(*sa.prf, sa.sk_d, *r_.kex.secret(0), n->nonce_i, n->nonce_r, adds);
        auto keys = keymat::derive_ike_keys(*n->prf, skeyseed, n->nonce_i, n->nonce_r, n->spi_i, n->spi_r, n->encr.key_bits / 8 + 4);
        if (!keys) return nullptr;
        n->crypter = initiator ? wire::SkCrypter::create(keys->sk_ei.view(), keys->sk_er.view())
                               : wire::SkCrypter::create(keys->sk_er.view(), keys->sk_ei.view());
        n->sk_d = std::move(keys->sk_d);
        n->sk_pi = std::move(keys->sk_pi);
        n->sk_pr = std::move(keys->sk_pr);
        n->qkd_keys_used = sa.qkd_keys_used;
        for (std::size_t k = 1; k < kKeSlots; ++k)
            if (n->kex.is_qkd(k)) {
                n->qkd_key_id = qkd_key_id_;
                n->qkd_key_time = e_.now();
                ++n->qkd_keys_used;
            }
        return n;
    }

    Rounds r_;
    std::vector<std::uint8_t> nonce_, ni_, nr_;
    std::uint64_t new_spi_ = 0, spi_i_ = 0, spi_r_ = 0;
    bool collision_ = false, failed_ = false;
    bool qkd_responder_ = false;                 // this task waits for a QKD key as the responder
    std::array<std::uint8_t, 16> qkd_key_id_{};  // the QKD key of this rekey (its key_ID)
    IkeSelection sel_;
    std::unique_ptr<IkeSa> next_;
};

}  // namespace

std::unique_ptr<ExchangeTask> make_ike_rekey(Engine::Impl& e, Task spec) {
    return std::make_unique<IkeRekey>(e, std::move(spec));
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
