#pragma once
// What the two CREATE_CHILD_SA tasks (child_rekey.cpp, ike_rekey.cpp) share.
#include <algorithm>
#include <array>
#include <optional>
#include <variant>

#include "task.hpp"

namespace qkd::ike::create_child {

inline std::vector<std::uint8_t> spi_bytes(std::uint64_t v, std::size_t n) {
    std::vector<std::uint8_t> b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * (n - 1 - i)));
    return b;
}
inline std::uint64_t spi_value(const std::vector<std::uint8_t>& b) {
    std::uint64_t v = 0;
    for (auto x : b) v = v << 8 | x;
    return v;
}
inline Payload ke_payload(crypto::KeGroup g, std::vector<std::uint8_t> data) {
    return {PayloadType::Ke, false, wire::KePayload{static_cast<std::uint16_t>(g), std::move(data)}};
}
inline Payload invalid_ke(crypto::KeGroup g) {
    const auto v = static_cast<std::uint16_t>(g);
    return wire::make_notify(wire::NotifyType::InvalidKePayload, {std::uint8_t(v >> 8), std::uint8_t(v)});
}
inline ChildSa* find_child(IkeSa& sa, std::uint64_t id) {
    for (auto& c : sa.children)
        if (c.id == id) return &c;
    return nullptr;
}
// RFC 7296 2.8.1: "the lowest of the four nonces"
inline bool lower(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}

// The responder's check common to both: no CREATE_CHILD_SA on an SA that is going away.
inline std::optional<Step> refuse_if_busy(const IkeSa& sa) {
    if (sa.state != SaState::Established || sa.rekeyed_to)
        return Step::failed(wire::NotifyType::TemporaryFailure, "IKE SA is not established or is being replaced");
    return std::nullopt;
}

// The key exchanges of one CREATE_CHILD_SA: slot 0 in the CREATE_CHILD_SA itself, the negotiated
// additional ones (RFC 9370 2.2.4) each in an IKE_FOLLOWUP_KE on the same IKE SA:
//
//   HDR, SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)}  -->
//                  <--  HDR, SK {KEr(n), [N(ADDITIONAL_KEY_EXCHANGE)(link)]}  (link: more follow)
struct Rounds {
    KeyExchanges kex;
    std::size_t slot = 0;            // the round of the current exchange (0 = CREATE_CHILD_SA)
    std::vector<std::uint8_t> link;  // the link data of the next round
    std::vector<std::uint8_t> ker;   // responder: our KE data of this round

    std::optional<std::size_t> next() const { return kex.next(slot); }
    // SK(1) .. SK(n) in slot order, for SKEYSEED / KEYMAT.
    std::vector<const SecretBytes*> adds() const {
        std::vector<const SecretBytes*> out;
        for (std::size_t n = 1; n < kKeSlots; ++n)
            if (kex.method(n) != crypto::KeGroup::None) out.push_back(kex.secret(n));
        return out;
    }
    std::string round_name() const {
        return "IKE_FOLLOWUP_KE round " + std::to_string(slot) + " (ADDKE" + std::to_string(slot) + " " +
               ke_method_label(kex.method(slot)) + ")";
    }
    // Initiator: HDR, SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)}
    Step build_i(std::vector<Payload>& p) {
        auto kei = kex.build_i(slot);
        if (!kei) return Step::abort(round_name() + ": " + kei.error().why);
        p.push_back(ke_payload(kex.method(slot), std::move(kei).value()));
        p.push_back(wire::make_notify(wire::NotifyType::AdditionalKeyExchange, link));
        return Step::done();
    }
    // Initiator: the answer to round `slot` (after CREATE_CHILD_SA or an IKE_FOLLOWUP_KE); on
    // success `more` says whether another round follows (slot and link then set for it).
    std::optional<std::string> process_i(const Message& m, bool& more) {
        if (slot > 0) {
            if (const auto* err = m.first_error()) return round_name() + ": peer answered " + wire::to_string(err->type);
            const auto* ker = m.get<wire::KePayload>(PayloadType::Ke);
            if (!ker) return round_name() + ": response without KE payload";
            if (auto ok = kex.check(slot, ker->group, ker->data, false); !ok) return round_name() + ": " + ok.error().why;
            if (auto ok = kex.process_i(slot, ker->data); !ok) return round_name() + ": " + ok.error().why;
        }
        more = false;
        if (const auto n = next()) {
            const auto* l = m.notify(wire::NotifyType::AdditionalKeyExchange);
            if (!l || l->data.empty()) return "ADDKE" + std::to_string(*n) + " negotiated but no N(ADDITIONAL_KEY_EXCHANGE) to continue with";
            link = l->data;
            slot = *n;
            more = true;
        }
        return std::nullopt;
    }
    // Responder: the IKE_FOLLOWUP_KE request of the next round.
    Step process_r(const Message& m) {
        const auto n = next();
        if (!n) return Step::failed(wire::NotifyType::StateNotFound, "no IKE_FOLLOWUP_KE round pending");
        slot = *n;
        const auto* kei = m.get<wire::KePayload>(PayloadType::Ke);
        if (auto ok = kex.check(slot, kei->group, kei->data, true); !ok)
            return Step::failed(wire::NotifyType::InvalidSyntax, round_name() + ": " + ok.error().why);
        auto r = kex.process_r(slot, kei->data);
        if (!r) return Step::failed(r.error().notify, round_name() + ": " + r.error().why);
        ker = std::move(r).value();
        return Step::done();
    }
    // Responder: when the next round is a QKD round, moves to it and gives the key_ID the
    // initiator's KEi names (the task then asks the daemon for that key and waits), or the
    // Failed step for a KE payload that is missing or not a key_ID; nullopt for other methods.
    std::optional<std::variant<std::array<std::uint8_t, 16>, Step>> qkd_key_id_r(const Message& m) {
        const auto n = next();
        if (!n || !kex.is_qkd(*n)) return std::nullopt;
        slot = *n;
        const auto* kei = m.get<wire::KePayload>(PayloadType::Ke);
        if (!kei) return Step::failed(wire::NotifyType::InvalidSyntax, round_name() + ": request without KE payload");
        if (auto ok = kex.check(slot, kei->group, kei->data, true); !ok)
            return Step::failed(wire::NotifyType::InvalidSyntax, round_name() + ": " + ok.error().why);
        std::array<std::uint8_t, 16> id{};
        std::copy(kei->data.begin(), kei->data.end(), id.begin());
        return id;
    }
    // Responder: KEr(n) [N(ADDITIONAL_KEY_EXCHANGE)(link)] of the round just processed.
    void build_r(std::vector<Payload>& p) const {
        p.push_back(ke_payload(kex.method(slot), ker));
        if (next()) p.push_back(wire::make_notify(wire::NotifyType::AdditionalKeyExchange, link));
    }
};

// An error notify answering our CREATE_CHILD_SA request: retry with the KE method the responder
// asks for (INVALID_KE_PAYLOAD, RFC 7296 1.3) or after a short random delay (2.25).
Step on_error(Engine::Impl& e, IkeSa& sa, const Task& spec, ChildSa* old, const wire::NotifyPayload& err);

}  // namespace qkd::ike::create_child
