#pragma once
// The qkdgated / qkdgate TOML configuration (default /etc/qkdgate/qkdgate.toml).
//
//   [daemon]        control socket, log level, data-plane backend, UDP ports
//   [[gateway]]     one IPsec peer each (see packaging/qkdgate.toml for every key, commented)
//   [[qkd_profile]] owned by the SAE layer: only the profile names are read here, to validate
//                   the `qkd = { profile = ... }` reference of a gateway.
//
// Parsing is strict: unknown keys, wrong types and out-of-range values are errors that name the
// file, the line and the key, quote the bad value and say what was expected.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/common/secret.hpp"
#include "qkd/daemon/error.hpp"
#include "qkd/ike/types.hpp"

namespace qkd::daemon {

inline constexpr std::string_view kDefaultConfigPath = "/etc/qkdgate/qkdgate.toml";
inline constexpr std::string_view kDefaultControlSocket = "/run/qkdgate/qkdgated.sock";
inline constexpr std::size_t kMaxConfigBytes = 1 << 20;  // a config file larger than 1 MiB is refused
inline constexpr std::size_t kMaxGateways = 256;
inline constexpr std::size_t kMaxSelectors = ike::kMaxTrafficSelectors;  // per side per gateway, as the IKE decoder
inline constexpr std::size_t kMaxPskBytes = 1024;
inline constexpr std::size_t kMaxRemoteIds = 64;         // entries of one remote_id list

struct Cidr {
    std::uint32_t addr = 0;  // IPv4, host byte order, already masked
    std::uint8_t prefix = 0;
    std::string to_string() const;
    bool operator==(const Cidr&) const = default;
};
Result<Cidr, DaemonError> parse_cidr(std::string_view s);
Result<std::uint32_t, DaemonError> parse_ipv4(std::string_view s);
std::string ipv4_to_string(std::uint32_t addr);
// "3600", "90s", "45m", "4h", "1d" -> seconds.
Result<std::chrono::seconds, DaemonError> parse_duration(std::string_view s);

enum class StartAction { none, start };
// What to do when an established IKE SA stops answering (DPD or any other retransmission
// timeout): initiate it again, or leave it down (strongSwan's dpd_action).
enum class DpdAction { restart, clear };
// What to do when the peer deletes the IKE SA (INFORMATIONAL DELETE, RFC 7296 1.4.1): initiate
// it again, or leave it down (strongSwan's close_action).
enum class CloseAction { start, none };
enum class QkdMode { require, prefer };

struct QkdSettings {
    std::string profile;
    std::string peer_sae_id;
    unsigned key_size = 256;  // bits
    std::chrono::seconds timeout{10};
    QkdMode mode = QkdMode::require;
    std::uint16_t transform_id = 65516;  // KE transform ID of the QKD method (private use)
};

struct GatewayEntry {
    std::string name;
    std::uint32_t local_address = 0;  // IPv4 host order
    std::uint32_t remote_address = 0;
    std::uint16_t local_port = 500;
    std::uint16_t remote_port = 500;
    std::string local_id;
    // One identity, or (responder only) a list and/or '*' patterns: "*@bench.example",
    // ["a.example", "b-*.example"], "%any". Default: remote_address. See qkd/ike/identity.hpp.
    std::vector<std::string> remote_id;
    std::string psk_file;
    SecretBytes psk;  // read from psk_file
    std::string ike_proposals = "aes256gcm16-prfsha512-ecp521";
    std::string esp_proposals = "aes256gcm16";
    std::vector<Cidr> local_ts;
    std::vector<Cidr> remote_ts;
    std::chrono::seconds ike_lifetime{14400};
    std::chrono::seconds ike_rekey_margin{540};
    std::chrono::seconds child_lifetime{3600};
    std::chrono::seconds child_rekey_margin{180};
    std::chrono::seconds dpd_interval{30};  // 0 = off
    StartAction start_action = StartAction::none;
    // Keeping a wanted gateway up (start_action = "start", or after `qkdgate initiate`); see
    // docs/daemon.md "Permanent tunnels". Defaults give a permanent tunnel.
    DpdAction dpd_action = DpdAction::restart;
    CloseAction close_action = CloseAction::start;
    unsigned keyingtries = 0;                 // attempts per outage; 0 = for ever
    std::chrono::seconds retry_delay{1};      // first back-off step, doubling ...
    std::chrono::seconds retry_delay_max{60}; // ... up to this (each minus up to 25 % jitter)
    bool force_encap = false;  // UDP-encapsulate ESP even without NAT (RFC 3948)
    std::optional<QkdSettings> qkd;
};

// The IKE sockets (ike_port, natt_port) are bound on each distinct gateway local_address.
struct DaemonSettings {
    std::string control_socket{kDefaultControlSocket};
    std::string log_level = "info";
    std::string dataplane = "auto";  // auto | userspace | xfrm
    std::uint16_t ike_port = 500;
    std::uint16_t natt_port = 4500;
    std::string tun_name = "qkd0";
    std::uint16_t metrics_port = 0;  // Prometheus text on 127.0.0.1:metrics_port; 0 = off
    // IKE retransmission (strongSwan's charon.retransmit_*): an exchange is sent again after
    // retransmit_timeout * retransmit_base^n seconds, n = 0..retransmit_tries-1, then fails.
    // Together with dpd_interval they bound how long a dead peer takes to notice.
    double retransmit_timeout = 1.0;
    double retransmit_base = 1.8;
    unsigned retransmit_tries = 5;
    bool operator==(const DaemonSettings&) const = default;
};

struct Config {
    std::string path;
    DaemonSettings daemon;
    std::vector<GatewayEntry> gateways;
    std::vector<std::string> qkd_profiles;  // names only
    const GatewayEntry* find(std::string_view name) const;
};

struct LoadOptions {
    // Read the PSK files (the daemon does; the CLI does not need the secrets).
    bool read_psks = true;
    // Refuse PSK files readable by group or others (on by default; tests may relax it).
    bool strict_psk_permissions = true;
};

Result<Config, DaemonError> load_config(const std::string& path, const LoadOptions& opt = {});
Result<Config, DaemonError> parse_config(std::string_view text, const std::string& path,
                                         const LoadOptions& opt = {});

// PSK file: either "0x" + hex, or "base64:" + Base64, or the raw text of the first line (a
// trailing newline is dropped). Refused when group/world accessible (mode & 077) if strict.
Result<SecretBytes, DaemonError> read_psk_file(const std::string& path, bool strict_permissions = true);

}  // namespace qkd::daemon
