#pragma once
// The KME's key lifecycle (DESIGN.md §4), independent of HTTP:
//   available (pool) -> reserved for (master, slaves) -> delivered -> deleted.
// A key is delivered once to the master (Get key) and once to each authorised slave (Get key with
// key IDs); material is derived from the link key stream by offset, so "deleted" means the
// reservation row is gone and the offset is below the persisted high-water mark forever.
//
// Prefetch (PeerConfig::prefetch_keys > 0): for each combination of master SAE, peer slave SAEs and
// key size that has been asked for, key IDs and offsets are reserved on the peer KME ahead of the
// next request, in large batches. Get key then takes keys that are already reserved on the peer:
// no round trip and no commit on the request path. The lifecycle is the same (a prefetched key is
// "reserved" on both KMEs until its master gets it; the peer's row is durable before the key is
// ready). Prefetched keys are not persisted here: a crash of this KME forgets them, they expire
// unclaimed on the peer and their material is burned, never reused. A prefetched key is handed out
// only while it is younger than min(reservation_ttl / 10, 1 s), so its slave keeps at least 90% of
// reservation_ttl; older ones are burned. Requests mixing local and peer slaves do not prefetch.
#include <deque>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "qkd/common/clock.hpp"
#include "qkd/common/result.hpp"
#include "qkd/etsi014/model.hpp"
#include "qkd/kme/config.hpp"
#include "qkd/kme/key_source.hpp"
#include "qkd/kme/store.hpp"

namespace qkd::kme {

// An answer other than 200: HTTP status and ETSI Error body.
struct ApiError {
    int status = 400;
    std::string message;
    std::vector<etsi014::Extension> details;
};

template <class T>
using ApiResult = qkd::Result<T, ApiError>;

// KME-to-KME reservation (never carries key material).
struct SyncKey {
    Uuid key_ID{};
    std::uint64_t offset = 0;
    std::uint32_t bits = 0;
};
struct SyncRequest {
    std::string master_kme_id;
    std::string stream;  // "MASTER_KME->SLAVE_KME"
    std::string master_SAE_ID;
    std::vector<std::string> slaves;
    std::int64_t expires_unix = 0;
    std::vector<SyncKey> keys;
    // KeyMaterial::fingerprint of the keys' range (lowest offset to highest end) on the master's
    // KME; the slave's KME refuses the reservation when its own differs.
    std::string material;
    // Trusted-node relay (docs/kme.md "Relay"). `master_kme_id` is the sending hop; `path` the KMEs
    // the reservation passed before it (empty from the master's KME). `masks` is empty on the
    // first hop (the key is the link's material itself) or holds, per key, the key XOR this
    // link's material at its offset (a one-time pad: the key is in clear only inside the KMEs).
    std::vector<std::string> path{};
    std::vector<std::vector<std::uint8_t>> masks{};
};

// The link to a peer KME for reservations; the real one speaks HTTPS (peer_client.cpp).
class PeerClient {
public:
    virtual ~PeerClient() = default;
    // `done` receives "" on success or a reason on failure/timeout; it may run on any thread.
    virtual void reserve(SyncRequest req, std::function<void(std::string error)> done) = 0;
};

struct PoolLevel {
    std::string stream;
    double available_bits = 0;
    std::uint64_t next_offset = 0;
    bool outage = false;
    std::int64_t key_files = -1;  // files held by a key-file source; -1: not one
};

class KeyManager {
public:
    using KeysCallback = std::function<void(ApiResult<etsi014::KeyContainer>)>;

    // `peers` maps peer KME ID -> client; every [[peer]] of the config needs one.
    // `sources` makes each outgoing link direction's key source and `incoming` the material of each
    // direction a peer serves from (default: the emulated link for both; a custom `sources` with
    // peers configured needs a matching `incoming`, else std::invalid_argument).
    KeyManager(const Config& cfg, StateStore& store, const Clock& clock, std::map<std::string, std::shared_ptr<PeerClient>> peers,
               KeySourceFactory sources = {}, KeyMaterialFactory incoming = {});
    ~KeyManager();

    ApiResult<etsi014::Status> status(const std::string& caller, const std::string& slave);
    // ETSI 014 5.2 Get key: caller is the master SAE.
    void get_key(const std::string& caller, const std::string& slave, const etsi014::KeyRequest& req, KeysCallback done);
    // ETSI 014 5.3 Get key with key IDs: caller is a slave SAE, `master` the SAE ID in the path.
    void get_key_with_ids(const std::string& caller, const std::string& master, const etsi014::KeyIds& ids, KeysCallback done);
    // A peer KME reserving keys on this KME for our slave SAEs; `done` after the rows are durable.
    void peer_reserve(const std::string& peer_kme_id, const SyncRequest& req, std::function<void(ApiResult<int>)> done);
    // Drops reservations whose time is up; returns how many.
    std::size_t expire_reservations();

    std::vector<PoolLevel> pool_levels();
    std::size_t reservation_count();
    // State-database transactions committed (each holds a group of requests' writes), and the
    // pages they wrote.
    std::uint64_t db_commits() const { return store_.commits(); }
    std::uint64_t db_pages_written() const { return store_.wal_pages_written(); }
    std::uint64_t db_wal_catch_ups() const { return store_.wal_catch_ups(); }
    std::uint64_t db_synced_commits() const { return store_.synced_commits(); }
    const Config& config() const { return cfg_; }
    bool is_local_sae(const std::string& id) const;
    bool is_peer_kme(const std::string& id) const { return peers_.count(id) != 0; }

    std::atomic<std::uint64_t> keys_delivered_master{0}, keys_delivered_slave{0}, sync_failures{0}, keys_burned{0},
        reservations_expired{0}, keys_prefetched{0}, keys_from_prefetch{0};
    // Trusted-node relay: keys this KME forwarded to a next hop, and relays refused or failed.
    std::atomic<std::uint64_t> keys_relayed{0}, relay_failures{0};
    // Keys prefetched and ready for this master and slave (default key size); Get status adds them
    // to stored_key_count.
    std::size_t prefetched_ready(const std::string& master, const std::string& slave);

private:
    struct Link;
    Link* link_for_peer(const std::string& peer_kme_id);  // nullptr = local link
    const std::string* kme_of(const std::string& sae) const;
    // The peer KME that is the next hop towards KME `kme` (itself if a peer, the route's via if
    // routed); empty for this KME or an unknown one.
    std::string hop_of(const std::string& kme) const;
    // peer_reserve for slaves behind a next hop (key_manager_relay.cpp): the keys are read from the
    // incoming link, re-encrypted with the next link's material and sent on; `local` slaves of this
    // KME on the way get their reservations here as well.
    void relay(const std::string& from, const SyncRequest& req, std::vector<std::string> local, std::vector<std::string> remote,
               std::string next, std::function<void(ApiResult<int>)> done);
    std::int64_t now_unix() const;
    ApiResult<int> check_request(const std::string& caller, const std::string& slave, const etsi014::KeyRequest& req,
                                 std::int64_t& number, std::int64_t& size, std::vector<std::string>& slaves,
                                 std::string& peer_kme) const;
    // Reads the keys' material into `c`; "" or, if the source failed, why (then `c` is empty).
    std::string materialise(const KeyMaterial& stream, const std::vector<SyncKey>& keys, etsi014::KeyContainer& c) const;
    std::vector<SyncKey> allocate(Link& link, std::size_t n, std::uint32_t bits, std::vector<Op>& ops, std::uint64_t& new_mark);
    void mark_durable(Link& link, std::uint64_t new_mark);  // after the commit of allocate's ops
    struct Prefetch;
    // Takes `number` prefetched keys for the combination if there are that many, and starts a refill
    // when the stock runs low. Returns false when the request must take the ordinary path.
    bool take_prefetched(const std::string& caller, const std::vector<std::string>& slaves, const std::string& peer_kme,
                         std::int64_t number, std::int64_t size, std::vector<SyncKey>& out);
    void refill(Prefetch& pf);
    // With pf_mu_ held: drops (burns) stocked keys too old to hand out; returns how many.
    std::size_t prune_aged_locked(Prefetch& pf, std::chrono::steady_clock::time_point now);
    // With pf_mu_ held: tells the link to `peer_kme` how many bits its stock holds (ready and in
    // flight), so the device buffer counts them (KeySource::set_held).
    void sync_held_locked(const std::string& peer_kme);
    // Burns aged stock of every combination (Get status and housekeeping).
    void prune_all_stock();
    std::chrono::steady_clock::duration prefetch_max_age() const;

    const Config& cfg_;
    StateStore& store_;
    const Clock& clock_;
    std::map<std::string, std::shared_ptr<PeerClient>> peer_clients_;
    std::map<std::string, std::string> sae_kme_;  // SAE ID -> KME ID (ours or a peer's)
    std::map<std::string, const PeerConfig*> peers_;
    std::map<std::string, std::string> next_hop_;  // routed KME ID -> the peer towards it ([[route]])
    std::map<std::string, std::unique_ptr<Link>> links_;       // by outgoing stream label
    std::map<std::string, std::unique_ptr<KeyMaterial>> in_streams_;  // incoming stream label -> stream
    struct UuidHash {
        std::size_t operator()(const Uuid& u) const noexcept;
    };
    std::mutex res_mu_;
    std::unordered_map<Uuid, Reservation, UuidHash> reservations_;
    std::mutex pf_mu_;
    std::map<std::string, std::unique_ptr<Prefetch>> prefetch_;  // by combination
};

}  // namespace qkd::kme
