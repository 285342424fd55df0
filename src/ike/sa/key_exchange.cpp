#include "key_exchange.hpp"

namespace qkd::ike {

namespace {
std::string method_str(std::uint16_t m) { return std::to_string(m); }
}  // namespace

void KeyExchanges::set_method(std::size_t slot, crypto::KeGroup g) {
    methods_.at(slot) = g;
    ours_.at(slot).reset();
    secrets_.at(slot).reset();
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
    // Exact length per direction, the FIPS 203 7.2 modulus check of an ML-KEM encapsulation key,
    // range / on-curve for MODP / ECP: all without a key generation.
    if (auto ok = crypto::check_peer_data(want, data, from_initiator); !ok)
        return Err{KeFailure{wire::NotifyType::InvalidSyntax, "KE data of method " + method_str(method) + ": " + ok.error().message}};
    return {};
}

Result<std::vector<std::uint8_t>, KeFailure> KeyExchanges::build_i(std::size_t slot) {
    auto& ours = ours_.at(slot);
    if (!ours) {
        auto ke = crypto::KeyExchange::generate(methods_.at(slot));
        if (!ke) return Err{KeFailure{wire::NotifyType::NoProposalChosen, "key generation: " + ke.error().message}};
        ours.emplace(std::move(ke).value());
    }
    return std::vector<std::uint8_t>(ours->public_value().begin(), ours->public_value().end());
}

Result<std::vector<std::uint8_t>, KeFailure> KeyExchanges::process_r(std::size_t slot, std::span<const std::uint8_t> peer) {
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
    auto& ours = ours_.at(slot);
    if (!ours) return Err{KeFailure{wire::NotifyType::InvalidSyntax, "no KE data was sent for this round"}};
    auto sk = ours->derive(peer);
    if (!sk) return Err{KeFailure{wire::NotifyType::InvalidSyntax, "responder's KE data: " + sk.error().message}};
    secrets_.at(slot).emplace(std::move(sk).value());
    ours.reset();
    return {};
}

}  // namespace qkd::ike
