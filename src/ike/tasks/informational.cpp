// INFORMATIONAL (RFC 7296 1.4): DELETE of IKE and child SAs (1.4.1) and the liveness check (2.4).
//
//   HDR, SK {[N,] [D,] [CP,] ...}  -->
//                    <--  HDR, SK {[N,] [D,] [CP], ...}
#include <algorithm>

#include "../src/impl.hpp"

namespace qkd::ike {

using wire::ExchangeType;

void Engine::Impl::begin_informational(IkeSa& sa, Task& task) {
    std::vector<Payload> p;
    switch (task.kind) {
        case TaskKind::DeleteIke:
            // HDR, SK {D(IKE)} -->
            p.push_back({PayloadType::Delete, false, wire::DeletePayload{wire::ProtocolId::Ike, {}}});
            transition(sa, SaState::Deleting);
            break;
        case TaskKind::DeleteChild: {
            // HDR, SK {D(ESP, SPI in)} -->
            auto it = std::find_if(sa.children.begin(), sa.children.end(), [&](const ChildSa& c) { return c.id == task.child_id; });
            if (it == sa.children.end()) return;
            it->deleting = true;
            p.push_back({PayloadType::Delete, false, wire::DeletePayload{wire::ProtocolId::Esp, task.delete_spis}});
            break;
        }
        default:
            // HDR, SK {} -->   (liveness check)
            break;
    }
    send_request(sa, std::move(task), ExchangeType::Informational, p);
}

void Engine::Impl::process_informational_request(IkeSa& sa, const Message& m) {
    const std::uint32_t mid = m.header.message_id;
    std::vector<std::uint32_t> ours;
    bool delete_ike = false;
    for (const auto& p : m.payloads) {
        const auto* d = std::get_if<wire::DeletePayload>(&p.body);
        if (!d) continue;
        if (d->protocol == wire::ProtocolId::Ike) {
            delete_ike = true;
            continue;
        }
        if (d->protocol != wire::ProtocolId::Esp) continue;
        for (auto spi : d->spis) {
            auto it = std::find_if(sa.children.begin(), sa.children.end(), [&](const ChildSa& c) { return c.spi_out == spi; });
            if (it == sa.children.end()) continue;
            // RFC 7296 1.4.1: if we already asked to delete this SA, the response does not list it.
            const bool crossing = sa.active && sa.active->task.kind == TaskKind::DeleteChild && sa.active->task.child_id == it->id;
            if (!crossing) ours.push_back(it->spi_in);
            remove_child(sa, it->id, it->installed);
        }
    }
    if (delete_ike) {
        // <-- HDR, SK {}
        send_response(sa, ExchangeType::Informational, mid, {});
        destroy(sa, sa.rekeyed_to ? "replaced by the rekeyed IKE SA" : "deleted by peer", false);
        return;
    }
    std::vector<Payload> reply;
    if (!ours.empty()) reply.push_back({PayloadType::Delete, false, wire::DeletePayload{wire::ProtocolId::Esp, ours}});
    send_response(sa, ExchangeType::Informational, mid, reply);
}

void Engine::Impl::process_informational_response(IkeSa& sa, Task& task, const Message&) {
    switch (task.kind) {
        case TaskKind::DeleteIke:
            destroy(sa, sa.rekeyed_to ? "replaced by the rekeyed IKE SA" : "deleted", false);
            break;
        case TaskKind::DeleteChild:
            for (auto& c : sa.children)
                if (c.id == task.child_id) {
                    remove_child(sa, c.id, c.installed);
                    break;
                }
            break;
        default:
            break;  // liveness confirmed: last_rx was updated on receipt
    }
}

}  // namespace qkd::ike
