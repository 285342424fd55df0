#include "key_exchange.hpp"

namespace qkd::ike {

namespace {
std::string method_str(std::uint16_t m) { return std::to_string(m); }
}  // namespace

void KeyExchanges::set_method(std::size_t slot, crypto::KeGroup g) {
    methods_.at(slot) = g;
    ours_.at(slot).reset();
    secrets_.at(slot).reset();
    qkd_.at(slot).reset();
}

void KeyExchanges::set_qkd_key(std::size_t slot, const std::array<std::uint8_t, 16>& key_id, SecretBytes key) {
    qkd_.at(slot).emplace(QkdKey{key_id, std::move(key)});
}

std::optional<std::size_t> KeyExchanges::next(std::size_t slot) const {
    for (std::size_t s = slot + 1; s < kKeSlots; ++s)
        if (methods_[s] != crypto::KeGroup::None) return s;
    return std::nullopt;
}

Result<void, KeFailure> KeyExchanges::check(std::size_t slot, std::uint16_t method, std::span<const std::uint8_t> data,
                                            bool from_initiator) const {
    const crypto::KeGroup want = methods_.at(slot);
    if (method != static_cast<std::uint16_t>(want))
        return Err{KeFailure{wire::NotifyType::InvalidKePayload,
                             "KE method " + method_str(method) + ", expected " + method_str(static_cast<std::uint16_t>(want))}};
    // QURSA wire format: the initiator sends the 16-byte binary UUID of the key_ID, the
    // responder nothing.
    if (want == crypto::KeGroup::Qkd) {
        const std::size_t len = from_initiator ? 16 : 0;
        if (data.size() != len)
            return Err{KeFailure{wire::NotifyType::InvalidSyntax, "KE data of the QKD method has " + std::to_string(data.size()) +
                                                                      " bytes, expected " + std::to_string(len) +
                                                                      (from_initiator ? " (a binary key_ID)" : " (none)")}};
        return {};
    }
    // Exact length per direction, the FIPS 203 7.2 modulus check of an ML-KEM encapsulation key,
    // range / on-curve for MODP / ECP: all without a key generation.
    if (auto ok = crypto::check_peer_data(want, data, from_initiator); !ok)
        return Err{KeFailure{wire::NotifyType::InvalidSyntax, "KE data of method " + method_str(method) + ": " + ok.error().message}};
    return {};
}

Result<std::vector<std::uint8_t>, KeFailure> KeyExchanges::build_i(std::size_t slot) {
    if (is_qkd(slot)) {
        const auto& q = qkd_.at(slot);
        if (!q) return Err{KeFailure{wire::NotifyType::NoProposalChosen, "no QKD key for this round"}};
        return std::vector<std::uint8_t>(q->key_id.begin(), q->key_id.end());
    }
    auto& ours = ours_.at(slot);
    if (!ours) {
        auto ke = crypto::KeyExchange::generate(methods_.at(slot));
        if (!ke) return Err{KeFailure{wire::NotifyType::NoProposalChosen, "key generation: " + ke.error().message}};
        ours.emplace(std::move(ke).value());
    }
    return std::vector<std::uint8_t>(ours->public_value().begin(), ours->public_value().end());
}

Result<std::vector<std::uint8_t>, KeFailure> KeyExchanges::process_r(std::size_t slot, std::span<const std::uint8_t> peer) {
    if (is_qkd(slot)) {
        // The key fetched by the key_ID in `peer` (checked by check()); our KE data is empty.
        auto& q = qkd_.at(slot);
        if (!q) return Err{KeFailure{wire::NotifyType::NoProposalChosen, "no QKD key for the initiator's key_ID"}};
        secrets_.at(slot).emplace(std::move(q->key));
        return std::vector<std::uint8_t>{};
    }
    // DH: generate + derive; ML-KEM: Encaps to the initiator's ek (crypto::KeyExchange::respond).
    auto r = crypto::KeyExchange::respond(methods_.at(slot), peer);
    if (!r) {
        const bool bad_input = r.error().code == crypto::CryptoErrc::InvalidPeerValue;
        return Err{KeFailure{bad_input ? wire::NotifyType::InvalidSyntax : wire::NotifyType::NoProposalChosen,
                             "initiator's KE data: " + r.error().message}};
    }
    secrets_.at(slot).emplace(std::move(r->shared_secret));
    return std::move(r->public_data);
}

Result<void, KeFailure> KeyExchanges::process_i(std::size_t slot, std::span<const std::uint8_t> peer) {
    if (is_qkd(slot)) {
        auto& q = qkd_.at(slot);
        if (!q) return Err{KeFailure{wire::NotifyType::InvalidSyntax, "no QKD key was sent for this round"}};
        if (!peer.empty()) return Err{KeFailure{wire::NotifyType::InvalidSyntax, "responder's QKD KE data is not empty"}};
        secrets_.at(slot).emplace(std::move(q->key));
        return {};
    }
    auto& ours = ours_.at(slot);
    if (!ours) return Err{KeFailure{wire::NotifyType::InvalidSyntax, "no KE data was sent for this round"}};
    auto sk = ours->derive(peer);
    if (!sk) return Err{KeFailure{wire::NotifyType::InvalidSyntax, "responder's KE data: " + sk.error().message}};
    secrets_.at(slot).emplace(std::move(sk).value());
    ours.reset();
    return {};
}

}  // namespace qkd::ike
