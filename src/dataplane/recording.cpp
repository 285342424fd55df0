#include "qkd/dataplane/recording.hpp"

#include <algorithm>
#include <cstdio>

namespace qkd::dp {

namespace {
std::string hex_spi(std::uint32_t spi) {
    char b[16];
    std::snprintf(b, sizeof b, "0x%08x", spi);
    return b;
}
bool same_sa(const SaId& a, const SaId& b) {
    return a.direction == b.direction && a.spi == b.spi;
}
}  // namespace

DpResult<void> RecordingDataPlane::install_sa(SaSpec spec) {
    if (spec.spi == 0)
        return Err{DpError{DpErrc::invalid_argument, "SPI 0 is reserved: expected a non-zero SPI"}};
    if (spec.reqid == 0)
        return Err{DpError{DpErrc::invalid_argument, "SA with reqid 0: expected a reqid != 0"}};
    if ((spec.key.size() != 16 && spec.key.size() != 32) || spec.salt.size() != 4)
        return Err{DpError{DpErrc::invalid_argument,
                           "AES-GCM key of " + std::to_string(spec.key.size()) +
                               " octets and salt of " + std::to_string(spec.salt.size()) +
                               ": expected 16 or 32, and 4"}};
    std::lock_guard lock(mu_);
    SaId id{spec.direction, spec.spi, spec.outer_dst};
    if (std::any_of(sas_.begin(), sas_.end(), [&](const Sa& s) { return same_sa(s.id, id); }))
        return Err{DpError{DpErrc::exists, std::string(to_string(id.direction)) + " SA " +
                                               hex_spi(id.spi) + " is installed already"}};
    sas_.push_back(
        {id, spec.reqid, spec.key_bits(), spec.esn, spec.encap.has_value(), spec.selectors});
    spec.key.wipe();
    spec.salt.wipe();
    calls_.push_back("install_sa " + std::string(to_string(id.direction)) + " " + hex_spi(id.spi));
    return {};
}

DpResult<void> RecordingDataPlane::remove_sa(const SaId& id) {
    std::lock_guard lock(mu_);
    auto it =
        std::find_if(sas_.begin(), sas_.end(), [&](const Sa& s) { return same_sa(s.id, id); });
    if (it == sas_.end())
        return Err{DpError{DpErrc::not_found, std::string(to_string(id.direction)) + " SA " +
                                                  hex_spi(id.spi) + " not installed"}};
    sas_.erase(it);
    calls_.push_back("remove_sa " + std::string(to_string(id.direction)) + " " + hex_spi(id.spi));
    return {};
}

DpResult<void> RecordingDataPlane::switch_outbound(const SaId& old_in, const SaId& old_out,
                                                   SaSpec new_out, std::chrono::milliseconds) {
    const std::uint32_t new_spi = new_out.spi;
    if (auto r = install_sa(std::move(new_out)); !r) return r;
    (void)remove_sa(old_out);
    std::lock_guard lock(mu_);
    pending_.push_back(old_in);
    calls_.push_back("switch_outbound " + hex_spi(old_out.spi) + " -> " + hex_spi(new_spi));
    return {};
}

DpResult<void> RecordingDataPlane::install_policy(const PolicySpec& p) {
    if (p.reqid == 0)
        return Err{
            DpError{DpErrc::invalid_argument, "policy with reqid 0: expected the SA's reqid"}};
    std::lock_guard lock(mu_);
    for (const auto& q : policies_)
        if (q.selector == p.selector && q.reqid == p.reqid)
            return Err{DpError{DpErrc::exists, "policy " + p.selector.local.to_string() + " <=> " +
                                                   p.selector.remote.to_string() +
                                                   " is installed already"}};
    policies_.push_back(p);
    calls_.push_back("install_policy " + p.selector.local.to_string() + " <=> " +
                     p.selector.remote.to_string());
    return {};
}

DpResult<void> RecordingDataPlane::remove_policy(const PolicySpec& p) {
    std::lock_guard lock(mu_);
    auto it = std::find_if(policies_.begin(), policies_.end(), [&](const PolicySpec& q) {
        return q.selector == p.selector && q.reqid == p.reqid;
    });
    if (it == policies_.end())
        return Err{DpError{DpErrc::not_found, "policy " + p.selector.local.to_string() + " <=> " +
                                                  p.selector.remote.to_string() +
                                                  " not installed"}};
    policies_.erase(it);
    calls_.push_back("remove_policy " + p.selector.local.to_string() + " <=> " +
                     p.selector.remote.to_string());
    return {};
}

DpResult<SaCounters> RecordingDataPlane::counters(const SaId& id) {
    std::lock_guard lock(mu_);
    if (std::none_of(sas_.begin(), sas_.end(), [&](const Sa& s) { return same_sa(s.id, id); }))
        return Err{DpError{DpErrc::not_found, std::string(to_string(id.direction)) + " SA " +
                                                  hex_spi(id.spi) + " not installed"}};
    return SaCounters{};
}

DpResult<void> RecordingDataPlane::handle_udp_esp(std::span<const std::uint8_t> esp,
                                                  const UdpEndpoint&) {
    std::lock_guard lock(mu_);
    calls_.push_back("handle_udp_esp " + std::to_string(esp.size()));
    return {};
}

void RecordingDataPlane::flush() {
    std::lock_guard lock(mu_);
    sas_.clear();
    policies_.clear();
    pending_.clear();
    calls_.push_back("flush");
}

std::vector<std::string> RecordingDataPlane::calls() const {
    std::lock_guard lock(mu_);
    return calls_;
}
std::vector<RecordingDataPlane::Sa> RecordingDataPlane::sas() const {
    std::lock_guard lock(mu_);
    return sas_;
}
std::vector<PolicySpec> RecordingDataPlane::policies() const {
    std::lock_guard lock(mu_);
    return policies_;
}
std::vector<SaId> RecordingDataPlane::pending_removals() const {
    std::lock_guard lock(mu_);
    return pending_;
}

}  // namespace qkd::dp
