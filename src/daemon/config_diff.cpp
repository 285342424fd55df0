// Reload: old config vs new config, gateway by gateway (see config_diff.hpp).
#include "qkd/daemon/config_diff.hpp"

#include <tuple>

namespace qkd::daemon {

namespace {
bool same_qkd(const std::optional<QkdSettings>& a, const std::optional<QkdSettings>& b) {
    if (a.has_value() != b.has_value()) return false;
    if (!a) return true;
    return std::tie(a->profile, a->peer_sae_id, a->key_size, a->timeout, a->mode) ==
           std::tie(b->profile, b->peer_sae_id, b->key_size, b->timeout, b->mode);
}
}  // namespace

bool ike_settings_differ(const GatewayEntry& a, const GatewayEntry& b) {
    const bool same = std::tie(a.local_address, a.remote_address, a.local_port, a.remote_port, a.local_id, a.remote_id,
                               a.ike_proposals, a.esp_proposals, a.local_ts, a.remote_ts, a.ike_lifetime, a.ike_rekey_margin,
                               a.child_lifetime, a.child_rekey_margin, a.dpd_interval, a.force_encap) ==
                          std::tie(b.local_address, b.remote_address, b.local_port, b.remote_port, b.local_id, b.remote_id,
                                   b.ike_proposals, b.esp_proposals, b.local_ts, b.remote_ts, b.ike_lifetime, b.ike_rekey_margin,
                                   b.child_lifetime, b.child_rekey_margin, b.dpd_interval, b.force_encap) &&
                      same_qkd(a.qkd, b.qkd);
    // The PSK (the file's content, not its name) last, in constant time.
    return !same || !ct_equal(a.psk, b.psk);
}

bool keep_settings_differ(const GatewayEntry& a, const GatewayEntry& b) {
    return std::tie(a.start_action, a.dpd_action, a.close_action, a.keyingtries, a.retry_delay, a.retry_delay_max) !=
           std::tie(b.start_action, b.dpd_action, b.close_action, b.keyingtries, b.retry_delay, b.retry_delay_max);
}

GatewayDiff diff_gateways(const Config& old_cfg, const Config& new_cfg) {
    GatewayDiff d;
    for (const auto& g : old_cfg.gateways)
        if (!new_cfg.find(g.name)) d.removed.push_back(g.name);
    for (const auto& g : new_cfg.gateways) {
        const GatewayEntry* o = old_cfg.find(g.name);
        if (!o) d.added.push_back(g.name);
        else if (ike_settings_differ(*o, g)) d.changed.push_back(g.name);
        else if (keep_settings_differ(*o, g)) d.retuned.push_back(g.name);
        else d.unchanged.push_back(g.name);
    }
    return d;
}

std::vector<std::string> daemon_settings_needing_restart(const DaemonSettings& a, const DaemonSettings& b) {
    std::vector<std::string> out;
    if (a.control_socket != b.control_socket) out.push_back("control_socket");
    if (a.dataplane != b.dataplane) out.push_back("dataplane");
    if (a.ike_port != b.ike_port) out.push_back("ike_port");
    if (a.natt_port != b.natt_port) out.push_back("natt_port");
    if (a.tun_name != b.tun_name) out.push_back("tun_name");
    if (a.retransmit_timeout != b.retransmit_timeout) out.push_back("retransmit_timeout");
    if (a.retransmit_base != b.retransmit_base) out.push_back("retransmit_base");
    if (a.retransmit_tries != b.retransmit_tries) out.push_back("retransmit_tries");
    return out;
}

}  // namespace qkd::daemon
