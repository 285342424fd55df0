// CREATE_CHILD_SA (RFC 7296 1.3): what child SA rekey (child_rekey.cpp) and IKE SA rekey
// (ike_rekey.cpp) do alike when the responder answers with an error.
#include "create_child.hpp"

namespace qkd::ike::create_child {

Step on_error(Engine::Impl& e, IkeSa& sa, const Task& spec, ChildSa* old, const wire::NotifyPayload& err) {
    const GatewayConfig* gw = e.gateway(sa.gateway);
    if (old) old->rekeying = false;
    if (err.type == wire::NotifyType::InvalidKePayload && err.data.size() == 2 && spec.attempts < kMaxInitRetries) {
        // RFC 7296 1.3: retry with the group the responder wants, if we offered it.
        const auto g = static_cast<crypto::KeGroup>(err.data[0] << 8 | err.data[1]);
        bool offered = false;
        if (spec.kind == TaskKind::ChildRekey)
            for (const auto& p : gw->esp_proposals) offered |= std::find(p.ke.begin(), p.ke.end(), g) != p.ke.end();
        else
            for (const auto& p : gw->ike_proposals) offered |= std::find(p.ke.begin(), p.ke.end(), g) != p.ke.end();
        if (offered) {
            Task retry{spec.kind, spec.child_id};
            retry.ke_group = g;
            retry.attempts = spec.attempts + 1;
            sa.queue.push_front(std::move(retry));
            return Step::abort("INVALID_KE_PAYLOAD: retrying");
        }
    }
    // TEMPORARY_FAILURE (2.25) and the rest: try again after a short, random delay.
    std::uint8_t r;
    e.rng.fill(std::span(&r, 1));
    const auto later = e.now() + Seconds{2 + r % 8};
    if (old && err.type != wire::NotifyType::ChildSaNotFound) old->rekey_at = later;
    if (spec.kind == TaskKind::IkeRekey) sa.rekey_at = later;
    return Step::abort("peer answered CREATE_CHILD_SA with " + wire::to_string(err.type));
}

}  // namespace qkd::ike::create_child
