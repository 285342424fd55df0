#pragma once
// KME configuration (one TOML file per KME). load_config throws ConfigError at start-up; the message
// names the file, the key and what was expected.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qkd/kme/key_file_index.hpp"

namespace qkd::kme {

struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// How the calling SAE's ID is read from its client certificate (DESIGN.md §4 "Identity").
enum class IdentityRule { SanUri, SanDns, CommonName, Fingerprint };

struct Outage {
    double start_s = 0;     // seconds after KME start
    double duration_s = 0;  // link down for this long
    double every_s = 0;     // repeat period; 0 = once
};

// A QKD link to a peer KME (or the local loopback link for local pairs): emulated from a shared
// seed, or (peers only) fed by the key files a QKD device drops in key_dir (key_files.hpp).
struct LinkConfig {
    std::string key_dir;             // set: key material from files; the emulation keys below are unused
    KeyDirDirection key_dir_direction = KeyDirDirection::Both;  // key_dir only: which way the files go
    std::string seed_file;           // 32+ bytes shared by both ends (hex text)
    double key_rate_bps = 1e6;       // secret key rate in bits/s
    bool start_full = true;          // the device buffer is full when the KME starts
    std::vector<Outage> outages;
};

struct PeerConfig {
    std::string kme_id;
    std::string url;                 // https://host:port of the peer's API (sync under /kme/v1/)
    std::vector<std::string> saes;   // SAE IDs attached to the peer
    LinkConfig link;
    std::chrono::milliseconds sync_timeout{2000};
    // Key IDs reserved on the peer ahead of requests, per (master SAE, slaves, key size) seen, so
    // Get key needs no peer round trip (see key_manager.hpp). Most keys held ready per combination;
    // 0 = off. The TOML key `prefetch_keys` defaults to 256; a PeerConfig built in code starts off.
    std::size_t prefetch_keys = 0;
};

// A static route (trusted-node relay, docs/kme.md "Relay"): the SAEs attached to a KME that is
// not a peer, reached through the peer `via` (the next hop). Each relay on the way forwards keys
// one-time-pad encrypted with the material of its next link.
struct RouteConfig {
    std::string kme_id;              // the KME the SAEs are attached to
    std::string via;                 // the [[peer]] towards it
    std::vector<std::string> saes;
};

struct KeyLimits {
    std::int64_t default_key_size = 256;
    std::int64_t min_key_size = 64;
    std::int64_t max_key_size = 1024;
    std::int64_t max_key_per_request = 128;
    std::int64_t max_key_count = 100000;
    std::int64_t max_SAE_ID_count = 4;
};

inline constexpr int kMaxCpu = 1024;  // CPU_SETSIZE: CPU numbers a cpu_set_t can hold

struct Config {
    std::string file;                // where it was read from
    std::string kme_id;
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 0;
    std::string cert, key, ca;       // server certificate (also our client certificate for sync)
    std::string tls_min_version = "1.3";
    std::vector<std::string> tls_groups{"X25519MLKEM768", "X25519", "P-256"};
    bool pq_only = false;
    // [kme] strict: Get key and Get key with key IDs take only the standard form of each method
    // (no body on GET, no query on POST); false reads both places (request_forms.hpp).
    bool strict_forms = false;
    std::string state_db;
    // "normal": a committed group survives kill -9 (high-water marks also a power loss);
    // "full": every group is fsynced before it is answered (survives a power loss). See Store.
    std::string state_sync = "normal";
    std::optional<std::string> metrics_host;
    std::uint16_t metrics_port = 0;
    std::string log_level = "info";
    int threads = 0;                 // 0 = hardware threads
    std::vector<int> cpu_affinity;   // event-loop thread i runs on CPU cpu_affinity[i % size]; empty = not pinned
    std::chrono::milliseconds request_timeout{10000};
    std::size_t max_body_bytes = 65536;
    std::size_t max_connections = 10000;  // API connections open at once; more wait in the listen backlog
    std::chrono::seconds reservation_ttl{300};
    KeyLimits limits;
    IdentityRule identity_rule = IdentityRule::SanUri;
    std::string identity_uri_prefix;                  // stripped from a SAN URI, e.g. "urn:qkd:sae:"
    std::map<std::string, std::string> fingerprints;  // sha256 hex (lowercase) -> SAE ID
    std::vector<std::string> saes;                    // SAE IDs attached to this KME
    LinkConfig local_link;                            // for pairs of local SAEs
    std::vector<PeerConfig> peers;
    std::vector<RouteConfig> routes;
};

// Reads and parses the file, then check_key_dirs.
Config load_config(const std::string& path);
// The key_dir folders of the file's links exist, are directories, and are neither another link's
// folder nor a folder of this KME's own files (state database, certificates, seeds, the
// configuration). Throws ConfigError naming the file, the key and what was expected.
void check_key_dirs(const Config& cfg);
// Parses TOML text; `file` is used in messages and to resolve relative paths.
Config parse_config(const std::string& text, const std::string& file);

}  // namespace qkd::kme
