#include <gtest/gtest.h>

#include <chrono>

#include <cstdio>

#include <thread>

#include <atomic>

#include <sqlite3.h>

#include <future>

#include "qkd/kme/store.hpp"
#include "test_util.hpp"

using namespace qkd::kme;

TEST(Store, GroupCommitPersistsAndReloads) {
    auto dir = kmetest::temp_dir("store");
    auto db = (dir / "s.db").string();
    qkd::Uuid id = qkd::uuid_random_v4();
    {
        Store s(db);
        std::promise<bool> p1, p2;
        s.commit({op::SetHwm{"A->B", 4096}, op::PutReservation{Reservation{id, "A->B", 32, 256, "SAE_A", {"SAE_B", "SAE_C"}, {"SAE_B", "SAE_C"}, 99}}},
                 [&](bool ok) { p1.set_value(ok); });
        s.commit({op::SetHwm{"A->B", 1024}, op::SetPending{"A->B", 32, {"SAE_C"}}}, [&](bool ok) { p2.set_value(ok); });  // hwm never goes back
        EXPECT_TRUE(p1.get_future().get());
        EXPECT_TRUE(p2.get_future().get());
    }
    Store s(db);
    auto h = s.load_hwms();
    EXPECT_EQ(h["A->B"], 4096u);
    auto rs = s.load_reservations();
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].key_ID, id);
    EXPECT_EQ(rs[0].offset, 32u);
    EXPECT_EQ(rs[0].slaves.size(), 2u);
    ASSERT_EQ(rs[0].pending_slaves.size(), 1u);
    EXPECT_EQ(rs[0].pending_slaves[0], "SAE_C");
    std::promise<bool> p3;
    s.commit({op::DeleteReservation{"A->B", 32}}, [&](bool ok) { p3.set_value(ok); });
    EXPECT_TRUE(p3.get_future().get());
    EXPECT_TRUE(s.load_reservations().empty());
    std::filesystem::remove_all(dir);
}

TEST(Store, DuplicateReservationFailsOnlyItsOwnItem) {
    auto dir = kmetest::temp_dir("store2");
    Store s((dir / "s.db").string());
    qkd::Uuid id = qkd::uuid_random_v4();
    Reservation r{id, "A->B", 0, 256, "SAE_A", {"SAE_B"}, {"SAE_B"}, 99};
    std::promise<bool> a, b, c;
    s.commit({op::PutReservation{r}}, [&](bool ok) { a.set_value(ok); });
    s.commit({op::PutReservation{r}}, [&](bool ok) { b.set_value(ok); });
    s.commit({op::SetHwm{"X", 1}}, [&](bool ok) { c.set_value(ok); });
    EXPECT_TRUE(a.get_future().get());
    EXPECT_FALSE(b.get_future().get());
    EXPECT_TRUE(c.get_future().get());
    std::filesystem::remove_all(dir);
}

TEST(Store, UnwritableLocationIsAClearError) {
    try {
        Store s("/nonexistent-dir/x/state.db");
        FAIL() << "expected an error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x/state.db"), std::string::npos);
    }
}

TEST(Store, DatabaseOfAnEarlierLayoutIsMigrated) {
    // Databases of earlier versions (4 KiB pages, reservations in a table keyed by key ID) are
    // opened, their reservations moved to the current table, and used.
    auto dir = kmetest::temp_dir("store-old");
    auto db = (dir / "s.db").string();
    {
        sqlite3* h = nullptr;
        ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(h,
                               "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;"
                               "CREATE TABLE reservation(key_id BLOB PRIMARY KEY, stream TEXT NOT NULL, offset INTEGER NOT NULL,"
                               " bits INTEGER NOT NULL, master TEXT NOT NULL, slaves TEXT NOT NULL, pending TEXT NOT NULL, expires INTEGER NOT NULL);"
                               "INSERT INTO reservation VALUES(x'00112233445566778899aabbccddeeff', 'A->B', 64, 256, 'SAE_A', '[\"SAE_B\"]', '[\"SAE_B\"]', 99);",
                               nullptr, nullptr, nullptr),
                  SQLITE_OK);
        sqlite3_close(h);
    }
    qkd::Uuid id = qkd::uuid_random_v4();
    {
        Store s(db);
        auto rs = s.load_reservations();
        ASSERT_EQ(rs.size(), 1u);
        EXPECT_EQ(rs[0].offset, 64u);
        ASSERT_EQ(rs[0].pending_slaves.size(), 1u);
        EXPECT_EQ(rs[0].pending_slaves[0], "SAE_B");
        std::promise<bool> p1, p2;
        s.commit({op::PutReservation{Reservation{id, "A->B", 96, 256, "SAE_A", {"SAE_B"}, {"SAE_B"}, 99}}}, [&](bool ok) { p1.set_value(ok); });
        s.commit({op::DeleteReservation{rs[0].stream, rs[0].offset}}, [&](bool ok) { p2.set_value(ok); });
        EXPECT_TRUE(p1.get_future().get());
        EXPECT_TRUE(p2.get_future().get());
    }
    Store s(db);
    auto rs = s.load_reservations();
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].key_ID, id);
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT count(*) FROM sqlite_schema WHERE name = 'reservation'", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(st, 0), 0);  // the old table is gone
    sqlite3_finalize(st);
    sqlite3_close(h);
    std::filesystem::remove_all(dir);
}

TEST(Store, AnOffsetOfAStreamIsReservedOnlyOnce) {
    // The table's key is (stream, offset): a second reservation of the same material under another
    // key ID fails, even if the in-memory checks were bypassed.
    auto dir = kmetest::temp_dir("store-offset");
    Store s((dir / "s.db").string());
    auto res = [](const char* stream, const char* master) {
        return op::PutReservation{Reservation{qkd::uuid_random_v4(), stream, 64, 256, master, {"SAE_B"}, {"SAE_B"}, 99}};
    };
    std::promise<bool> a, b, c;
    s.commit({res("A->B", "SAE_A")}, [&](bool ok) { a.set_value(ok); });
    s.commit({res("A->B", "SAE_A")}, [&](bool ok) { b.set_value(ok); });
    s.commit({res("C->B", "SAE_C")}, [&](bool ok) { c.set_value(ok); });
    EXPECT_TRUE(a.get_future().get());
    EXPECT_FALSE(b.get_future().get());
    EXPECT_TRUE(c.get_future().get());  // offset 64 of another stream is other material
    EXPECT_EQ(s.load_reservations().size(), 2u);
    std::filesystem::remove_all(dir);
}

TEST(Store, ConsecutiveReservationsShareWalPages) {
    // A group of 64 reservations at consecutive offsets, then a group of 8 deliveries of the
    // oldest, append few pages to the WAL (with random key IDs as the table's key, each key dirtied
    // a page of its own: about 64 and 8 pages).
    auto dir = kmetest::temp_dir("store-pages");
    Store s((dir / "s.db").string());
    auto res = [](int i) {
        return op::PutReservation{Reservation{qkd::uuid_random_v4(), "A->B", static_cast<std::uint64_t>(i) * 32, 256, "SAE_A", {"SAE_B"}, {"SAE_B"}, 99}};
    };
    auto run = [&](std::vector<Op> ops) {
        std::promise<bool> p;
        s.commit(std::move(ops), [&](bool ok) { p.set_value(ok); });
        return p.get_future().get();
    };
    std::vector<Op> fill;  // an existing population, across which random keys would scatter
    for (int i = 0; i < 2000; ++i) fill.push_back(res(i));
    ASSERT_TRUE(run(std::move(fill)));
    const auto before = s.wal_pages_written();
    std::vector<Op> batch;
    for (int i = 2000; i < 2064; ++i) batch.push_back(res(i));
    ASSERT_TRUE(run(std::move(batch)));
    const auto after_put = s.wal_pages_written();
    std::vector<Op> del;
    for (int i = 0; i < 8; ++i) del.push_back(op::DeleteReservation{"A->B", static_cast<std::uint64_t>(i) * 32});
    ASSERT_TRUE(run(std::move(del)));
    const auto after_del = s.wal_pages_written();
    EXPECT_GT(after_put, before);
    EXPECT_LE(after_put - before, 20u) << "pages written for 64 consecutive reservations";
    EXPECT_GT(after_del, after_put);
    EXPECT_LE(after_del - after_put, 4u) << "pages written for 8 deliveries of neighbouring keys";
    std::filesystem::remove_all(dir);
}

TEST(Store, WalStaysBoundedUnderCommitsWithoutPause) {
    // Commits back to back for a few seconds, so that the writer never pauses while a checkpoint runs: the
    // WAL used never to start again and grew without bound (230 MB in a 30 s benchmark). The
    // checkpointer now holds the commits back for one short catch-up checkpoint once the WAL is
    // long, and the next commit starts it again from the beginning.
    auto dir = kmetest::temp_dir("store-wal-bound");
    const auto path = (dir / "s.db").string();
    {
        Store s(path);
        std::atomic<int> outstanding{0}, failed{0};
        std::uint64_t n = 0;
        // Until the WAL has seen three times the catch-up length (a busy CI machine writes slower),
        // at least 2.5 s, at most 60 s.
        const auto start = std::chrono::steady_clock::now();
        auto enough = [&] {
            const auto t = std::chrono::steady_clock::now() - start;
            if (t > std::chrono::seconds(60)) return true;
            return t > std::chrono::milliseconds(2500) && s.wal_pages_written() > 3u * Store::kWalCatchUpFrames;
        };
        while (!enough()) {
            while (outstanding.load() >= 32) std::this_thread::yield();
            std::vector<Op> ops;
            for (int k = 0; k < 8; ++k, ++n) {
                ops.push_back(op::PutReservation{
                    Reservation{qkd::uuid_random_v4(), "A->B", n * 32, 256, "SAE_A", {"SAE_B"}, {"SAE_B"}, 99}});
                if (n >= 512) ops.push_back(op::DeleteReservation{"A->B", (n - 512) * 32});  // a steady population
            }
            ++outstanding;
            s.commit(std::move(ops), [&](bool ok) {
                if (!ok) ++failed;
                --outstanding;
            });
        }
        while (outstanding.load() > 0) std::this_thread::yield();
        EXPECT_EQ(failed.load(), 0);
        const auto pages = s.wal_pages_written();
        const auto wal = std::filesystem::file_size(path + "-wal");
        std::printf("%llu reservations, %llu WAL pages written, %llu catch-ups, WAL file %llu bytes\n", static_cast<unsigned long long>(n),
                    static_cast<unsigned long long>(pages), static_cast<unsigned long long>(s.wal_catch_ups()),
                    static_cast<unsigned long long>(wal));
        ASSERT_GT(pages, 3u * Store::kWalCatchUpFrames) << "too few writes to test the bound on this machine";
        EXPECT_GE(s.wal_catch_ups(), 1u);
        EXPECT_LT(wal, 3u * Store::kWalCatchUpFrames * 1100u) << "the WAL grew with the writes";
    }
    Store again(path);  // and everything is still there
    EXPECT_EQ(again.load_reservations().size(), 512u);
    std::filesystem::remove_all(dir);
}

TEST(Store, NewDatabaseUsesSmallPagesAndOneBTree) {
    auto dir = kmetest::temp_dir("store-new");
    auto db = (dir / "s.db").string();
    { Store s(db); }
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    auto one_int = [&](const char* sql) {
        sqlite3_stmt* st = nullptr;
        EXPECT_EQ(sqlite3_prepare_v2(h, sql, -1, &st, nullptr), SQLITE_OK) << sql;
        std::int64_t v = -1;
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
    };
    EXPECT_EQ(one_int("PRAGMA page_size"), 1024);
    EXPECT_EQ(one_int("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'sqlite_autoindex_key_reservation%'"), 0);  // no separate index
    sqlite3_close(h);
    std::filesystem::remove_all(dir);
}
