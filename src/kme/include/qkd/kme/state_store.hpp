#pragma once
// The KME's persistent state behind one interface (DESIGN.md §4 "State"): high-water marks of the
// key streams, reservations waiting for their slaves, and a few meta values. Two back ends
// implement it: Store (SQLite, store.hpp, the default) and PgStore (PostgreSQL, store_pg.hpp,
// shared by several front ends of one KME for high availability).
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "qkd/common/uuid.hpp"

namespace qkd::kme {

// A key reserved for one or more slave SAEs, waiting for their Get key with key IDs.
struct Reservation {
    Uuid key_ID{};
    std::string stream;     // key stream label, e.g. "KME_A->KME_B"
    std::uint64_t offset = 0;
    std::uint32_t bits = 0;
    std::string master_SAE_ID;
    std::vector<std::string> slaves;          // every SAE authorised to fetch it
    std::vector<std::string> pending_slaves;  // still to be delivered to
    std::int64_t expires_unix = 0;            // wall-clock seconds
    // A key relayed to this KME: key = stream material at offset XOR mask (one-time pad; the mask
    // alone says nothing about the key). Empty on a direct link.
    std::vector<std::uint8_t> mask{};
};

namespace op {
struct SetHwm {
    std::string stream;
    std::uint64_t next_offset;
};
struct PutReservation {
    Reservation r;
};
// A reservation row is found by its key stream and offset (the table's key), which the caller
// holds anyway: consecutive reservations then share pages on disk (see Store()).
struct SetPending {
    std::string stream;
    std::uint64_t offset;
    std::vector<std::string> pending;
};
struct DeleteReservation {
    std::string stream;
    std::uint64_t offset;
};
}  // namespace op
using Op = std::variant<op::SetHwm, op::PutReservation, op::SetPending, op::DeleteReservation>;

// How far a committed group survives (config `[kme] state_sync`).
enum class StateSync {
    // Survives kill -9 of the KME. A power loss or kernel crash can lose the groups committed since
    // the last checkpoint (about 250 ms), except high-water marks, which are always fsynced.
    Normal,
    // Every group is fsynced before its callbacks run: nothing answered is lost to a power loss.
    Full,
};

class StateStore {
public:
    virtual ~StateStore() = default;

    // State as found at start-up.
    virtual std::map<std::string, std::uint64_t> load_hwms() = 0;
    virtual std::vector<Reservation> load_reservations() = 0;
    virtual std::optional<std::vector<std::uint8_t>> get_meta(const std::string& key) = 0;
    virtual void put_meta(const std::string& key, const std::vector<std::uint8_t>& value) = 0;  // synchronous

    // Queues writes; `done(ok)` runs once they are committed (or failed): on the back end's
    // thread, or inside a task handed to the poster when run_commits_on() was called.
    virtual void commit(std::vector<Op> ops, std::function<void(bool)> done) = 0;
    using Poster = std::function<void(std::function<void()>)>;
    virtual void run_commits_on(Poster post) = 0;
    // Blocks until everything queued so far is committed.
    virtual void flush() = 0;

    // Transactions committed so far; any thread may read them.
    virtual std::uint64_t commits() const = 0;
    virtual std::uint64_t synced_commits() const = 0;
    // SQLite only (0 elsewhere): WAL pages written and WAL catch-ups (see Store).
    virtual std::uint64_t wal_pages_written() const { return 0; }
    virtual std::uint64_t wal_catch_ups() const { return 0; }
};

}  // namespace qkd::kme
