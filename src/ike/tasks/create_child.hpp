#pragma once
// What the two CREATE_CHILD_SA tasks (child_rekey.cpp, ike_rekey.cpp) share.
#include <algorithm>

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

// An error notify answering our CREATE_CHILD_SA request: retry with the KE method the responder
// asks for (INVALID_KE_PAYLOAD, RFC 7296 1.3) or after a short random delay (2.25).
Step on_error(Engine::Impl& e, IkeSa& sa, const Task& spec, ChildSa* old, const wire::NotifyPayload& err);

}  // namespace qkd::ike::create_child
