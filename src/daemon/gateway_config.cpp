// Config entry -> engine GatewayConfig. Proposal strings are parsed by the IKE layer; errors name
// the gateway and quote the string.
#include "qkd/daemon/convert.hpp"

#include <algorithm>

namespace qkd::daemon {

namespace {
using Fail = Err<DaemonError>;

ike::IpAddr v4(std::uint32_t a) {
    return ike::IpAddr::v4(static_cast<std::uint8_t>(a >> 24), static_cast<std::uint8_t>(a >> 16),
                           static_cast<std::uint8_t>(a >> 8), static_cast<std::uint8_t>(a));
}
}  // namespace

// A qkd section is a promise that no SA comes up without a QKD key (mode = require); what this
// qkdgated cannot keep is refused at start rather than run on Diffie-Hellman and the PSK alone
// (a security setting that is parsed and ignored fails open). Empty = fine.
std::string check_qkd(const GatewayEntry& g, const std::vector<ike::IkeProposal>& ike,
                      const std::vector<ike::EspProposal>& esp) {
    using crypto::KeGroup;
    auto has = [](const std::vector<KeGroup>& v, KeGroup k) { return std::find(v.begin(), v.end(), k) != v.end(); };
    bool any_qkd = false;
    for (const auto& p : ike)
        for (const auto& slot : p.addke) any_qkd |= has(slot, KeGroup::Qkd);
    for (const auto& p : esp) {
        if (has(p.ke, KeGroup::Qkd))
            return "esp_proposals \"" + g.esp_proposals + "\" name the QKD method as the first key exchange; it is "
                   "supported as an additional one (e.g. aes256gcm16-ecp521-ke1_qkd)";
        for (const auto& slot : p.addke) any_qkd |= has(slot, KeGroup::Qkd);
    }
    if (!g.qkd) {
        if (any_qkd)
            return "ike_proposals or esp_proposals name the QKD method but the gateway has no qkd section; add "
                   "qkd = { profile = \"...\", peer_sae_id = \"...\" }";
        return {};
    }
    const std::string what = "has a qkd section (profile \"" + g.qkd->profile + "\", peer_sae_id \"" + g.qkd->peer_sae_id + "\")";
    if (g.qkd->mode == QkdMode::prefer)
        return what + " with mode = \"prefer\", which this qkdgated cannot honour yet (a NONE fallback round when the KME "
                      "fails); use mode = \"require\" (no QKD key, no SA)";
    if (g.qkd->transform_id != static_cast<std::uint16_t>(KeGroup::Qkd))
        return what + " with transform_id = " + std::to_string(g.qkd->transform_id) + "; this qkdgated speaks the QKD method as " +
               std::to_string(static_cast<unsigned>(KeGroup::Qkd)) + " only (the QURSA plugin's ID)";
    // require: every proposal must carry a QKD round that cannot be negotiated away (no ke<n>_none
    // beside it), or a peer could pick an SA without a QKD key.
    for (std::size_t i = 0; i < ike.size(); ++i) {
        bool required = false;
        for (const auto& slot : ike[i].addke) required |= has(slot, KeGroup::Qkd) && !has(slot, KeGroup::None);
        if (!required)
            return what + " (mode = require), but IKE proposal " + std::to_string(i + 1) + " of \"" + g.ike_proposals +
                   "\" has no mandatory QKD round; add ke<n>_qkd (e.g. aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_qkd)";
    }
    return {};
}

Result<ike::GatewayConfig, DaemonError> to_gateway_config(const GatewayEntry& g, const DaemonSettings& d) {
    auto bad = [&](std::string m) { return Fail{DaemonError{Errc::config_value, "gateway '" + g.name + "': " + std::move(m)}}; };
    ike::GatewayConfig c;
    c.name = g.name;
    c.local = ike::Endpoint{v4(g.local_address), g.local_port != 500 ? g.local_port : d.ike_port};
    c.remote = ike::Endpoint{v4(g.remote_address), g.remote_port};
    auto lid = ike::Identity::parse(g.local_id);
    if (!lid) return bad("local_id \"" + g.local_id + "\" is not an identity, expected an FQDN, an IPv4 address or user@host");
    auto rid = ike::RemoteIdentity::parse(g.remote_id);
    if (!rid) return bad("remote_id: " + rid.error().message);
    c.local_id = *lid;
    c.remote_id = std::move(*rid);
    c.psk = g.psk.clone();
    auto ikep = ike::parse_ike_proposals(g.ike_proposals);
    if (!ikep) return bad("ike_proposals \"" + g.ike_proposals + "\": " + ikep.error().message);
    c.ike_proposals = std::move(*ikep);
    auto espp = ike::parse_esp_proposals(g.esp_proposals);
    if (!espp) return bad("esp_proposals \"" + g.esp_proposals + "\": " + espp.error().message);
    if (auto q = check_qkd(g, c.ike_proposals, *espp); !q.empty()) return bad(std::move(q));
    c.esp_proposals = std::move(*espp);
    for (auto& t : g.local_ts) {
        auto ts = ike::TrafficSelector::parse_cidr(t.to_string());
        if (!ts) return bad("local_ts " + t.to_string() + " was refused by the IKE layer");
        c.local_ts.push_back(*ts);
    }
    for (auto& t : g.remote_ts) {
        auto ts = ike::TrafficSelector::parse_cidr(t.to_string());
        if (!ts) return bad("remote_ts " + t.to_string() + " was refused by the IKE layer");
        c.remote_ts.push_back(*ts);
    }
    c.ike_lifetime = g.ike_lifetime;
    c.ike_rekey_margin = g.ike_rekey_margin;
    c.child_lifetime = g.child_lifetime;
    c.child_rekey_margin = g.child_rekey_margin;
    c.dpd_interval = g.dpd_interval;
    c.auto_start = g.start_action == StartAction::start;
    c.force_encap = g.force_encap;
    return c;
}

}  // namespace qkd::daemon
