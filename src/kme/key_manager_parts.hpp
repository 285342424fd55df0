#pragma once
// Internal to KeyManager (qkd/kme/key_manager.hpp), shared by its parts: key_manager.cpp (set-up,
// status, Get key), key_manager_prefetch.cpp (the stock of keys reserved ahead on the peer) and
// key_manager_slave.cpp (Get key with key IDs, reservations from the peer KME, expiry).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "qkd/etsi014/codec.hpp"
#include "qkd/kme/key_manager.hpp"

namespace qkd::kme {

namespace msg = etsi014::msg;

// High-water marks are persisted KeySource::mark_step() bytes ahead of use (1 MiB for the emulated
// link, 4 KiB for key files), so most requests need no write at all; a crash skips at most that
// much material, never reuses it.
// A key-file link keeps a used file this much longer than a reservation can live.
inline constexpr auto kKeyFileSlack = std::chrono::seconds(10);
// Prefetch refills go out in batches of at most this many keys: a big batch is one long stretch of
// work (encode, decode, inserts) in both event loops that requests would queue behind.
inline constexpr std::size_t kRefillBatch = 64;

struct KeyManager::Link {
    std::string peer;  // peer KME ID, or our own ID for the local link
    std::unique_ptr<KeySource> out;  // material and budget for keys where this KME serves the master
    std::mutex mu;
    std::uint64_t next_offset = 0;     // next unused byte of `out`
    std::uint64_t committed_end = 0;   // durable high-water mark
    Link(std::string p, std::unique_ptr<KeySource> source) : peer(std::move(p)), out(std::move(source)) {}
};

struct KeyManager::Prefetch {
    std::string peer_kme, master;
    std::vector<std::string> slaves;
    std::uint32_t bits = 0;
    std::int64_t expires_unix = 0;  // of the batch being reserved
    std::deque<std::pair<SyncKey, std::chrono::steady_clock::time_point>> ready;  // reserved on the peer, oldest first
    std::size_t target = 8;  // keys to hold: doubles when a request finds too few, halves when keys age out
    bool refilling = false;
    std::size_t in_flight = 0;  // keys of the refill under way: taken from the pool, not yet ready
    std::chrono::steady_clock::time_point retry_after{};  // after a failed refill: the peer is down or slow
};

namespace detail {
inline ApiError bad(std::string m, std::vector<etsi014::Extension> d = {}) { return ApiError{400, std::move(m), std::move(d)}; }
inline ApiError unauthorized() { return ApiError{401, std::string(msg::kUnauthorized), {}}; }
inline ApiError server(std::string m) { return ApiError{503, std::move(m), {}}; }
inline std::string label(const std::string& from, const std::string& to) { return from + "->" + to; }
// The byte range [lo, hi) the keys take in their stream.
inline std::pair<std::uint64_t, std::uint64_t> key_range(const std::vector<SyncKey>& keys) {
    std::uint64_t lo = std::numeric_limits<std::uint64_t>::max(), hi = 0;
    for (const auto& k : keys) {
        lo = std::min(lo, k.offset);
        hi = std::max(hi, k.offset + k.bits / 8);
    }
    return {keys.empty() ? 0 : lo, hi};
}
inline std::string material_of(const KeyMaterial& m, const std::vector<SyncKey>& keys) {
    auto [lo, hi] = key_range(keys);
    return m.fingerprint(lo, hi - lo);
}
// A relayed key's one-time pad: k ^= mask (same length).
inline void unmask(SecretBytes& k, const std::vector<std::uint8_t>& mask) {
    auto v = k.mut_view();
    for (std::size_t i = 0; i < v.size() && i < mask.size(); ++i) v[i] ^= mask[i];
}
inline std::string combo_key(const std::string& master, const std::vector<std::string>& slaves, std::int64_t bits) {
    std::string k = master;
    for (const auto& s : slaves) k += '\n' + s;
    return k + '\n' + std::to_string(bits);
}
}  // namespace detail

using detail::bad;
using detail::combo_key;
using detail::key_range;
using detail::label;
using detail::material_of;
using detail::server;
using detail::unauthorized;
using detail::unmask;

}  // namespace qkd::kme
