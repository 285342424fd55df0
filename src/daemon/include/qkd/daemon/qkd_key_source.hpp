#pragma once
// The daemon's QKD key source: what the IKE engine's key requests (shared/docs/ike-tasks.md, "The
// QKD key request") turn into. One asynchronous qkd::sae::Client per [[qkd_profile]] on the
// daemon's io_context (kept-alive mTLS, src/sae), so nothing blocks the IKE engine.
//
//   master fetch (initiator): ETSI 014 5.3 Get key, 1 key of key_size bits for the peer SAE ID
//   slave fetch (responder):  ETSI 014 5.4 Get key with key IDs, the key_ID the peer sent
//
// Each fetch is bounded by its own deadline (below). Every answer is checked: one key, of exactly
// the requested length, with a key_ID that is a UUID (the QURSA wire format carries the key_ID as
// 16 binary bytes, ike.md 1). A key_ID is used once: one the source has already used (as master or
// slave) is refused without asking the KME (bounded memory: UsedKeyIds). Keys are qkd::SecretBytes,
// handed to the caller once, never logged; a key that arrives after its deadline is zeroized.
//
// Deadlines (the numbers, and why):
//   slave:  min(gateway qkd.timeout, profile timeout, kSlaveDeadline = 900 ms). The responder
//           fetches while the peer's request is unanswered; qkdgated's first retransmission comes
//           after 1 s (ike::EngineOptions::retransmit_base) and strongSwan's after 4 s
//           (retransmit_timeout), so the answer, or the refusal, goes out before the peer resends.
//           (libreswan resends after 0.5 s: that retransmission is dropped while we wait and the
//           answer follows from the cache, RFC 7296 2.1.)
//   master: min(gateway qkd.timeout, profile timeout). The initiator fetches before it sends; no
//           peer timer runs yet (the responder's half-open SA lives 30 s).
#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange
#include <boost/asio/any_io_executor.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "qkd/common/result.hpp"
#include "qkd/common/secret.hpp"
#include "qkd/common/uuid.hpp"
#include "qkd/sae/profile.hpp"

namespace qkd::sae {
class Client;
}

namespace qkd::daemon {

inline constexpr std::chrono::milliseconds kSlaveDeadline{900};
// Key_IDs remembered per profile to refuse a replay (16 bytes each + set overhead, about 6 MiB at
// most per profile). Older ones are forgotten first; the KME still refuses them, since ETSI 014
// 5.4 deletes a key once delivered to the slave, and they are older than any SA's rekey interval
// at one key per SA and rekey.
inline constexpr std::size_t kMaxRememberedKeyIds = 65536;
// Bucket bounds (seconds) of the KME round-trip histogram.
inline constexpr std::array<double, 12> kRttBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,   0.25,   0.5,   1.0,  2.5,   5.0};

enum class QkdFail {
    no_profile,      // the gateway names a profile this daemon has no client for
    timeout,         // no answer within the fetch's deadline
    unreachable,     // resolve / connect / transport
    tls,             // TLS handshake or KME identity
    kme_refused,     // HTTP 400 / 401 / 503 / other status from the KME (ETSI message kept)
    bad_answer,      // 200 but not one key, or a body against the spec
    wrong_length,    // the key is not key_size bits
    not_uuid,        // the key_ID is not a UUID (cannot travel as 16 bytes in the KE payload)
    replayed,        // a key_ID already used by this daemon
    busy,            // too many fetches in flight
    bad_request,     // refused before sending (e.g. a key size the client cannot ask for)
};
std::string_view to_string(QkdFail f);
inline constexpr std::size_t kQkdFailKinds = 11;

struct QkdError {
    QkdFail kind = QkdFail::timeout;
    std::string message;  // what failed and what was expected; never key bytes
};

struct QkdKey {
    Uuid key_id{};               // binary form, as sent in the KE payload
    std::string key_id_text;     // canonical lowercase text (ETSI 014 6.3)
    SecretBytes key;
    std::chrono::microseconds rtt{0};  // KME round trip of the call that delivered it
};
using QkdKeyResult = Result<QkdKey, QkdError>;
using QkdKeyCallback = std::function<void(QkdKeyResult)>;

// Key_IDs already used, bounded (FIFO eviction). insert() is false for one already present.
class UsedKeyIds {
public:
    explicit UsedKeyIds(std::size_t max = kMaxRememberedKeyIds) : max_(max) {}
    bool insert(const Uuid& id);
    bool contains(const Uuid& id) const;
    std::size_t size() const { return order_.size(); }

private:
    struct Hash {
        std::size_t operator()(const Uuid& u) const;
    };
    std::size_t max_;
    std::deque<Uuid> order_;
    std::unordered_set<Uuid, Hash> set_;
};

// Per-profile counters, for `show qkd` and the Prometheus endpoint.
struct QkdCounters {
    std::uint64_t keys_master = 0, keys_slave = 0;
    std::array<std::uint64_t, kQkdFailKinds> failures{};
    std::array<std::uint64_t, kRttBuckets.size()> rtt_buckets{};  // non-cumulative counts
    std::uint64_t rtt_count = 0;
    double rtt_sum_seconds = 0;
    std::chrono::microseconds last_rtt{0};
    std::uint64_t late_answers = 0;  // arrived after the deadline (zeroized, not used)
    std::string last_error;
    void observe_rtt(std::chrono::microseconds rtt);
    nlohmann::json to_json() const;
};

class QkdKeySource {
public:
    // One client per profile; fails (naming the profile and the file) when a certificate or key
    // cannot be read.
    static Result<std::unique_ptr<QkdKeySource>, std::string> create(boost::asio::any_io_executor ex,
                                                                     std::vector<sae::Profile> profiles);
    ~QkdKeySource();
    QkdKeySource(const QkdKeySource&) = delete;
    QkdKeySource& operator=(const QkdKeySource&) = delete;

    // Get key (master): one key of `bits` for `peer_sae_id`. `done` runs once on the executor.
    void fetch_master(const std::string& profile, const std::string& peer_sae_id, unsigned bits,
                      std::chrono::milliseconds timeout, QkdKeyCallback done);
    // Get key with key IDs (slave): the key `key_id` that `master_sae_id` fetched.
    void fetch_slave(const std::string& profile, const std::string& master_sae_id, const Uuid& key_id,
                     unsigned bits, std::chrono::milliseconds timeout, QkdKeyCallback done);

    bool has_profile(std::string_view name) const;
    const QkdCounters* counters(std::string_view profile) const;
    std::vector<std::string> profile_names() const;
    // {"profile": {counters...}, ...}
    nlohmann::json counters_json() const;

    struct Impl;

private:
    explicit QkdKeySource(std::unique_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

}  // namespace qkd::daemon
