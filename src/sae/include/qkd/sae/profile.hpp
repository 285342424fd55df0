#pragma once
// QKD profiles: how this gateway (an SAE) reaches its KME. Several [[qkd_profile]] tables may appear
// in the gateway's TOML config; other top-level tables ([daemon], [[gateway]], ...) are ignored here.
//
//   [[qkd_profile]]
//   name = "kme-a"
//   kme_url = "https://127.0.0.1:8443"        # https only; an optional path prefix is kept
//   local_sae_id = "SAE_A"
//   local_cert = "../pki/sae_a.pem"           # paths relative to the config file's folder
//   local_key = "../pki/sae_a.key"
//   kme_ca_cert = "../pki/ca.pem"
//   kme_cert = "../pki/kme_a.pem"             # optional pin (exact certificate match)
//   kme_id = "KME_A"                          # optional: KME certificate CN and source_KME_ID
//   timeout = 10                              # seconds, may be fractional (default 10)
//   key_size = 256                            # bits, multiple of 8 (default 256)
//   tls_groups = ["X25519MLKEM768", "X25519", "P-256"]   # optional
//   pq_only = false                           # optional
//   source_address = "192.0.2.10"             # optional: local address KME connections leave from
#include <toml++/toml.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/sae/url.hpp"

namespace qkd::sae {

// Limits of a profile (STYLE.md habit 12).
inline constexpr int kDefaultKeySizeBits = 256;
inline constexpr double kDefaultTimeoutSeconds = 10.0;
inline constexpr double kMaxTimeoutSeconds = 600.0;
inline constexpr std::size_t kMaxProfiles = 64;

struct Profile {
    std::string name;
    KmeUrl kme_url;
    std::string local_sae_id;
    std::filesystem::path local_cert;   // absolute or relative to the process cwd after resolution
    std::filesystem::path local_key;
    std::filesystem::path kme_ca_cert;
    std::optional<std::filesystem::path> kme_cert;  // pin: the KME must present exactly this cert
    std::optional<std::string> kme_id;              // expected KME ID (cert CN, source_KME_ID)
    std::chrono::milliseconds timeout{10'000};      // bounds a whole call, retries included
    int key_size = kDefaultKeySizeBits;             // bits
    std::vector<std::string> tls_groups;            // empty: qkd::pqtls default preference
    bool pq_only = false;
    std::optional<std::string> source_address;      // bind KME connections to this local IP
    std::string source_file;                        // where the profile was read (for errors)
    int source_line = 0;
};

// Reads every [[qkd_profile]] of `root`. `file` names the config file in errors and anchors the
// relative paths. Errors name the file, the line, the key and what was expected. No file is
// opened here (certificates are read when a client is created).
qkd::Result<std::vector<Profile>, std::string> parse_profiles(const toml::table& root, const std::string& file);

// Parses the TOML file and then its profiles.
qkd::Result<std::vector<Profile>, std::string> load_profiles_file(const std::string& file);

// The profile called `name`, or an error listing the names that exist.
qkd::Result<Profile, std::string> find_profile(const std::vector<Profile>& profiles, const std::string& name,
                                               const std::string& file);

}  // namespace qkd::sae
