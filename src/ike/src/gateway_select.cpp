// Which gateway (configuration) an IKE SA we respond to belongs to. IKE_SA_INIT carries no
// identities, so the first choice is by the peer's address and is provisional; the IKE_AUTH
// request names the peer (IDi) and optionally us (IDr), and the final choice is made there, as
// strongSwan picks its peer config in IKE_AUTH. Precedence (documented in src/ike/README.md):
//   1. the best IDi match of remote_id: an exact entry, then the pattern with the most literal
//      characters, then "%any" (IdMatch in qkd/ike/identity.hpp);
//   2. a gateway whose remote_address is the peer's over one with 0.0.0.0 / :: (any);
//   3. the gateway name: the alphabetically first wins a tie.
// Every candidate must accept IDr, when sent, as its local_id (RFC 7296 3.5) and the IKE proposal
// already negotiated in IKE_SA_INIT with the provisional gateway.
#include <algorithm>

#include "impl.hpp"

namespace qkd::ike {

namespace {

// 2: the gateway names this address; 1: it accepts any address of the family; 0: neither.
int address_rank(const GatewayConfig& gw, const IpAddr& remote) {
    if (gw.remote.addr == remote) return 2;
    const auto& b = gw.remote.addr.bytes;
    const bool unspecified = std::all_of(b.begin(), b.end(), [](auto x) { return x == 0; });
    return unspecified && gw.remote.addr.family == remote.family ? 1 : 0;
}

bool accepts_ike(const GatewayConfig& gw, const IkeSa& sa) {
    for (const auto& p : gw.ike_proposals)
        if (std::find(p.encr.begin(), p.encr.end(), sa.encr) != p.encr.end() &&
            std::find(p.prf.begin(), p.prf.end(), sa.prf_alg) != p.prf.end() &&
            std::find(p.ke.begin(), p.ke.end(), sa.group) != p.ke.end())
            return true;
    return false;
}

std::string quoted(const Identity& id) { return "\"" + id.str() + "\""; }

}  // namespace

const GatewayConfig* Engine::Impl::gateway_for_peer(const Endpoint&, const Endpoint& remote) const {
    const GatewayConfig* best = nullptr;
    int best_rank = 0;
    for (const auto& [name, gw] : gateways) {  // by name: the first of equal rank wins
        const int r = address_rank(gw, remote.addr);
        if (r > best_rank) {
            best = &gw;
            best_rank = r;
        }
    }
    return best;
}

Engine::Impl::AuthChoice Engine::Impl::gateway_for_auth(const IkeSa& sa, const Identity& idi, const Identity* idr) const {
    struct Rank {
        IdMatch id;
        int address = 0;
        auto operator<=>(const Rank&) const = default;
    };
    const GatewayConfig* best = nullptr;
    Rank best_rank;
    const GatewayConfig* accepts_idi = nullptr;  // for the reason when nothing fits
    const GatewayConfig* accepts_ids = nullptr;
    for (const auto& [name, gw] : gateways) {
        const int address = address_rank(gw, sa.remote.addr);
        if (address == 0) continue;
        const auto m = gw.remote_id.match(idi);
        if (!m) continue;
        if (!accepts_idi) accepts_idi = &gw;
        // RFC 7296 3.5: IDr names the responder identity the initiator wants to talk to.
        if (idr && !same_identity(*idr, gw.local_id)) continue;
        if (!accepts_ids) accepts_ids = &gw;
        if (gw.name != sa.gateway && !accepts_ike(gw, sa)) continue;
        const Rank r{*m, address};
        if (!best || r > best_rank) {
            best = &gw;
            best_rank = r;
        }
    }
    if (best) return {best, {}};
    if (!accepts_idi) {
        const GatewayConfig* first = gateway(sa.gateway);
        return {nullptr, "no gateway accepts peer identity " + quoted(idi) +
                             (first ? " (gateway " + first->name + " expects \"" + first->remote_id.str() + "\")" : "")};
    }
    if (!accepts_ids)
        return {nullptr, "IDr " + quoted(*idr) + " is not our identity (gateway " + accepts_idi->name + " is " +
                             quoted(accepts_idi->local_id) + ")"};
    return {nullptr, "gateway " + accepts_ids->name + " accepts peer identity " + quoted(idi) +
                         " but not the IKE proposal negotiated with gateway " + sa.gateway + " (" +
                         ike_proposal_string(sa.encr, sa.prf_alg, sa.group) + ")"};
}

}  // namespace qkd::ike
