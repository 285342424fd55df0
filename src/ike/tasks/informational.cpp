// INFORMATIONAL (RFC 7296 1.4): DELETE of IKE and child SAs (1.4.1) and the liveness check (2.4).
//
//   HDR, SK {[N,] [D,] [CP,] ...}  -->
//                    <--  HDR, SK {[N,] [D,] [CP], ...}
#include <algorithm>

#include "task.hpp"

namespace qkd::ike {

using wire::ExchangeType;

namespace {

// One class for the three kinds we start (DeleteIke, DeleteChild, Dpd) and for any request.
class Informational final : public ExchangeTask {
public:
    Informational(Engine::Impl& e, Task spec) : ExchangeTask(e, std::move(spec)) {}
    ExchangeType exchange() const override { return ExchangeType::Informational; }

    Step build_i(IkeSa& sa, std::vector<Payload>& p) override {
        switch (spec_.kind) {
            case TaskKind::DeleteIke:
                // HDR, SK {D(IKE)} -->
                p.push_back({PayloadType::Delete, false, wire::DeletePayload{wire::ProtocolId::Ike, {}}});
                transition(sa, SaState::Deleting);
                break;
            case TaskKind::DeleteChild: {
                // HDR, SK {D(ESP, SPI in)} -->
                auto it = std::find_if(sa.children.begin(), sa.children.end(), [&](const ChildSa& c) { return c.id == spec_.child_id; });
                if (it == sa.children.end()) return Step::abort("child SA already gone");
                it->deleting = true;
                p.push_back({PayloadType::Delete, false, wire::DeletePayload{wire::ProtocolId::Esp, spec_.delete_spis}});
                break;
            }
            default:
                // HDR, SK {} -->   (liveness check)
                break;
        }
        return Step::done();
    }

    Step process_i(IkeSa& sa, const Message&) override {
        switch (spec_.kind) {
            case TaskKind::DeleteIke:
                e_.destroy(sa, sa.rekeyed_to ? "replaced by the rekeyed IKE SA" : "deleted", false);
                break;
            case TaskKind::DeleteChild:
                for (auto& c : sa.children)
                    if (c.id == spec_.child_id) {
                        e_.remove_child(sa, c.id, c.installed);
                        break;
                    }
                break;
            default:
                break;  // liveness confirmed: last_rx was updated on receipt
        }
        return Step::done();
    }

    Step process_r(IkeSa& sa, const Message& m) override {
        for (const auto& p : m.payloads) {
            const auto* d = std::get_if<wire::DeletePayload>(&p.body);
            if (!d) continue;
            if (d->protocol == wire::ProtocolId::Ike) {
                delete_ike_ = true;
                continue;
            }
            if (d->protocol != wire::ProtocolId::Esp) continue;
            for (auto spi : d->spis) {
                auto it = std::find_if(sa.children.begin(), sa.children.end(), [&](const ChildSa& c) { return c.spi_out == spi; });
                if (it == sa.children.end()) continue;
                // RFC 7296 1.4.1: if we already asked to delete this SA, the response does not list it.
                const bool crossing = sa.active && !sa.active->waiting && sa.active->spec().kind == TaskKind::DeleteChild &&
                                      sa.active->spec().child_id == it->id;
                if (!crossing) ours_.push_back(it->spi_in);
                e_.remove_child(sa, it->id, it->installed);
            }
        }
        return Step::done();
    }

    // <-- HDR, SK {[D(ESP, our SPIs)]}   (HDR, SK {} for a DELETE of the IKE SA)
    Step build_r(IkeSa&, std::vector<Payload>& p) override {
        if (!delete_ike_ && !ours_.empty()) p.push_back({PayloadType::Delete, false, wire::DeletePayload{wire::ProtocolId::Esp, ours_}});
        return Step::done();
    }

    void after_r(IkeSa& sa, const Step&) override {
        if (delete_ike_) e_.destroy(sa, sa.rekeyed_to ? "replaced by the rekeyed IKE SA" : "deleted by peer", false);
    }

private:
    bool delete_ike_ = false;
    std::vector<std::uint32_t> ours_;
};

}  // namespace

std::unique_ptr<ExchangeTask> make_informational(Engine::Impl& e, Task spec) {
    return std::make_unique<Informational>(e, std::move(spec));
}

std::unique_ptr<ExchangeTask> make_initiator_task(Engine::Impl& e, Task spec) {
    switch (spec.kind) {
        case TaskKind::IkeInit: return make_ike_init(e);
        case TaskKind::IkeIntermediate: return make_ike_intermediate(e);
        case TaskKind::IkeAuth: return make_ike_auth(e);
        case TaskKind::ChildRekey: return make_child_rekey(e, std::move(spec));
        case TaskKind::IkeRekey: return make_ike_rekey(e, std::move(spec));
        default: return make_informational(e, std::move(spec));
    }
}

std::unique_ptr<ExchangeTask> make_responder_task(Engine::Impl& e, const Message& m) {
    switch (m.header.exchange) {
        case ExchangeType::IkeIntermediate: return make_ike_intermediate(e);
        case ExchangeType::IkeAuth: return make_ike_auth(e);
        case ExchangeType::Informational: return make_informational(e, Task{TaskKind::Dpd});
        case ExchangeType::CreateChildSa: {
            // An SA payload for protocol IKE rekeys the IKE SA (RFC 7296 1.3.2), else a child SA.
            const auto* sai = m.get<wire::SaPayload>(PayloadType::Sa);
            const bool ike = sai && !sai->proposals.empty() && sai->proposals.front().protocol == wire::ProtocolId::Ike;
            return ike ? make_ike_rekey(e, Task{TaskKind::IkeRekey}) : make_child_rekey(e, Task{TaskKind::ChildRekey});
        }
        default: return nullptr;
    }
}

}  // namespace qkd::ike
