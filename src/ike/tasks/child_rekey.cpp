// CREATE_CHILD_SA rekeying a child SA (RFC 7296 1.3.3), with optional PFS, and simultaneous
// child rekeys (2.8.1):
//
//   HDR, SK {N(REKEY_SA), SA, Ni, [KEi], TSi, TSr}  -->
//                 <--  HDR, SK {SA, Nr, [KEr], TSi, TSr, [N(ADDITIONAL_KEY_EXCHANGE)(link)]}
//   [HDR(IKE_FOLLOWUP_KE), SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)}  -->
//                 <--  HDR, SK {KEr(n), [N(ADDITIONAL_KEY_EXCHANGE)(link)]}]  per ADDKE (RFC 9370 2.2.4)
#include <array>

#include "create_child.hpp"

namespace qkd::ike {

using wire::ExchangeType;
using wire::NotifyType;
using namespace create_child;

namespace {

class ChildRekey final : public ExchangeTask {
public:
    ChildRekey(Engine::Impl& e, Task spec) : ExchangeTask(e, std::move(spec)) {}
    ExchangeType exchange() const override { return r_.slot ? ExchangeType::IkeFollowupKe : ExchangeType::CreateChildSa; }

    Step build_i(IkeSa& sa, std::vector<Payload>& p) override {
        if (r_.slot) {
            // A QKD round takes a fresh key from our KME first (qkd_round.cpp, issue 16).
            if (r_.kex.is_qkd(r_.slot) && !r_.kex.has_qkd_key(r_.slot)) return request_qkd_key(e_, sa, r_.slot, true, {});
            return r_.build_i(p);
        }
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        nonce_ = e_.random_nonce();
        ChildSa* c = find_child(sa, spec_.child_id);
        if (!c || c->deleting || c->rekeying) return Step::abort("child SA gone or already rekeying");
        c->rekeying = true;
        new_spi_in_ = e_.random_child_spi();
        crypto::KeGroup g = spec_.ke_group;
        if (g == crypto::KeGroup::None && !gw->esp_proposals.front().ke.empty()) g = gw->esp_proposals.front().ke.front();
        p.push_back(wire::make_notify(NotifyType::RekeySa, {}, wire::ProtocolId::Esp, spi_bytes(c->spi_in, 4)));
        p.push_back({PayloadType::Sa, false, esp_sa_payload(gw->esp_proposals, new_spi_in_, true)});
        p.push_back({PayloadType::Nonce, false, wire::NoncePayload{nonce_}});
        if (g != crypto::KeGroup::None) {
            r_.kex.set_method(0, g);
            auto kei = r_.kex.build_i(0);
            if (!kei) return Step::abort(kei.error().why);
            p.push_back(ke_payload(g, std::move(kei).value()));
        }
        p.push_back({PayloadType::TsI, false, wire::TsPayload{c->local_ts}});
        p.push_back({PayloadType::TsR, false, wire::TsPayload{c->remote_ts}});
        return Step::done();
    }

    Step process_i(IkeSa& sa, const Message& m) override {
        const GatewayConfig* gw = e_.gateway(sa.gateway);
        ChildSa* old = find_child(sa, spec_.child_id);
        if (r_.slot == 0) {
            if (const auto* err = m.first_error()) return on_error(e_, sa, spec_, old, *err);
            if (!old) return Step::abort("child SA deleted meanwhile");  // the peer's new SA goes with it
            const auto* sar = m.get<wire::SaPayload>(PayloadType::Sa);
            const auto* nr = m.get<wire::NoncePayload>(PayloadType::Nonce);
            const auto* ker = m.get<wire::KePayload>(PayloadType::Ke);
            auto sel = accept_esp(gw->esp_proposals, *sar, true);
            const crypto::KeGroup sent = r_.kex.method(0);
            if (!sel || sel->group != sent || (sent != crypto::KeGroup::None && (!ker || ker->group != static_cast<std::uint16_t>(sent)))) {
                old->rekeying = false;
                old->rekey_at = e_.now() + Seconds{10};
                return Step::abort("CREATE_CHILD_SA response selects what we did not offer");
            }
            if (sent != crypto::KeGroup::None) {
                if (auto ok = r_.kex.process_i(0, ker->data); !ok) {
                    old->rekeying = false;
                    return Step::abort(ok.error().why);
                }
                for (std::size_t n = 1; n < kKeSlots; ++n) r_.kex.set_method(n, sel->addke[n - 1]);
            }
            sel_ = *sel;
            nr_ = nr->data;
        }
        if (!old) return Step::abort("child SA deleted meanwhile");
        bool more = false;
        if (auto why = r_.process_i(m, more)) {
            old->rekeying = false;
            old->rekey_at = e_.now() + Seconds{10};
            return Step::abort("child SA rekey: " + *why);
        }
        if (more) return Step::more();  // IKE_FOLLOWUP_KE for the next additional key exchange
        const EspSelection* sel = &sel_;
        ChildSa c;
        c.id = e_.next_child_id++;
        c.spi_in = new_spi_in_;
        c.spi_out = sel->peer_spi;
        c.encr = sel->encr;
        c.pfs = sel->group;
        c.addke = sel->addke;
        c.esn = sel->esn;
        c.local_ts = old->local_ts;
        c.remote_ts = old->remote_ts;
        c.replaces = old->id;
        c.created_ni = nonce_;
        c.created_nr = nr_;
        // RFC 7296 2.17 / RFC 9370 2.2.4: KEYMAT = prf+(SK_d, [SK(0) |] Ni | Nr [| SK(1) | ... | SK(n)])
        auto keys = keymat::derive_child_keys(*sa.prf, sa.sk_d, r_.kex.secret(0), nonce_, nr_, c.encr.key_bits / 8, r_.adds());
        if (!keys) return Step::abort(keys.error().message);
        e_.schedule_child(sa, c);

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
            if (lowest == &c.created_ni || lowest == &c.created_nr) {
                // Never installed here; the peer installed it as responder, so delete it there.
                c.installed = false;
                c.deleting = true;
                sa.children.push_back(c);
                e_.queue_task(sa, Task{TaskKind::DeleteChild, c.id, {c.spi_in}});
                return Step::done();  // the peer, whose SA survives, deletes the old one
            }
        }
        const ChildSaRef old_ref = e_.ref(sa, *old);
        old->deleting = true;
        const std::uint64_t old_id = old->id;
        const std::uint32_t old_spi = old->spi_in;
        sa.children.push_back(c);
        ++e_.stats.child_rekeyed;
        e_.sink.child_sa_rekeyed(old_ref, e_.child_keys(sa, c, std::move(keys).value(), true));
        e_.queue_task(sa, Task{TaskKind::DeleteChild, old_id, {old_spi}});
        return Step::done();
    }

    Step process_r(IkeSa& sa, const Message& m) override {
        if (!nr_.empty()) {
            // HDR, SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)}  -->   (RFC 9370 2.2.4)
            if (auto busy = refuse_if_busy(sa)) return fail_r(*busy);
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
        // N(REKEY_SA) names the SA by the peer's inbound SPI (our outbound).
        const auto* rekey = m.notify(NotifyType::RekeySa);
        if (!rekey) return fail_r(Step::failed(NotifyType::NoAdditionalSas, "CREATE_CHILD_SA for a new child SA"));
        ChildSa* old = nullptr;
        for (auto& c : sa.children)
            if (rekey->spi.size() == 4 && c.spi_out == spi_value(rekey->spi) && c.installed) old = &c;
        if (!old)
            return fail_r(Step::failed(wire::make_notify(NotifyType::ChildSaNotFound, {}, wire::ProtocolId::Esp, rekey->spi),
                                "REKEY_SA names no child SA of ours"));
        if (old->deleting) return fail_r(Step::failed(NotifyType::TemporaryFailure, "child SA is being deleted"));
        auto sel = select_esp(gw->esp_proposals, *sai, true, kei ? kei->group : 0);
        if (!sel) return fail_r(Step::failed(NotifyType::NoProposalChosen, "no acceptable ESP proposal"));
        if (sel->group != crypto::KeGroup::None) {
            if (!kei || kei->group != static_cast<std::uint16_t>(sel->group)) return fail_r(Step::failed(invalid_ke(sel->group), "PFS group"));
            r_.kex.set_method(0, sel->group);
            for (std::size_t n = 1; n < kKeSlots; ++n) r_.kex.set_method(n, sel->addke[n - 1]);
            auto ker = r_.kex.process_r(0, kei->data);
            if (!ker) return fail_r(Step::failed(ker.error().notify, ker.error().why));
            r_.ker = std::move(ker).value();
        }
        c_.id = e_.next_child_id++;
        c_.spi_in = e_.random_child_spi();
        c_.spi_out = sel->peer_spi;
        c_.encr = sel->encr;
        c_.pfs = sel->group;
        c_.addke = sel->addke;
        c_.esn = sel->esn;
        c_.local_ts = old->local_ts;
        c_.remote_ts = old->remote_ts;
        c_.replaces = old->id;
        c_.peer_initiated = true;
        c_.created_ni = ni->data;
        c_.created_nr = nr_;
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
        p.push_back({PayloadType::Sa, false, selected_esp_payload(sel_, c_.spi_in, true)});
        p.push_back({PayloadType::Nonce, false, wire::NoncePayload{nr_}});
        if (!r_.ker.empty()) p.push_back(ke_payload(sel_.group, r_.ker));
        p.push_back({PayloadType::TsI, false, wire::TsPayload{c_.remote_ts}});
        p.push_back({PayloadType::TsR, false, wire::TsPayload{c_.local_ts}});
        if (r_.next()) p.push_back(wire::make_notify(NotifyType::AdditionalKeyExchange, r_.link));
        return Step::done();
    }

    const std::vector<std::uint8_t>* followup_link() const override { return !failed_ && !keys_ && r_.next() ? &r_.link : nullptr; }

    void after_r(IkeSa& sa, const Step& st) override {
        if (st.status == Status::Failed || !keys_) return;
        ChildSa* old = find_child(sa, c_.replaces);
        if (!old) return;
        old->rekeying = true;
        const ChildSaRef old_ref = e_.ref(sa, *old);
        e_.schedule_child(sa, c_);
        sa.children.push_back(c_);
        ++e_.stats.child_rekeyed;
        // The old SA stays until the initiator deletes it (RFC 7296 2.8).
        e_.sink.child_sa_rekeyed(old_ref, e_.child_keys(sa, c_, std::move(*keys_), false));
    }

    // A QKD round's key (Engine::on_qkd_key): the initiator sends its round, the responder answers.
    Step resume(IkeSa& sa, ExternalKey& k) override {
        if (k.slot != r_.slot || !r_.kex.is_qkd(r_.slot)) return Step::failed(NotifyType::InvalidSyntax, "a QKD key for another round");
        if (!k.key) {
            // mode = require: no new child SA without a fresh QKD key; the old one lives on.
            const std::string why = "child SA rekey: " + r_.round_name() + ": no QKD key: " + k.error;
            if (qkd_responder_) return fail_r(Step::failed(NotifyType::NoProposalChosen, why));
            if (ChildSa* old = find_child(sa, spec_.child_id)) {
                old->rekeying = false;
                old->rekey_at = e_.now() + Seconds{10};
            }
            return Step::abort(why);
        }
        r_.kex.set_qkd_key(r_.slot, k.key_id, std::move(*k.key));
        k.key.reset();
        if (!qkd_responder_) return Step::done();  // the driver runs build_i again
        auto ker = r_.kex.process_r(r_.slot, {});
        if (!ker) return fail_r(Step::failed(ker.error().notify, r_.round_name() + ": " + ker.error().why));
        r_.ker = std::move(ker).value();
        return complete_r(sa);
    }

private:
    // Once every key exchange is done: RFC 7296 2.17 / RFC 9370 2.2.4
    // KEYMAT = prf+(SK_d, [SK(0) |] Ni | Nr [| SK(1) | ... | SK(n)])
    Step complete_r(IkeSa& sa) {
        if (r_.next()) return Step::done();
        auto keys = keymat::derive_child_keys(*sa.prf, sa.sk_d, r_.kex.secret(0), c_.created_ni, nr_, c_.encr.key_bits / 8, r_.adds());
        if (!keys) return fail_r(Step::failed(NotifyType::NoProposalChosen, keys.error().message));
        keys_.emplace(std::move(keys).value());
        return Step::done();
    }
    Step fail_r(Step st) {
        failed_ = true;
        return st;
    }

    Rounds r_;  // slot 0: the PFS method, if any; 1..7: IKE_FOLLOWUP_KE
    std::vector<std::uint8_t> nonce_, nr_;
    std::uint32_t new_spi_in_ = 0;
    bool failed_ = false;
    bool qkd_responder_ = false;  // this task waits for a QKD key as the responder
    EspSelection sel_;
    ChildSa c_;
    std::optional<keymat::ChildKeys> keys_;
};

}  // namespace

std::unique_ptr<ExchangeTask> make_child_rekey(Engine::Impl& e, Task spec) {
    return std::make_unique<ChildRekey>(e, std::move(spec));
}

}  // namespace qkd::ike
