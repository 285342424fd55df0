#include <gtest/gtest.h>

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
        s.commit({op::SetHwm{"A->B", 1024}, op::SetPending{id, {"SAE_C"}}}, [&](bool ok) { p2.set_value(ok); });  // hwm never goes back
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
    s.commit({op::DeleteReservation{id}}, [&](bool ok) { p3.set_value(ok); });
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

TEST(Store, DatabaseOfTheEarlierLayoutStillWorks) {
    // Databases created before reservations moved to a WITHOUT ROWID table with 1 KiB pages (4 KiB
    // pages, rowid table with a primary-key index) are opened as they are and used unchanged.
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
        s.commit({op::DeleteReservation{rs[0].key_ID}}, [&](bool ok) { p2.set_value(ok); });
        EXPECT_TRUE(p1.get_future().get());
        EXPECT_TRUE(p2.get_future().get());
    }
    Store s(db);
    auto rs = s.load_reservations();
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].key_ID, id);
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
    EXPECT_EQ(one_int("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'sqlite_autoindex_reservation%'"), 0);  // no separate index
    sqlite3_close(h);
    std::filesystem::remove_all(dir);
}
