#pragma once
// JSON of the KME-to-KME reservation call (POST /kme/v1/reserve). Batches several reservations in
// one request; carries key IDs, stream offsets and sizes, never key material.
#include <string>
#include <string_view>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/kme/key_manager.hpp"

namespace qkd::kme {

inline constexpr std::size_t kMaxSyncBatch = 1024;
inline constexpr std::size_t kMaxRelayHops = 8;  // KMEs a relayed reservation may pass (SyncRequest::path)
inline constexpr std::size_t kMaxMaterialText = 2048;  // SyncRequest::material (two key-file names and digests)

std::string encode_sync_batch(const std::vector<SyncRequest>& batch);
qkd::Result<std::vector<SyncRequest>, std::string> decode_sync_batch(std::string_view body);
// One entry per reservation: "" for success or the peer's reason.
std::string encode_sync_results(const std::vector<std::string>& results);
qkd::Result<std::vector<std::string>, std::string> decode_sync_results(std::string_view body, std::size_t expected);

}  // namespace qkd::kme
