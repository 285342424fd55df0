#pragma once
// Conversions at the layer boundaries the daemon owns:
//   config GatewayEntry      -> qkd::ike::GatewayConfig  (proposals parsed by the IKE layer)
//   qkd::ike::ChildSaKeys    -> qkd::dp::SaSpec pair + qkd::dp::PolicySpec list
//   engine info structs      -> the JSON the control socket returns (and qkdgate prints)
#include <nlohmann/json.hpp>

#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/daemon/config.hpp"
#include "qkd/daemon/error.hpp"
#include "qkd/dataplane/dataplane.hpp"
#include "qkd/ike/engine.hpp"

namespace qkd::daemon {

Result<ike::GatewayConfig, DaemonError> to_gateway_config(const GatewayEntry& g, const DaemonSettings& d);

struct SaPair {
    dp::SaSpec in, out;
};
struct SaConvertOptions {
    std::uint32_t reqid = 1;
    bool kernel_lifetimes = false;  // pass soft/hard lifetimes (xfrm); userspace SAs are timed by the engine
};
Result<SaPair, DaemonError> to_sa_pair(const ike::ChildSaKeys& k, const SaConvertOptions& opt);
// One policy per (local_ts, remote_ts) pair, IPv4 prefixes only.
Result<std::vector<dp::PolicySpec>, DaemonError> to_policies(const ike::ChildSaKeys& k, std::uint32_t reqid);
// An IKE traffic selector range as a prefix (fails when the range is not a CIDR block).
Result<dp::IpPrefix, DaemonError> ts_to_prefix(const ike::TrafficSelector& ts);
dp::IpAddress to_dp(const ike::IpAddr& a);

nlohmann::json ike_sa_json(const ike::IkeSaInfo& sa);
// The QKD rules of a gateway (gateway_config.cpp): "" when its qkd section and proposals agree
// and this qkdgated can enforce them, else why not.
std::string check_qkd(const GatewayEntry& g, const std::vector<ike::IkeProposal>& ike, const std::vector<ike::EspProposal>& esp);
nlohmann::json child_sa_json(const ike::ChildSaInfo& sa, const dp::SaCounters* in, const dp::SaCounters* out);

}  // namespace qkd::daemon
