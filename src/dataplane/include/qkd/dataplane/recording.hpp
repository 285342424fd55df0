#pragma once
// A DataPlane that only records what it is asked to do (STYLE.md habit 11: every OS boundary has
// a test implementation). For the daemon's and the IKE wiring's unit tests: it checks the same
// preconditions as the real backends (reqid, SPI, key and salt sizes, duplicates, unknown SAs)
// and keeps the SAs and policies installed, without keys (they are wiped on install).
#include <mutex>
#include <string>
#include <vector>

#include "qkd/dataplane/dataplane.hpp"

namespace qkd::dp {

class RecordingDataPlane final : public DataPlane {
  public:
    struct Sa {
        SaId id;
        std::uint32_t reqid = 0;
        unsigned key_bits = 0;
        bool esn = false;
        bool encap = false;
        std::vector<TrafficSelector> selectors;
    };

    std::string_view backend_name() const override { return "recording"; }
    DpResult<void> install_sa(SaSpec spec) override;
    DpResult<void> remove_sa(const SaId& id) override;
    DpResult<void> switch_outbound(const SaId& old_in, const SaId& old_out, SaSpec new_out,
                                   std::chrono::milliseconds linger) override;
    DpResult<void> install_policy(const PolicySpec& p) override;
    DpResult<void> remove_policy(const PolicySpec& p) override;
    DpResult<SaCounters> counters(const SaId& id) override;
    DpResult<void> handle_udp_esp(std::span<const std::uint8_t> esp,
                                  const UdpEndpoint& src) override;
    void flush() override;

    // Every call in order, e.g. "install_sa in 0x00001001", "switch_outbound 0x00001001 ->
    // 0x00001101".
    std::vector<std::string> calls() const;
    std::vector<Sa> sas() const;
    std::vector<PolicySpec> policies() const;
    // Old inbound SAs scheduled for removal by switch_outbound (removed by the test at will).
    std::vector<SaId> pending_removals() const;

  private:
    mutable std::mutex mu_;
    std::vector<std::string> calls_;
    std::vector<Sa> sas_;
    std::vector<PolicySpec> policies_;
    std::vector<SaId> pending_;
};

}  // namespace qkd::dp
