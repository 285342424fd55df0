// Config entry -> engine GatewayConfig. Proposal strings are parsed by the IKE layer; errors name
// the gateway and quote the string.
#include "qkd/daemon/convert.hpp"

namespace qkd::daemon {

namespace {
using Fail = Err<DaemonError>;

ike::IpAddr v4(std::uint32_t a) {
    return ike::IpAddr::v4(static_cast<std::uint8_t>(a >> 24), static_cast<std::uint8_t>(a >> 16),
                           static_cast<std::uint8_t>(a >> 8), static_cast<std::uint8_t>(a));
}
}  // namespace

Result<ike::GatewayConfig, DaemonError> to_gateway_config(const GatewayEntry& g, const DaemonSettings& d) {
    auto bad = [&](std::string m) { return Fail{DaemonError{Errc::config_value, "gateway '" + g.name + "': " + std::move(m)}}; };
    // A qkd section is a promise that no SA comes up without a QKD key. Until the engine mixes QKD
    // keys into the key schedule, such a gateway is refused rather than run on DH and PSK alone
    // (a security setting that is parsed and ignored fails open).
    if (g.qkd)
        return bad("has a qkd section (profile \"" + g.qkd->profile + "\", peer_sae_id \"" + g.qkd->peer_sae_id +
                   "\"), but this qkdgated cannot yet mix QKD keys into IKEv2; refusing to bring the tunnel up "
                   "without the QKD key it requires. Remove the qkd section to run on Diffie-Hellman and the PSK alone");
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
