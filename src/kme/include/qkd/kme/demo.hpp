#pragma once
// `qkd-kme demo DIR`: a test PKI, two KME configs and two gateway site configs, both KMEs running
// on loopback in this process until SIGINT/SIGTERM. Re-running on an existing DIR reuses the PKI,
// link seed and state.
#include <cstdint>
#include <string>
#include <vector>

namespace qkd::kme {

struct DemoOptions {
    std::string dir;
    std::uint16_t port_a = 0, port_b = 0;  // 0 = free ports
    std::string log_level = "info";
    bool quiet = false;                    // no curl examples
    int relays = 1;                        // --relay: relay KMEs between KME_A and KME_C
};

// Prepares DIR (PKI, seeds, configs); returns the paths of the two KME configs.
std::pair<std::string, std::string> prepare_demo(const DemoOptions& o);
int run_demo(const DemoOptions& o);
// `demo --relay`: the chain KME_A - KME_R - KME_C (relays > 1: KME_R1 .. KME_RN); returns the
// config paths in chain order (demo_relay.cpp).
std::vector<std::string> prepare_relay_demo(DemoOptions o);
int run_relay_demo(const DemoOptions& o);

}  // namespace qkd::kme
