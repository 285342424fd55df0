#include "qkd/kme/store.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "qkd/etsi014/codec.hpp"
#include <cstring>
#include <stdexcept>

namespace qkd::kme {
namespace {

struct Stmt {
    sqlite3_stmt* s = nullptr;
    Stmt(sqlite3* db, const char* sql) {
        if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
            throw std::runtime_error(fmt::format("SQLite prepare failed: {}: {}", sql, sqlite3_errmsg(db)));
    }
    ~Stmt() { sqlite3_finalize(s); }
};

std::string slaves_text(const std::vector<std::string>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        etsi014::append_json_string(out, v[i]);
    }
    return out + "]";
}

std::vector<std::string> slaves_parse(const unsigned char* t) {
    if (!t) return {};
    auto j = nlohmann::json::parse(reinterpret_cast<const char*>(t), nullptr, false);
    std::vector<std::string> out;
    if (j.is_array())
        for (auto& e : j)
            if (e.is_string()) out.push_back(e.get<std::string>());
    return out;
}

}  // namespace

Store::Store(const std::string& path, StateSync sync) : path_(path), sync_(sync) {
    // Owner-only (issue 17, item 4): the database holds the local link's seed. SQLite gives its WAL
    // and shared-memory files the database file's mode, so creating the file first covers them.
    if (const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600); fd >= 0) ::close(fd);
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
        std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        throw std::runtime_error(fmt::format("{}: cannot open state database: {}", path, m));
    }
    sqlite3_busy_timeout(db_, 5000);
    try {
        // 1 KiB pages for a new database (an existing one keeps its size): a commit writes and
        // checksums whole pages into the WAL, and a reservation row is ~150 bytes.
        exec("PRAGMA page_size=1024");
        exec("PRAGMA journal_mode=WAL");
        exec(sync_ == StateSync::Full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
        exec("PRAGMA wal_autocheckpoint=0");  // see checkpoint_loop
        // After a burst, a restarted WAL is cut back to this size (it is overwritten from the start).
        exec(fmt::format("PRAGMA journal_size_limit={}", kWalSizeLimit).c_str());
        exec("PRAGMA secure_delete=ON");  // deleted reservations are overwritten, not left in free pages
        exec("CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB NOT NULL)");
        exec("CREATE TABLE IF NOT EXISTS hwm(stream TEXT PRIMARY KEY, next_offset INTEGER NOT NULL)");
        // Reservations are keyed by (key stream, offset), not by key ID. Offsets are handed out in
        // increasing order and keys are mostly claimed in the order they were reserved, so a batch of
        // reservations fills the last pages of the B-tree and a group of deliveries empties a few
        // neighbouring ones: a commit writes a page or two to the WAL, where random key IDs touched a
        // page per key. The key is also a guard: one offset of one stream is never reserved twice.
        // Lookups by key ID happen in memory; the table is read only at start-up.
        exec("CREATE TABLE IF NOT EXISTS key_reservation(stream TEXT NOT NULL, offset INTEGER NOT NULL, key_id BLOB NOT NULL,"
             " bits INTEGER NOT NULL, master TEXT NOT NULL, slaves TEXT NOT NULL, pending TEXT NOT NULL, expires INTEGER NOT NULL,"
             " mask BLOB, PRIMARY KEY(stream, offset)) WITHOUT ROWID");
        migrate_reservations();
        add_mask_column();
        st_hwm_ = prepare("INSERT INTO hwm(stream, next_offset) VALUES(?, ?) ON CONFLICT(stream) DO UPDATE SET next_offset = "
                          "MAX(next_offset, excluded.next_offset)");
        st_put_ = prepare("INSERT INTO key_reservation(stream, offset, key_id, bits, master, slaves, pending, expires, mask) VALUES(?,?,?,?,?,?,?,?,?)");
        st_pending_ = prepare("UPDATE key_reservation SET pending = ? WHERE stream = ? AND offset = ?");
        st_delete_ = prepare("DELETE FROM key_reservation WHERE stream = ? AND offset = ?");
        // Pages each commit appends to the WAL: the hook sees the WAL's length after every commit (it
        // starts again from the beginning after a checkpoint). Replaces auto-checkpointing, which is off.
        sqlite3_wal_hook(
            db_,
            [](void* self, sqlite3*, const char*, int pages) {
                auto* st = static_cast<Store*>(self);
                const auto n = static_cast<std::uint64_t>(pages);
                st->wal_pages_.fetch_add(n >= st->wal_len_ ? n - st->wal_len_ : n, std::memory_order_relaxed);
                st->wal_len_ = n;
                return SQLITE_OK;
            },
            this);
        st_begin_ = prepare("BEGIN IMMEDIATE");
        st_commit_ = prepare("COMMIT");
        st_rollback_ = prepare("ROLLBACK");
        st_savepoint_ = prepare("SAVEPOINT item");
        st_release_ = prepare("RELEASE item");
        st_rollback_to_ = prepare("ROLLBACK TO item");
        if (sqlite3_open_v2(path.c_str(), &ckpt_db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK)
            throw std::runtime_error(fmt::format("{}: cannot open a checkpoint connection", path));
    } catch (...) {  // no destructor runs for a constructor that throws
        for (auto* st : {st_hwm_, st_put_, st_pending_, st_delete_, st_begin_, st_commit_, st_rollback_, st_savepoint_, st_release_, st_rollback_to_})
            sqlite3_finalize(st);
        sqlite3_close(ckpt_db_);  // also after a failed open
        sqlite3_close(db_);
        throw;
    }
    sqlite3_busy_timeout(ckpt_db_, 1000);
    // A connection learns that the database is in WAL mode when it first reads it; until then its
    // checkpoints do nothing at all (they report -1 frames). So it reads once now.
    if (sqlite3_exec(ckpt_db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr) != SQLITE_OK) {
        const std::string m = sqlite3_errmsg(ckpt_db_);
        for (auto* st : {st_hwm_, st_put_, st_pending_, st_delete_, st_begin_, st_commit_, st_rollback_, st_savepoint_, st_release_, st_rollback_to_})
            sqlite3_finalize(st);
        sqlite3_close(ckpt_db_);
        sqlite3_close(db_);
        throw std::runtime_error(fmt::format("{}: the checkpoint connection cannot read the database: {}", path, m));
    }
    writer_ = std::thread([this] { writer_loop(); });
    checkpointer_ = std::thread([this] { checkpoint_loop(); });
}

void Store::migrate_reservations() {
    // Databases of earlier versions keep reservations in a table keyed by key ID: move them over
    // in one transaction (a failure leaves the old table as it was and names the problem).
    {
        Stmt q(db_, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'reservation'");
        if (sqlite3_step(q.s) != SQLITE_ROW || sqlite3_column_int(q.s, 0) == 0) return;
    }  // finalized here: DROP TABLE fails while a statement is running
    char* err = nullptr;
    const int rc = sqlite3_exec(db_,
                                "BEGIN IMMEDIATE;"
                                "INSERT INTO key_reservation(stream, offset, key_id, bits, master, slaves, pending, expires)"
                                " SELECT stream, offset, key_id, bits, master, slaves, pending, expires FROM reservation;"
                                "DROP TABLE reservation;"
                                "COMMIT;",
                                nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string m = err ? err : "?";
        sqlite3_free(err);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw std::runtime_error(fmt::format("{}: cannot move reservations to the current table layout: {}", path_, m));
    }
    spdlog::info("{}: reservations moved to the current table layout", path_);
}

void Store::add_mask_column() {
    // Relayed keys (issue 17) carry a one-time-pad mask; a database of an earlier version gets the
    // column (NULL: a direct link's key) in place.
    bool has = false;
    {
        Stmt q(db_, "SELECT count(*) FROM pragma_table_info('key_reservation') WHERE name = 'mask'");
        has = sqlite3_step(q.s) == SQLITE_ROW && sqlite3_column_int(q.s, 0) > 0;
    }
    if (has) return;
    exec("ALTER TABLE key_reservation ADD COLUMN mask BLOB");
    spdlog::info("{}: reservations table given a mask column (relayed keys)", path_);
}

void Store::checkpoint_loop() {
    std::unique_lock lk(mu_);
    while (!stop_) {
        ckpt_cv_.wait_for(lk, std::chrono::milliseconds(250));
        if (stop_) break;
        lk.unlock();
        // PASSIVE: copies what it can without blocking the writer; the fsync happens here.
        int log = 0, done = 0;
        sqlite3_wal_checkpoint_v2(ckpt_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        // The WAL starts again from its beginning only when a write transaction begins with every
        // frame copied. Under steady load the writer appends while a checkpoint runs, so that
        // moment never comes and the WAL would grow without bound. Once it is long, one short
        // checkpoint runs between two commits (they wait for it, 1-3 ms): it copies only the
        // frames written since the one above, and the next commit restarts the WAL.
        if (log >= kWalCatchUpFrames) {
            std::lock_guard wl(write_mu_);
            sqlite3_wal_checkpoint_v2(ckpt_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
            if (done == log) wal_catch_ups_.fetch_add(1, std::memory_order_relaxed);
        }
        lk.lock();
    }
}

sqlite3_stmt* Store::prepare(const char* sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &st, nullptr) != SQLITE_OK)
        throw std::runtime_error(fmt::format("{}: SQLite prepare failed: {}: {}", path_, sql, sqlite3_errmsg(db_)));
    return st;
}

Store::~Store() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    ckpt_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (checkpointer_.joinable()) checkpointer_.join();
    sqlite3_wal_checkpoint_v2(ckpt_db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    sqlite3_close(ckpt_db_);
    for (auto* st : {st_hwm_, st_put_, st_pending_, st_delete_, st_begin_, st_commit_, st_rollback_, st_savepoint_, st_release_, st_rollback_to_})
        sqlite3_finalize(st);
    sqlite3_close(db_);
}

void Store::exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string m = err ? err : "?";
        sqlite3_free(err);
        throw std::runtime_error(fmt::format("{}: SQLite error in \"{}\": {}", path_, sql, m));
    }
}

std::map<std::string, std::uint64_t> Store::load_hwms() {
    std::map<std::string, std::uint64_t> out;
    Stmt st(db_, "SELECT stream, next_offset FROM hwm");
    while (sqlite3_step(st.s) == SQLITE_ROW)
        out[reinterpret_cast<const char*>(sqlite3_column_text(st.s, 0))] = static_cast<std::uint64_t>(sqlite3_column_int64(st.s, 1));
    return out;
}

std::vector<Reservation> Store::load_reservations() {
    std::vector<Reservation> out;
    Stmt st(db_, "SELECT key_id, stream, offset, bits, master, slaves, pending, expires, mask FROM key_reservation");
    while (sqlite3_step(st.s) == SQLITE_ROW) {
        Reservation r;
        if (sqlite3_column_bytes(st.s, 0) != 16) continue;
        std::memcpy(r.key_ID.data(), sqlite3_column_blob(st.s, 0), 16);
        r.stream = reinterpret_cast<const char*>(sqlite3_column_text(st.s, 1));
        r.offset = static_cast<std::uint64_t>(sqlite3_column_int64(st.s, 2));
        r.bits = static_cast<std::uint32_t>(sqlite3_column_int64(st.s, 3));
        r.master_SAE_ID = reinterpret_cast<const char*>(sqlite3_column_text(st.s, 4));
        r.slaves = slaves_parse(sqlite3_column_text(st.s, 5));
        r.pending_slaves = slaves_parse(sqlite3_column_text(st.s, 6));
        r.expires_unix = sqlite3_column_int64(st.s, 7);
        if (const auto n = sqlite3_column_bytes(st.s, 8); n > 0) {
            auto p = static_cast<const std::uint8_t*>(sqlite3_column_blob(st.s, 8));
            r.mask.assign(p, p + n);
        }
        out.push_back(std::move(r));
    }
    return out;
}

std::optional<std::vector<std::uint8_t>> Store::get_meta(const std::string& key) {
    Stmt st(db_, "SELECT v FROM meta WHERE k = ?");
    sqlite3_bind_text(st.s, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_ROW) return std::nullopt;
    auto p = static_cast<const std::uint8_t*>(sqlite3_column_blob(st.s, 0));
    return std::vector<std::uint8_t>(p, p + sqlite3_column_bytes(st.s, 0));
}

void Store::put_meta(const std::string& key, const std::vector<std::uint8_t>& value) {
    Stmt st(db_, "INSERT OR REPLACE INTO meta(k, v) VALUES(?, ?)");
    sqlite3_bind_text(st.s, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st.s, 2, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE) throw std::runtime_error(fmt::format("{}: cannot write meta: {}", path_, sqlite3_errmsg(db_)));
}

void Store::commit(std::vector<Op> ops, std::function<void(bool)> done) {
    bool post = false;
    {
        std::lock_guard lk(mu_);
        if (queue_.empty()) queue_since_ = std::chrono::steady_clock::now();
        queue_.push_back(Item{std::move(ops), std::move(done)});
        if (post_ && !group_posted_) group_posted_ = post = true;
    }
    if (post) post_([this] { posted_group(); });
    else if (!post_) cv_.notify_one();
}

void Store::run_commits_on(Poster post) {
    bool now = false;
    {
        std::lock_guard lk(mu_);
        post_ = std::move(post);
        if (!queue_.empty() && !group_posted_) group_posted_ = now = true;  // the writer no longer takes them
    }
    if (now) post_([this] { posted_group(); });
}

void Store::posted_group() {
    // Under load, a task posted by the first request would commit it almost alone: the requests
    // that arrive at the same moment still wait for the event loop's next poll. So the task steps
    // back (posts itself again) while the group is still growing, for at most kMaxRounds rounds and
    // kMaxGroupWait after the oldest item was queued. A round costs one pass of the event loop; a
    // commit saved is a lock, a transaction and its page writes.
    constexpr int kMaxRounds = 6;
    constexpr auto kMaxGroupWait = std::chrono::microseconds(200);
    bool again = false;
    {
        std::lock_guard lk(mu_);
        const std::size_t n = queue_.size();
        if (n > 0 && group_rounds_ < kMaxRounds && (group_rounds_ < 2 || n > group_seen_) &&
            std::chrono::steady_clock::now() - queue_since_ < kMaxGroupWait) {
            ++group_rounds_;
            group_seen_ = n;
            again = true;
        } else {
            group_rounds_ = 0;
            group_seen_ = 0;
        }
    }
    if (again) {
        post_([this] { posted_group(); });
        return;
    }
    commit_queued();
}

void Store::commit_queued() {
    // write_mu_ first: groups reach the database in the order their items were queued.
    std::lock_guard wl(write_mu_);
    std::deque<Item> batch;
    {
        std::lock_guard lk(mu_);
        batch.swap(queue_);
        group_posted_ = false;
        ++busy_;
    }
    if (!batch.empty()) write_group(batch);
    {
        std::lock_guard lk(mu_);
        --busy_;
    }
    idle_cv_.notify_all();
}

void Store::flush() {
    std::unique_lock lk(mu_);
    if (post_ && !queue_.empty()) {
        // The event loop may be gone (shutdown): commit what is queued here.
        lk.unlock();
        commit_queued();
        lk.lock();
    }
    idle_cv_.wait(lk, [&] { return (queue_.empty() || post_) && busy_ == 0; });
}

bool Store::apply(const Op& o) {
    // Bound statements are reset on every use; `Use` keeps the code below readable.
    struct Use {
        sqlite3_stmt* s;
        explicit Use(sqlite3_stmt* st) : s(st) {
            sqlite3_reset(s);
            sqlite3_clear_bindings(s);
        }
    };
    return std::visit(
        [&](const auto& x) -> bool {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, op::SetHwm>) {
                Use s(st_hwm_);
                sqlite3_bind_text(s.s, 1, x.stream.c_str(), -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(s.s, 2, static_cast<sqlite3_int64>(x.next_offset));
                return sqlite3_step(s.s) == SQLITE_DONE;
            } else if constexpr (std::is_same_v<T, op::PutReservation>) {
                Use s(st_put_);
                sqlite3_bind_text(s.s, 1, x.r.stream.c_str(), -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(s.s, 2, static_cast<sqlite3_int64>(x.r.offset));
                sqlite3_bind_blob(s.s, 3, x.r.key_ID.data(), 16, SQLITE_TRANSIENT);
                sqlite3_bind_int64(s.s, 4, x.r.bits);
                sqlite3_bind_text(s.s, 5, x.r.master_SAE_ID.c_str(), -1, SQLITE_TRANSIENT);
                auto a = slaves_text(x.r.slaves);
                sqlite3_bind_text(s.s, 6, a.c_str(), -1, SQLITE_TRANSIENT);
                auto p = slaves_text(x.r.pending_slaves);
                sqlite3_bind_text(s.s, 7, p.c_str(), -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(s.s, 8, x.r.expires_unix);
                if (x.r.mask.empty()) sqlite3_bind_null(s.s, 9);
                else sqlite3_bind_blob(s.s, 9, x.r.mask.data(), static_cast<int>(x.r.mask.size()), SQLITE_TRANSIENT);
                return sqlite3_step(s.s) == SQLITE_DONE;
            } else if constexpr (std::is_same_v<T, op::SetPending>) {
                Use s(st_pending_);
                auto p = slaves_text(x.pending);
                sqlite3_bind_text(s.s, 1, p.c_str(), -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(s.s, 2, x.stream.c_str(), -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(s.s, 3, static_cast<sqlite3_int64>(x.offset));
                return sqlite3_step(s.s) == SQLITE_DONE;
            } else {
                Use s(st_delete_);
                sqlite3_bind_text(s.s, 1, x.stream.c_str(), -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(s.s, 2, static_cast<sqlite3_int64>(x.offset));
                return sqlite3_step(s.s) == SQLITE_DONE;
            }
        },
        o);
}

void Store::writer_loop() {
    for (;;) {
        std::deque<Item> batch;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return stop_ || (!queue_.empty() && !post_); });
            if (stop_ && (queue_.empty() || post_)) return;
            batch.swap(queue_);
            ++busy_;
        }
        {
            std::lock_guard wl(write_mu_);
            write_group(batch);
        }
        {
            std::lock_guard lk(mu_);
            --busy_;
        }
        idle_cv_.notify_all();
    }
}

void Store::write_group(std::deque<Item>& batch) {
    // One transaction for the whole group; an item whose statements fail is reported failed
    // but does not abort the others (each item runs inside a savepoint). The transaction-control
    // statements are prepared once (parsing them was a visible share of a commit's cost).
    auto run = [](sqlite3_stmt* st) {
        const int rc = sqlite3_step(st);
        sqlite3_reset(st);
        return rc == SQLITE_DONE;
    };
    std::vector<bool> ok(batch.size(), true);
    // A group that moves a high-water mark is fsynced at its commit even with StateSync::Normal:
    // if a power loss took the mark back, offsets below the lost mark that were already handed out
    // would be handed out again after the restart. Marks move once per MiB of a key stream, so this
    // costs one fsync per 32768 keys of 256 bits.
    bool hwm = false;
    if (sync_ == StateSync::Normal)
        for (const auto& item : batch)
            for (const auto& o : item.ops) hwm = hwm || std::holds_alternative<op::SetHwm>(o);
    // (Executed, not prepared once: SQLite applies PRAGMA synchronous when it compiles the statement.)
    if (hwm) sqlite3_exec(db_, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
    bool committed = run(st_begin_);
    if (committed) {
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (batch.size() > 1) run(st_savepoint_);
            for (const auto& o : batch[i].ops)
                if (!apply(o)) {
                    ok[i] = false;
                    break;
                }
            if (batch.size() == 1) continue;  // the transaction itself is the item's unit
            if (ok[i]) run(st_release_);
            else {
                spdlog::error("state database: write failed: {}", sqlite3_errmsg(db_));
                run(st_rollback_to_);
                run(st_release_);
            }
        }
        if (batch.size() == 1 && !ok[0]) {
            spdlog::error("state database: write failed: {}", sqlite3_errmsg(db_));
            run(st_rollback_);
            committed = false;
        } else {
            committed = run(st_commit_);
            if (!committed) {
                spdlog::error("state database: commit failed: {}", sqlite3_errmsg(db_));
                run(st_rollback_);
            }
        }
    }
    if (hwm) sqlite3_exec(db_, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
    commits_.fetch_add(1, std::memory_order_relaxed);
    if (committed && (hwm || sync_ == StateSync::Full)) synced_commits_.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t i = 0; i < batch.size(); ++i)
        if (batch[i].done) batch[i].done(committed && ok[i]);
}

}  // namespace qkd::kme
