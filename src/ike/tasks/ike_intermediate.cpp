// IKE_INTERMEDIATE (RFC 9242) carrying the additional key exchanges of RFC 9370 2.2.2, one
// exchange per negotiated ADDKE slot, between IKE_SA_INIT and IKE_AUTH:
//
//   HDR, SK {KEi(n)}  -->                 (protected with the keys of round n-1)
//                <--  HDR, SK {KEr(n)}
//
// after which both sides compute SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr) and re-derive all
// seven keys with the nonces and SPIs of IKE_SA_INIT. Every IKE_INTERMEDIATE message also extends
// the IntAuth chains (RFC 9242 3.3.2) that IKE_AUTH binds into AUTH (ike_auth.cpp).
#include "task.hpp"

namespace qkd::ike {

using wire::ExchangeType;
using wire::NotifyType;

namespace {

std::string round_name(const IkeSa& sa, std::size_t slot) {
    return "IKE_INTERMEDIATE round " + std::to_string(slot) + " (ADDKE" + std::to_string(slot) + " " +
           ke_method_label(sa.kex.method(slot)) + ")";
}

// RFC 9370 2.2.2: SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr), then all keys re-derived.
std::string apply_round(IkeSa& sa, std::size_t slot) {
    auto skeyseed = keymat::skeyseed_addke(*sa.prf, sa.sk_d, *sa.kex.secret(slot), sa.nonce_i, sa.nonce_r);
    if (auto why = install_ike_keys(sa, skeyseed); !why.empty()) return why;
    sa.ke_done = slot;
    return {};
}

class IkeIntermediate final : public ExchangeTask {
public:
    explicit IkeIntermediate(Engine::Impl& e) : ExchangeTask(e, Task{TaskKind::IkeIntermediate}) {}
    ExchangeType exchange() const override { return ExchangeType::IkeIntermediate; }

    // HDR, SK {KEi(n)}  -->
    Step build_i(IkeSa& sa, std::vector<Payload>& p) override {
        const auto next = sa.kex.next(sa.ke_done);
        if (!next) return fail(sa, "IKE_INTERMEDIATE without a pending key exchange");
        slot_ = *next;
        // QKD (ike-tasks.md "The QKD key request"): a fresh key from our KME first; the round
        // waits and build_i runs again once Engine::on_qkd_key brought it (qkd_round.cpp).
        if (sa.kex.is_qkd(slot_) && !sa.kex.has_qkd_key(slot_)) return request_qkd_key(e_, sa, slot_, true, {});
        auto kei = sa.kex.build_i(slot_);
        if (!kei) return fail(sa, round_name(sa, slot_) + ": " + kei.error().why);
        p.push_back({PayloadType::Ke, false, wire::KePayload{static_cast<std::uint16_t>(sa.kex.method(slot_)), std::move(kei).value()}});
        return Step::done();
    }

    //                <--  HDR, SK {KEr(n)}
    Step process_i(IkeSa& sa, const Message& m) override {
        if (const auto* err = m.first_error()) return fail(sa, round_name(sa, slot_) + ": peer answered " + wire::to_string(err->type));
        const auto* ker = m.get<wire::KePayload>(PayloadType::Ke);
        if (!ker) return fail(sa, round_name(sa, slot_) + ": response without KE payload");
        if (auto ok = sa.kex.check(slot_, ker->group, ker->data, false); !ok)
            return fail(sa, round_name(sa, slot_) + ": " + ok.error().why);
        if (auto ok = sa.kex.process_i(slot_, ker->data); !ok) return fail(sa, round_name(sa, slot_) + ": " + ok.error().why);
        if (auto why = apply_round(sa, slot_); !why.empty()) return fail(sa, round_name(sa, slot_) + ": " + why);
        if (sa.kex.next(slot_)) return Step::more();  // the next additional key exchange
        e_.start_task(sa, make_ike_auth(e_));
        return Step::done();
    }

    Step process_r(IkeSa& sa, const Message& m) override {
        if (sa.state != SaState::InitDone || !sa.intermediate)
            return Step::failed(NotifyType::InvalidSyntax, "IKE_INTERMEDIATE outside IKE_SA_INIT..IKE_AUTH or not negotiated");
        const auto* kei = m.get<wire::KePayload>(PayloadType::Ke);
        const auto next = sa.kex.next(sa.ke_done);
        if (!kei) {
            // RFC 9242: an IKE_INTERMEDIATE without a key exchange is legal (other extensions);
            // while a round is pending it must carry that round's KE (RFC 9370 2.2.2).
            if (next) return Step::failed(NotifyType::InvalidSyntax, round_name(sa, *next) + ": request without KE payload");
            return Step::done();
        }
        if (!next) return Step::failed(NotifyType::InvalidSyntax, "KE payload in IKE_INTERMEDIATE after the last key exchange");
        slot_ = *next;
        // RFC 9370 2.2.2: a KE payload of another method than the one selected for this round is a
        // syntax error (INVALID_KE_PAYLOAD only applies to IKE_SA_INIT and CREATE_CHILD_SA).
        if (auto ok = sa.kex.check(slot_, kei->group, kei->data, true); !ok)
            return Step::failed(NotifyType::InvalidSyntax, round_name(sa, slot_) + ": " + ok.error().why);
        if (sa.kex.is_qkd(slot_)) {
            // The initiator's key_ID: fetch that key from our KME (as the slave SAE) and answer
            // once it is there; retransmissions meanwhile are dropped (engine.cpp, RFC 7296 2.1).
            std::array<std::uint8_t, 16> id{};
            std::copy(kei->data.begin(), kei->data.end(), id.begin());
            qkd_data_ = kei->data;
            return request_qkd_key(e_, sa, slot_, false, id);
        }
        return answer_r(sa, kei->data);
    }

    // A QKD round's key arrived (or did not): the initiator builds its request again, the
    // responder answers (shared/docs/ike-tasks.md; task_driver resumes the task).
    Step resume(IkeSa& sa, ExternalKey& k) override {
        if (k.slot != slot_ || !sa.kex.is_qkd(slot_))
            return Step::failed(NotifyType::InvalidSyntax, "a QKD key for another round");
        if (!k.key) {
            // Fail closed (qkd.mode = require): no QKD key, no IKE SA.
            const std::string why = round_name(sa, slot_) + ": no QKD key: " + k.error;
            if (sa.initiator) return fail(sa, why);
            return Step::failed(NotifyType::NoProposalChosen, why);
        }
        accept_qkd_key(e_, sa, slot_, k);
        if (sa.initiator) return Step::done();  // the driver runs build_i again
        return answer_r(sa, qkd_data_);
    }

private:
    Step answer_r(IkeSa& sa, std::span<const std::uint8_t> kei) {
        auto ker = sa.kex.process_r(slot_, kei);
        if (!ker) return Step::failed(ker.error().notify, round_name(sa, slot_) + ": " + ker.error().why);
        ker_ = std::move(ker).value();
        return Step::done();
    }

public:
    Step build_r(IkeSa& sa, std::vector<Payload>& p) override {
        if (slot_) p.push_back({PayloadType::Ke, false, wire::KePayload{static_cast<std::uint16_t>(sa.kex.method(slot_)), ker_}});
        return Step::done();
    }

    // The response went out under the keys of round n-1; from now on round n's keys apply.
    void after_r(IkeSa& sa, const Step& st) override {
        if (st.status == Status::Failed) {
            // RFC 9370 2.2.2: a failed additional key exchange fails the IKE SA being set up.
            e_.destroy(sa, st.why, true);
            return;
        }
        if (slot_ == 0) return;
        if (auto why = apply_round(sa, slot_); !why.empty()) e_.destroy(sa, round_name(sa, slot_) + ": " + why, true);
    }

private:
    Step fail(IkeSa& sa, const std::string& why) {
        e_.destroy(sa, why, true);
        return Step::abort(why);
    }
    std::size_t slot_ = 0;
    std::vector<std::uint8_t> ker_;
    std::vector<std::uint8_t> qkd_data_;  // responder: the initiator's KE data of a QKD round
};

}  // namespace

// RFC 9242 3.3.2: IntAuth_[i|r]N_A is the IKE header and the Encrypted payload's generic header,
// IntAuth_[i|r]N_P the inner payloads in clear, both as if the message had been sent neither
// encrypted (no IV, padding, ICV: the lengths cover only the inner payloads) nor fragmented (an
// SK payload whose Next Payload is the first inner payload).
std::vector<std::uint8_t> int_auth_octets(const wire::Header& h, PayloadType first, std::span<const std::uint8_t> inner) {
    wire::Header a = h;
    a.next_payload = PayloadType::Sk;
    a.length = static_cast<std::uint32_t>(28 + 4 + inner.size());
    ByteWriter w;
    a.encode(w);
    w.u8(static_cast<std::uint8_t>(first));
    w.u8(0);
    w.u16(static_cast<std::uint16_t>(4 + inner.size()));
    w.bytes(inner);
    return w.take();
}

std::unique_ptr<ExchangeTask> make_ike_intermediate(Engine::Impl& e) { return std::make_unique<IkeIntermediate>(e); }

void Engine::Impl::update_int_auth(IkeSa& sa, const wire::Header& h, PayloadType first, std::span<const std::uint8_t> inner) {
    if (h.exchange != ExchangeType::IkeIntermediate) return;
    const auto a_p = int_auth_octets(h, first, inner);
    // Requests come from the original initiator (RFC 9242 3): IntAuth_i with SK_pi; responses
    // IntAuth_r with SK_pr; each with the keys that protect this exchange.
    auto& chain = h.is_response() ? sa.int_auth_r : sa.int_auth_i;
    auto v = keymat::int_auth(*sa.prf, h.is_response() ? sa.sk_pr : sa.sk_pi, chain, a_p);
    chain.assign(v.view().begin(), v.view().end());
    if (!h.is_response()) ++sa.int_exchanges;
}

}  // namespace qkd::ike
