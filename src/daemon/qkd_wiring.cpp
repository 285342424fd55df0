// qkdgated's QKD key source: one SAE client per [[qkd_profile]] that a gateway uses, created at
// start on the daemon's io_context (qkd_key_source.hpp).
#include <set>

#include "qkd/common/log.hpp"
#include "qkd/daemon/gateway_daemon.hpp"

namespace qkd::daemon {

Result<void, DaemonError> GatewayDaemon::start_qkd() {
    std::set<std::string> used;
    for (auto& g : cfg_.gateways)
        if (g.qkd) used.insert(g.qkd->profile);
    if (used.empty()) return {};
    // config.cpp read only the profile names; the SAE layer owns the [[qkd_profile]] tables.
    auto all = sae::load_profiles_file(cfg_.path);
    if (!all) return Err{DaemonError{Errc::config_value, all.error()}};
    std::vector<sae::Profile> profiles;
    for (auto& p : *all)
        if (used.count(p.name)) profiles.push_back(std::move(p));
    auto src = QkdKeySource::create(io_.get_executor(), std::move(profiles));
    if (!src) return Err{DaemonError{Errc::config_value, src.error()}};
    qkd_ = std::move(*src);
    for (auto& n : qkd_->profile_names()) spdlog::info("qkd profile \"{}\": SAE client ready", n);
    return {};
}

}  // namespace qkd::daemon
