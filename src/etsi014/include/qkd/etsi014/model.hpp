#pragma once
// ETSI GS QKD 014 V1.1.1 clause 6 data formats, as typed values (no I/O here).
// Field names follow the standard verbatim (key_ID, slave_SAE_ID, ...).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qkd/common/secret.hpp"

namespace qkd::etsi014 {

// Limits of this codec (STYLE.md habit 12). Bodies larger than these are refused before parsing.
inline constexpr std::size_t kMaxBodyBytes = 1 << 20;       // 1 MiB
inline constexpr std::size_t kMaxJsonDepth = 8;
inline constexpr std::size_t kMaxKeysPerContainer = 1024;
inline constexpr std::size_t kMaxSaeIdCount = 64;           // additional_slave_SAE_IDs
inline constexpr std::size_t kMaxExtensions = 32;
inline constexpr std::size_t kMaxIdLength = 256;            // SAE, KME IDs and key_IDs
inline constexpr std::size_t kMaxKeyBits = 1 << 16;

// 6.1 Status
struct Status {
    std::string source_KME_ID;
    std::string target_KME_ID;
    std::string master_SAE_ID;
    std::string slave_SAE_ID;
    std::int64_t key_size = 0;
    std::int64_t stored_key_count = 0;
    std::int64_t max_key_count = 0;
    std::int64_t max_key_per_request = 0;
    std::int64_t max_key_size = 0;
    std::int64_t min_key_size = 0;
    std::int64_t max_SAE_ID_count = 0;
    std::optional<nlohmann::json> status_extension;
};

// A name/value pair of extension_mandatory / extension_optional (6.2); the spec writes each
// as a one-member object, e.g. {"abc_route_type": "direct"}.
struct Extension {
    std::string name;
    nlohmann::json value;
};

// 6.2 Key request. Absent fields stay empty; defaults are the KME's business.
struct KeyRequest {
    std::optional<std::int64_t> number;
    std::optional<std::int64_t> size;
    std::vector<std::string> additional_slave_SAE_IDs;
    std::vector<Extension> extension_mandatory;
    std::vector<Extension> extension_optional;
};

// 6.3 Key container
struct Key {
    std::string key_ID;
    SecretBytes key;
    std::optional<nlohmann::json> key_ID_extension;
    std::optional<nlohmann::json> key_extension;
};

struct KeyContainer {
    std::vector<Key> keys;
    std::optional<nlohmann::json> key_container_extension;
};

// 6.4 Key IDs
struct KeyIdEntry {
    std::string key_ID;
    std::optional<nlohmann::json> key_ID_extension;
};

struct KeyIds {
    std::vector<KeyIdEntry> key_IDs;
    std::optional<nlohmann::json> key_IDs_extension;
};

// 6.5 Error
struct ErrorBody {
    std::string message;
    std::vector<Extension> details;  // name/value objects
};

}  // namespace qkd::etsi014
