#pragma once
// Persistent KME state in SQLite (WAL). Writes are queued and committed in groups: by one writer
// thread, or (after run_commits_on) by a task posted to the caller's event loop, so that a request
// never crosses threads on its way to the disk and back; a request that needs its writes durable waits for the commit callback before answering
// (DESIGN.md §4 "State": high-water marks and reservations are persisted before a key is handed out).
// WAL with synchronous=NORMAL survives a killed process (kill -9) without losing a committed group;
// groups that move an allocation high-water mark are always fsynced, so that after a power loss or
// a kernel crash no offset of a key stream is handed out twice. StateSync::Full fsyncs every group.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "qkd/common/uuid.hpp"
#include "qkd/kme/state_store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace qkd::kme {

class Store : public StateStore {
public:
    // Opens (creating if needed) the database. Throws std::runtime_error naming the file on failure.
    explicit Store(const std::string& path, StateSync sync = StateSync::Normal);
    ~Store() override;
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    // State as found at start-up.
    std::map<std::string, std::uint64_t> load_hwms() override;
    std::vector<Reservation> load_reservations() override;
    std::optional<std::vector<std::uint8_t>> get_meta(const std::string& key) override;
    void put_meta(const std::string& key, const std::vector<std::uint8_t>& value) override;  // synchronous

    // Queues writes; `done(ok)` runs once they are committed (or failed): on the writer thread, or
    // inside the group-commit task when run_commits_on() was called.
    void commit(std::vector<Op> ops, std::function<void(bool)> done) override;
    // From now on, commits run in tasks handed to `post` (for example asio::post to the io_context):
    // the first commit queued while no task is pending posts one, and that task commits every item
    // queued by then in one transaction. Items queued before this call still go to the writer thread.
    void run_commits_on(Poster post) override;
    // Blocks until everything queued so far is committed.
    void flush() override;

    // Transactions committed so far (each a group of queued items); any thread may read it.
    std::uint64_t commits() const override { return commits_.load(std::memory_order_relaxed); }
    // Commits that were fsynced (StateSync::Full, or a high-water mark in the group).
    std::uint64_t synced_commits() const override { return synced_commits_.load(std::memory_order_relaxed); }
    StateSync sync() const { return sync_; }
    // Database pages written to the WAL by those commits: the disk cost of the state.
    std::uint64_t wal_pages_written() const override { return wal_pages_.load(std::memory_order_relaxed); }
    // Times the checkpointer held commits back for a moment to let the WAL start again (see
    // checkpoint_loop).
    std::uint64_t wal_catch_ups() const override { return wal_catch_ups_.load(std::memory_order_relaxed); }
    // A WAL this long (in frames) gets the short catch-up checkpoint; about 8 MiB with 1 KiB pages.
    static constexpr int kWalCatchUpFrames = 8192;
    static constexpr long kWalSizeLimit = 16L << 20;

private:
    void writer_loop();
    struct Item {
        std::vector<Op> ops;
        std::function<void(bool)> done;
    };
    void write_group(std::deque<Item>& batch);
    void posted_group();
    void commit_queued();
    void checkpoint_loop();
    bool apply(const Op& o);
    void exec(const char* sql);
    void migrate_reservations();
    void add_mask_column();

    sqlite3* db_ = nullptr;
    // Statements of the writer thread, prepared once.
    sqlite3_stmt* st_hwm_ = nullptr;
    sqlite3_stmt* st_put_ = nullptr;
    sqlite3_stmt* st_pending_ = nullptr;
    sqlite3_stmt* st_delete_ = nullptr;
    sqlite3_stmt* st_begin_ = nullptr;
    sqlite3_stmt* st_commit_ = nullptr;
    sqlite3_stmt* st_rollback_ = nullptr;
    sqlite3_stmt* st_savepoint_ = nullptr;
    sqlite3_stmt* st_release_ = nullptr;
    sqlite3_stmt* st_rollback_to_ = nullptr;
    sqlite3_stmt* prepare(const char* sql);
    std::string path_;
    StateSync sync_;
    std::mutex mu_;
    std::condition_variable cv_, idle_cv_;
    std::deque<Item> queue_;
    bool stop_ = false;
    int busy_ = 0;
    Poster post_;                 // set by run_commits_on
    bool group_posted_ = false;   // a posted group task has not taken the queue yet
    int group_rounds_ = 0;        // times the posted task stepped back for this group
    std::size_t group_seen_ = 0;  // queue length at its last step back
    std::chrono::steady_clock::time_point queue_since_{};  // when the oldest queued item came
    std::mutex write_mu_;         // one group at a time, in queue order
    std::atomic<std::uint64_t> commits_{0};
    std::atomic<std::uint64_t> synced_commits_{0};
    std::atomic<std::uint64_t> wal_pages_{0};
    std::atomic<std::uint64_t> wal_catch_ups_{0};
    std::uint64_t wal_len_ = 0;  // the WAL's length in pages after the last commit (writer only)
    std::thread writer_;
    // WAL checkpoints (and their fsync) run here, off the writer thread, so a commit never waits
    // behind one; this is what kept p99 latency at ~11 ms before.
    sqlite3* ckpt_db_ = nullptr;
    std::thread checkpointer_;
    std::condition_variable ckpt_cv_;
};

}  // namespace qkd::kme
