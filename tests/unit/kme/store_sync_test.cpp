// Which commits of the state database reach the disk with an fsync (StateSync): observed through a
// SQLite VFS that forwards to the default one and counts xSync calls on write-ahead-log files made
// by the thread that runs the commits (the checkpointer's syncs, on its own thread, are not counted).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <deque>
#include <functional>
#include <thread>

#include "qkd/kme/store.hpp"
#include "test_util.hpp"

using namespace qkd::kme;

namespace {

sqlite3_vfs* g_real = nullptr;
sqlite3_vfs g_counting{};
sqlite3_io_methods g_methods{};
std::atomic<std::thread::id> g_watch{};
std::atomic<int> g_wal_syncs{0};

struct File {
    sqlite3_file base;
    sqlite3_file* real;
    bool wal;
};
sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }

int f_close(sqlite3_file* f) { return real(f)->pMethods->xClose(real(f)); }
int f_read(sqlite3_file* f, void* p, int n, sqlite3_int64 o) { return real(f)->pMethods->xRead(real(f), p, n, o); }
int f_write(sqlite3_file* f, const void* p, int n, sqlite3_int64 o) { return real(f)->pMethods->xWrite(real(f), p, n, o); }
int f_truncate(sqlite3_file* f, sqlite3_int64 n) { return real(f)->pMethods->xTruncate(real(f), n); }
int f_sync(sqlite3_file* f, int flags) {
    if (reinterpret_cast<File*>(f)->wal && std::this_thread::get_id() == g_watch.load()) ++g_wal_syncs;
    return real(f)->pMethods->xSync(real(f), flags);
}
int f_size(sqlite3_file* f, sqlite3_int64* n) { return real(f)->pMethods->xFileSize(real(f), n); }
int f_lock(sqlite3_file* f, int l) { return real(f)->pMethods->xLock(real(f), l); }
int f_unlock(sqlite3_file* f, int l) { return real(f)->pMethods->xUnlock(real(f), l); }
int f_reserved(sqlite3_file* f, int* r) { return real(f)->pMethods->xCheckReservedLock(real(f), r); }
int f_control(sqlite3_file* f, int op, void* a) { return real(f)->pMethods->xFileControl(real(f), op, a); }
int f_sector(sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); }
int f_device(sqlite3_file* f) { return real(f)->pMethods->xDeviceCharacteristics(real(f)); }
int f_shm_map(sqlite3_file* f, int i, int sz, int ext, void volatile** p) { return real(f)->pMethods->xShmMap(real(f), i, sz, ext, p); }
int f_shm_lock(sqlite3_file* f, int o, int n, int fl) { return real(f)->pMethods->xShmLock(real(f), o, n, fl); }
void f_shm_barrier(sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); }
int f_shm_unmap(sqlite3_file* f, int del) { return real(f)->pMethods->xShmUnmap(real(f), del); }
int f_fetch(sqlite3_file* f, sqlite3_int64 o, int n, void** p) { return real(f)->pMethods->xFetch(real(f), o, n, p); }
int f_unfetch(sqlite3_file* f, sqlite3_int64 o, void* p) { return real(f)->pMethods->xUnfetch(real(f), o, p); }

int v_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out) {
    auto* f = reinterpret_cast<File*>(file);
    f->real = reinterpret_cast<sqlite3_file*>(f + 1);
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    const int rc = g_real->xOpen(g_real, name, f->real, flags, out);
    f->base.pMethods = f->real->pMethods ? &g_methods : nullptr;
    return rc;
}

// Makes the counting VFS the default for the lifetime of the object.
struct CountingVfs {
    CountingVfs() {
        g_real = sqlite3_vfs_find(nullptr);
        g_counting = *g_real;
        g_counting.szOsFile = static_cast<int>(sizeof(File)) + g_real->szOsFile;
        g_counting.zName = "qkd-counting";
        g_counting.pNext = nullptr;
        g_counting.xOpen = v_open;
        g_methods = sqlite3_io_methods{3,        f_close,  f_read,    f_write,       f_truncate,  f_sync,      f_size,
                                       f_lock,   f_unlock, f_reserved, f_control,    f_sector,    f_device,    f_shm_map,
                                       f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch};
        EXPECT_EQ(sqlite3_vfs_register(&g_counting, 1), SQLITE_OK);
        g_watch = std::this_thread::get_id();
        g_wal_syncs = 0;
    }
    ~CountingVfs() {
        sqlite3_vfs_register(g_real, 1);
        sqlite3_vfs_unregister(&g_counting);
        g_watch = std::thread::id{};
    }
};

// Runs the store's group commits on this thread (run_commits_on), so that their syncs are counted.
struct InlineCommits {
    std::deque<std::function<void()>> tasks;
    explicit InlineCommits(Store& s) {
        s.run_commits_on([this](std::function<void()> f) { tasks.push_back(std::move(f)); });
    }
    bool commit(Store& s, std::vector<Op> ops) {
        int result = -1;
        s.commit(std::move(ops), [&](bool ok) { result = ok; });
        while (!tasks.empty()) {
            auto f = std::move(tasks.front());
            tasks.pop_front();
            f();
        }
        EXPECT_NE(result, -1) << "the commit callback did not run";
        return result == 1;
    }
};

op::PutReservation reservation(std::uint64_t offset) {
    return op::PutReservation{Reservation{qkd::uuid_random_v4(), "A->B", offset, 256, "SAE_A", {"SAE_B"}, {"SAE_B"}, 99}};
}

}  // namespace

TEST(StoreSync, NormalFsyncsOnlyCommitsThatMoveAHighWaterMark) {
    auto dir = kmetest::temp_dir("store-sync-normal");
    CountingVfs vfs;
    {
        Store s((dir / "s.db").string());
        EXPECT_EQ(s.sync(), StateSync::Normal);
        InlineCommits run(s);
        g_wal_syncs = 0;  // creating the database syncs; the commits below are what is measured
        ASSERT_TRUE(run.commit(s, {reservation(0)}));
        ASSERT_TRUE(run.commit(s, {reservation(32), op::DeleteReservation{"A->B", 0}}));
        EXPECT_EQ(g_wal_syncs.load(), 0) << "reservations and deliveries are not fsynced with state_sync = normal";
        EXPECT_EQ(s.synced_commits(), 0u);
        // A high-water mark: this commit reaches the disk before its callback runs.
        ASSERT_TRUE(run.commit(s, {op::SetHwm{"A->B", 1 << 20}, reservation(64)}));
        const int after_hwm = g_wal_syncs.load();
        EXPECT_GE(after_hwm, 1) << "a commit that moves a high-water mark must fsync the write-ahead log";
        EXPECT_EQ(s.synced_commits(), 1u);
        // ... and the connection is back to NORMAL for the next ones.
        ASSERT_TRUE(run.commit(s, {reservation(96)}));
        ASSERT_TRUE(run.commit(s, {op::DeleteReservation{"A->B", 32}}));
        EXPECT_EQ(g_wal_syncs.load(), after_hwm);
        EXPECT_EQ(s.synced_commits(), 1u);
        EXPECT_EQ(s.commits(), 5u);
    }
    Store s((dir / "s.db").string());
    EXPECT_EQ(s.load_hwms()["A->B"], 1u << 20);
    EXPECT_EQ(s.load_reservations().size(), 2u);
    std::filesystem::remove_all(dir);
}

TEST(StoreSync, FullFsyncsEveryCommit) {
    auto dir = kmetest::temp_dir("store-sync-full");
    CountingVfs vfs;
    {
        Store s((dir / "s.db").string(), StateSync::Full);
        EXPECT_EQ(s.sync(), StateSync::Full);
        InlineCommits run(s);
        int before = g_wal_syncs.load();
        for (std::uint64_t i = 0; i < 4; ++i) {
            ASSERT_TRUE(run.commit(s, {reservation(i * 32)}));
            EXPECT_GT(g_wal_syncs.load(), before) << "commit " << i << " was not fsynced";
            before = g_wal_syncs.load();
        }
        ASSERT_TRUE(run.commit(s, {op::SetHwm{"A->B", 4096}}));
        EXPECT_GT(g_wal_syncs.load(), before);
        EXPECT_EQ(s.synced_commits(), 5u);
    }
    Store s((dir / "s.db").string());
    EXPECT_EQ(s.load_reservations().size(), 4u);
    std::filesystem::remove_all(dir);
}
