#pragma once
// What a reload changes: the gateways of the running config against those of the new one.
// Pure; the daemon applies the result (gateway_reload.cpp).
#include <string>
#include <vector>

#include "qkd/daemon/config.hpp"

namespace qkd::daemon {

struct GatewayDiff {
    std::vector<std::string> added;      // only in the new config: added (and started if start_action = "start")
    std::vector<std::string> removed;    // only in the old one: terminated (DELETE sent) and removed
    std::vector<std::string> changed;    // a setting the IKE SA depends on differs: re-established
    std::vector<std::string> retuned;    // only start_action / dpd_action / close_action / keyingtries /
                                         // retry_delay(_max) differ: the SAs stay, the new policy applies
    std::vector<std::string> unchanged;  // untouched: their SAs stay and carry on
};

// Gateways are matched by name; the lists follow the order of the new config (removed: the old).
GatewayDiff diff_gateways(const Config& old_cfg, const Config& new_cfg);

// Settings of [daemon] that cannot change while the daemon runs (sockets, data plane, engine
// options): their names, empty when only log_level (applied at once) or nothing differs.
std::vector<std::string> daemon_settings_needing_restart(const DaemonSettings& a, const DaemonSettings& b);

// Does anything the IKE SA depends on differ (the PSK compared in constant time)?
bool ike_settings_differ(const GatewayEntry& a, const GatewayEntry& b);
// Do the keep-up settings differ (start_action, dpd_action, close_action, keyingtries, retry_*)?
bool keep_settings_differ(const GatewayEntry& a, const GatewayEntry& b);

}  // namespace qkd::daemon
