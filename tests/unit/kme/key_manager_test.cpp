// The key lifecycle of two KMEs wired back to back in one process (no TLS): every ETSI 014
// outcome of Get key / Get key with key IDs, the reservation on the peer, and the invariants
// "delivered once to the master and once per authorised slave" and "a failed sync burns material".
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <future>
#include <set>

#include "qkd/common/encoding.hpp"
#include "qkd/kme/key_manager.hpp"
#include "qkd/kme/key_stream.hpp"
#include "test_util.hpp"

using namespace qkd::kme;
namespace etsi = qkd::etsi014;

namespace {

class LoopbackPeer final : public PeerClient {
public:
    KeyManager* target = nullptr;
    std::string self;
    std::string fail_with;  // non-empty: the peer is "down"
    int calls = 0;
    // A slow link: the confirmation arrives `slow_by` after the peer committed the reservation.
    kmetest::FakeClock* clock = nullptr;
    std::chrono::milliseconds slow_by{0};
    void reserve(SyncRequest req, std::function<void(std::string)> done) override {
        ++calls;
        if (!fail_with.empty()) return done(fail_with);
        target->peer_reserve(self, req, [this, done](ApiResult<int> r) {
            if (clock) clock->advance(slow_by);
            done(r ? "" : r.error().message);
        });
    }
};

Config make_config(const std::string& id, const std::string& peer, std::vector<std::string> saes, std::vector<std::string> peer_saes,
                   const std::filesystem::path& dir) {
    Config c;
    c.file = (dir / (id + ".toml")).string();
    c.kme_id = id;
    c.state_db = (dir / (id + ".db")).string();
    c.saes = std::move(saes);
    c.limits.max_key_per_request = 8;
    c.limits.max_key_count = 64;  // 64 keys of 256 bits per direction
    c.limits.max_SAE_ID_count = 2;
    c.reservation_ttl = std::chrono::seconds(60);
    PeerConfig p;
    p.kme_id = peer;
    p.saes = std::move(peer_saes);
    p.link.seed_file = (dir / "seed").string();
    p.link.key_rate_bps = 0;  // no refill: the budget is exactly the start buffer
    c.local_link.key_rate_bps = 0;
    c.peers.push_back(p);
    return c;
}

template <class F>
ApiResult<etsi::KeyContainer> call(F f) {
    std::promise<ApiResult<etsi::KeyContainer>> p;
    f([&](ApiResult<etsi::KeyContainer> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
}

struct Pair : ::testing::Test {
    std::filesystem::path dir = kmetest::temp_dir("km");
    kmetest::FakeClock clock;
    std::shared_ptr<LoopbackPeer> to_b = std::make_shared<LoopbackPeer>(), to_a = std::make_shared<LoopbackPeer>();
    Config ca, cb;
    std::unique_ptr<Store> sa, sb;
    std::unique_ptr<KeyManager> a, b;

    void SetUp() override {
        kmetest::write(dir / "seed", std::string(64, 'a'));
        ca = make_config("KME_A", "KME_B", {"SAE_A", "SAE_C"}, {"SAE_B"}, dir);
        cb = make_config("KME_B", "KME_A", {"SAE_B"}, {"SAE_A", "SAE_C"}, dir);
        start();
    }
    void start() {
        sa = std::make_unique<Store>(ca.state_db);
        sb = std::make_unique<Store>(cb.state_db);
        a = std::make_unique<KeyManager>(ca, *sa, clock, std::map<std::string, std::shared_ptr<PeerClient>>{{"KME_B", to_b}});
        b = std::make_unique<KeyManager>(cb, *sb, clock, std::map<std::string, std::shared_ptr<PeerClient>>{{"KME_A", to_a}});
        to_b->target = b.get();
        to_b->self = "KME_A";
        to_a->target = a.get();
        to_a->self = "KME_B";
    }
    // What KME_A sends with a reservation of the emulated link KME_A->KME_B (KeyMaterial::fingerprint).
    std::string link_ab_check() const {
        auto seed = read_seed_file((dir / "seed").string());
        return KeyStream(seed.view(), "KME_A->KME_B").fingerprint(0, 32);
    }
    void restart() {
        a.reset();
        b.reset();
        sa.reset();
        sb.reset();
        start();
    }
    void TearDown() override {
        a.reset();
        b.reset();
        sa.reset();
        sb.reset();
        std::filesystem::remove_all(dir);
    }
    ApiResult<etsi::KeyContainer> enc(const std::string& caller, const std::string& slave, etsi::KeyRequest r = {}) {
        return call([&](auto done) { a->get_key(caller, slave, r, done); });
    }
    ApiResult<etsi::KeyContainer> dec(KeyManager& km, const std::string& caller, const std::string& master, std::vector<std::string> ids) {
        etsi::KeyIds k;
        for (auto& i : ids) k.key_IDs.push_back({i, std::nullopt});
        return call([&](auto done) { km.get_key_with_ids(caller, master, k, done); });
    }
};

}  // namespace

TEST_F(Pair, MasterAndSlaveGetTheSameKeyExactlyOnce) {
    // SAE_A -> KME_A: enc_keys for SAE_B; KME_A reserves on KME_B; SAE_B -> KME_B: dec_keys.
    etsi::KeyRequest r;
    r.number = 3;
    r.size = 512;
    auto m = enc("SAE_A", "SAE_B", r);
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_EQ(m->keys.size(), 3u);
    EXPECT_EQ(m->keys[0].key.size(), 64u);
    std::set<std::string> ids;
    for (auto& k : m->keys) ids.insert(k.key_ID);
    EXPECT_EQ(ids.size(), 3u);
    EXPECT_FALSE(qkd::ct_equal(m->keys[0].key, m->keys[1].key));
    auto s = dec(*b, "SAE_B", "SAE_A", {m->keys[2].key_ID, m->keys[0].key_ID});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->keys[0].key_ID, m->keys[2].key_ID);
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m->keys[2].key));
    EXPECT_TRUE(qkd::ct_equal(s->keys[1].key, m->keys[0].key));
    // Consumed: a second fetch finds nothing; the remaining key is still there.
    auto again = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().status, 400);
    EXPECT_EQ(again.error().message, "one or more keys specified are not found on KME");
    EXPECT_TRUE(dec(*b, "SAE_B", "SAE_A", {m->keys[1].key_ID}));
    EXPECT_EQ(a->keys_delivered_master, 3u);
    EXPECT_EQ(b->keys_delivered_slave, 3u);
}

TEST_F(Pair, PeerReservationsNeverShareAKeyIdOrAnOffset) {
    // A misbehaving peer: the same key ID twice in one request, the same offset twice, and an
    // offset reserved earlier under another key ID. None may leave a second copy of a key ID or an
    // in-memory entry whose deletion would address another reservation's row.
    auto reserve = [&](std::vector<SyncKey> keys) {
        SyncRequest r{"KME_A", "KME_A->KME_B", "SAE_A", {"SAE_B"}, 4102444800, std::move(keys), link_ab_check()};
        std::promise<std::string> p;
        b->peer_reserve("KME_A", r, [&](ApiResult<int> res) { p.set_value(res ? "" : res.error().message); });
        return p.get_future().get();
    };
    const qkd::Uuid x = qkd::uuid_random_v4(), y = qkd::uuid_random_v4(), z = qkd::uuid_random_v4();
    EXPECT_NE(reserve({{x, 1 << 20, 256}, {x, 2 << 20, 256}}), "");  // one key ID twice
    EXPECT_NE(reserve({{x, 1 << 20, 256}, {y, 1 << 20, 256}}), "");  // one offset twice
    EXPECT_EQ(b->reservation_count(), 0u);
    EXPECT_EQ(reserve({{x, 1 << 20, 256}}), "");
    EXPECT_NE(reserve({{z, 1 << 20, 256}}), "");  // offset taken by x: the commit is refused
    EXPECT_EQ(b->reservation_count(), 1u);        // and z is not left in memory
    auto got = dec(*b, "SAE_B", "SAE_A", {qkd::uuid_format(z)});
    EXPECT_FALSE(got);
    restart();
    auto again = dec(*b, "SAE_B", "SAE_A", {qkd::uuid_format(x)});
    ASSERT_TRUE(again) << again.error().message;  // x's row survived everything above
    EXPECT_EQ(again->keys.size(), 1u);
}

TEST_F(Pair, DecKeysIsAllOrNothingAndChecksTheMaster) {
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m);
    auto mixed = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID, "00000000-0000-4000-8000-000000000000"});
    ASSERT_FALSE(mixed);
    EXPECT_EQ(mixed.error().status, 400);
    ASSERT_EQ(mixed.error().details.size(), 1u);
    EXPECT_EQ(mixed.error().details[0].value, "00000000-0000-4000-8000-000000000000");
    auto wrong_master = dec(*b, "SAE_B", "SAE_C", {m->keys[0].key_ID});
    EXPECT_FALSE(wrong_master);
    EXPECT_TRUE(dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID}));  // still there after the failures
    EXPECT_FALSE(dec(*b, "SAE_B", "SAE_A", {"not-a-uuid"}));
}

TEST_F(Pair, OnlyAuthorisedSlavesAndLocalCallers) {
    auto m = enc("SAE_A", "SAE_C");  // local pair on KME_A
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(to_b->calls, 0);  // nothing crosses to the peer for a local pair
    auto stranger = dec(*a, "SAE_A", "SAE_A", {m->keys[0].key_ID});  // SAE_A is not a slave of its own key
    ASSERT_FALSE(stranger);
    EXPECT_EQ(stranger.error().status, 401);
    auto slave = dec(*a, "SAE_C", "SAE_A", {m->keys[0].key_ID});
    ASSERT_TRUE(slave);
    EXPECT_TRUE(qkd::ct_equal(slave->keys[0].key, m->keys[0].key));
    // A caller not attached to this KME is unauthorised everywhere.
    EXPECT_EQ(enc("SAE_B", "SAE_A").error().status, 401);
    EXPECT_EQ(dec(*b, "SAE_A", "SAE_B", {m->keys[0].key_ID}).error().status, 401);
    EXPECT_EQ(a->status("SAE_B", "SAE_A").error().status, 401);
}

TEST_F(Pair, MulticastDeliversOncePerSlave) {
    etsi::KeyRequest r;
    r.additional_slave_SAE_IDs = {"SAE_C"};
    auto m = enc("SAE_A", "SAE_B", r);
    ASSERT_TRUE(m) << m.error().message;
    auto viaB = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
    auto viaA = dec(*a, "SAE_C", "SAE_A", {m->keys[0].key_ID});
    ASSERT_TRUE(viaB);
    ASSERT_TRUE(viaA) << viaA.error().message;
    EXPECT_TRUE(qkd::ct_equal(viaB->keys[0].key, m->keys[0].key));
    EXPECT_TRUE(qkd::ct_equal(viaA->keys[0].key, m->keys[0].key));
    EXPECT_FALSE(dec(*a, "SAE_C", "SAE_A", {m->keys[0].key_ID}));
    r.additional_slave_SAE_IDs = {"SAE_C", "SAE_B", "X"};
    EXPECT_NE(enc("SAE_A", "SAE_B", r).error().message.find("max_SAE_ID_count"), std::string::npos);
    r.additional_slave_SAE_IDs = {"SAE_B"};
    EXPECT_NE(enc("SAE_A", "SAE_B", r).error().message.find("listed twice"), std::string::npos);
}

TEST_F(Pair, RequestValidationUsesTheCanonicalMessages) {
    etsi::KeyRequest r;
    r.size = 100;
    EXPECT_EQ(enc("SAE_A", "SAE_B", r).error().message, "size shall be a multiple of 8");
    r.size = 32;
    EXPECT_NE(enc("SAE_A", "SAE_B", r).error().message.find("min_key_size"), std::string::npos);
    r = {};
    r.number = 9;
    EXPECT_NE(enc("SAE_A", "SAE_B", r).error().message.find("max_key_per_request"), std::string::npos);
    r = {};
    r.extension_mandatory = {{"abc_route_type", "direct"}};
    auto e = enc("SAE_A", "SAE_B", r);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().status, 400);
    EXPECT_EQ(e.error().message, "not all extension_mandatory parameters are supported");
    ASSERT_EQ(e.error().details.size(), 1u);
    EXPECT_EQ(e.error().details[0].name, "extension_mandatory_unsupported");
    EXPECT_EQ(enc("SAE_A", "NOBODY").error().status, 400);
    EXPECT_EQ(to_b->calls, 0);
}

TEST_F(Pair, PeerDownIs503AndTheMaterialIsBurned) {
    to_b->fail_with = "connection refused";
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().status, 503);
    EXPECT_NE(m.error().message.find("connection refused"), std::string::npos);
    EXPECT_EQ(a->keys_burned, 1u);
    EXPECT_EQ(a->sync_failures, 1u);
    auto before = a->pool_levels();
    to_b->fail_with.clear();
    auto ok = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(ok);
    // The burned offset is never reused: the next key starts after it.
    EXPECT_EQ(b->reservation_count(), 1u);
    for (auto& l : a->pool_levels()) {
        if (l.stream == "KME_A->KME_B") {
            EXPECT_EQ(l.next_offset, 64u);
        }
    }
    (void)before;
}

TEST_F(Pair, PoolExhaustionIs503AndStatusCountsKeys) {
    auto st = a->status("SAE_A", "SAE_B");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->stored_key_count, 64);
    EXPECT_EQ(st->target_KME_ID, "KME_B");
    EXPECT_EQ(st->key_size, 256);
    etsi::KeyRequest r;
    r.number = 8;
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(enc("SAE_A", "SAE_B", r));
    EXPECT_EQ(a->status("SAE_A", "SAE_B")->stored_key_count, 0);
    auto e = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().status, 503);
    EXPECT_NE(e.error().message.find("not enough key material"), std::string::npos);
}

TEST_F(Pair, UnclaimedReservationsExpire) {
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m);
    clock.advance(std::chrono::seconds(30));
    EXPECT_EQ(b->expire_reservations(), 0u);
    clock.advance(std::chrono::seconds(31));
    EXPECT_EQ(b->expire_reservations(), 1u);
    EXPECT_FALSE(dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID}));
}

TEST_F(Pair, RestartKeepsReservationsAndNeverReusesMaterial) {
    auto m1 = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m1);
    sa->flush();
    sb->flush();
    restart();
    auto m2 = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m2);
    EXPECT_FALSE(qkd::ct_equal(m1->keys[0].key, m2->keys[0].key));
    auto s1 = dec(*b, "SAE_B", "SAE_A", {m1->keys[0].key_ID});
    ASSERT_TRUE(s1) << s1.error().message;
    EXPECT_TRUE(qkd::ct_equal(s1->keys[0].key, m1->keys[0].key));
}

TEST_F(Pair, RestartAfterSeveralHighWaterChunksNeverReusesDeliveredMaterial) {
    // The allocation high-water mark moves in 1 MiB chunks. Use 1.5 MiB of the stream (keys of
    // 8 KiB), deliver every key to its slave (so no reservation on KME_B guards the offsets any
    // more), restart both KMEs: new keys must come from beyond everything used before.
    for (auto* c : {&ca, &cb}) {
        c->limits.max_key_size = 65536;
        c->limits.max_key_count = 100000;  // 3.2 MB at 256 bits per key
    }
    restart();
    std::set<std::string> before;
    etsi::KeyRequest big;
    big.number = 8;
    big.size = 65536;
    for (int i = 0; i < 24; ++i) {
        auto m = enc("SAE_A", "SAE_B", big);
        ASSERT_TRUE(m) << m.error().message;
        std::vector<std::string> ids;
        for (const auto& k : m->keys) {
            before.insert(std::string(k.key.view().begin(), k.key.view().end()));
            ids.push_back(k.key_ID);
        }
        auto s = dec(*b, "SAE_B", "SAE_A", ids);
        ASSERT_TRUE(s) << s.error().message;
    }
    ASSERT_EQ(before.size(), 24u * 8u);
    sa->flush();
    sb->flush();
    restart();
    for (int i = 0; i < 4; ++i) {
        auto m = enc("SAE_A", "SAE_B", big);
        ASSERT_TRUE(m) << m.error().message;
        for (const auto& k : m->keys)
            EXPECT_FALSE(before.count(std::string(k.key.view().begin(), k.key.view().end()))) << "key material handed out again after a restart";
    }
}

TEST_F(Pair, AConfirmationAfterTheReservationExpiredIs503AndBurns) {
    // reservation_ttl is 60 s; the peer's confirmation takes 61 s: the slave could no longer fetch
    // the key, so the master must not get it either.
    to_b->clock = &clock;
    to_b->slow_by = std::chrono::seconds(61);
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().status, 503);
    EXPECT_NE(m.error().message.find("only after it expired"), std::string::npos) << m.error().message;
    EXPECT_EQ(a->keys_burned, 1u);
    to_b->slow_by = std::chrono::seconds(1);
    auto ok = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(ok) << ok.error().message;
    auto s = dec(*b, "SAE_B", "SAE_A", {ok->keys[0].key_ID});
    ASSERT_TRUE(s) << s.error().message;
}

TEST_F(Pair, ThePeerRefusesAReservationThatHasAlreadyExpired) {
    SyncRequest req{"KME_A", "KME_A->KME_B", "SAE_A", {"SAE_B"}, 0, {SyncKey{qkd::uuid_random_v4(), 4096, 256}}, link_ab_check()};
    req.expires_unix = std::chrono::duration_cast<std::chrono::seconds>(clock.wall().time_since_epoch()).count() - 5;
    std::promise<ApiResult<int>> p;
    b->peer_reserve("KME_A", req, [&](ApiResult<int> r) { p.set_value(std::move(r)); });
    auto r = p.get_future().get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().status, 400);
    EXPECT_NE(r.error().message.find("expired 5 s ago"), std::string::npos) << r.error().message;
    EXPECT_EQ(b->reservation_count(), 0u);
}

TEST_F(Pair, AFailedDeliveryCommitLeavesTheKeyToItsSlave) {
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m);
    sb->flush();
    // Break KME_B's database under it: the delivery's commit fails.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(cb.state_db.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "ALTER TABLE key_reservation RENAME TO parked", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
    auto s1 = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
    ASSERT_FALSE(s1);
    EXPECT_EQ(s1.error().status, 503);
    // Not delivered, so still the slave's: the same answer again, not "not found" ...
    auto s2 = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
    ASSERT_FALSE(s2);
    EXPECT_EQ(s2.error().status, 503) << s2.error().message;
    // ... and once the database works again, delivered once.
    ASSERT_EQ(sqlite3_exec(raw, "ALTER TABLE parked RENAME TO key_reservation", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
    sqlite3_close(raw);
    auto s3 = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
    ASSERT_TRUE(s3) << s3.error().message;
    EXPECT_TRUE(qkd::ct_equal(s3->keys[0].key, m->keys[0].key));
    EXPECT_FALSE(dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID}));
}

TEST_F(Pair, ReservationsOfAStreamNoLongerConfiguredAreDroppedAtStart) {
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m);
    sa->flush();
    sb->flush();
    cb.peers.clear();  // KME_B no longer has the link to KME_A
    restart();
    EXPECT_EQ(b->reservation_count(), 0u);
    auto s = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});  // answered, not a crash
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().status, 400);
    sb->flush();
    cb = make_config("KME_B", "KME_A", {"SAE_B"}, {"SAE_A", "SAE_C"}, dir);
    restart();  // the rows were deleted, not only skipped
    EXPECT_EQ(b->reservation_count(), 0u);
}

// Prefetch (prefetch_keys > 0): keys reserved on the peer ahead of requests.
struct Prefetching : Pair {
    void SetUp() override {
        kmetest::write(dir / "seed", std::string(64, 'a'));
        ca = make_config("KME_A", "KME_B", {"SAE_A", "SAE_C"}, {"SAE_B"}, dir);
        cb = make_config("KME_B", "KME_A", {"SAE_B"}, {"SAE_A", "SAE_C"}, dir);
        ca.peers[0].prefetch_keys = 16;
        start();
    }
    void settle() {  // the refill chain: A's commit, B's reservation commit, back to A
        for (int i = 0; i < 3; ++i) {
            sa->flush();
            sb->flush();
        }
    }
};

TEST_F(Prefetching, LaterRequestsNeedNoPeerRoundTripAndStayConsistent) {
    // The first request of a combination takes the ordinary path and starts a refill.
    auto first = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(first) << first.error().message;
    settle();
    const int calls = to_b->calls;
    EXPECT_EQ(calls, 2);  // the request's own reservation + one prefetch batch
    ASSERT_GT(a->prefetched_ready("SAE_A", "SAE_B"), 4u);
    // Prefetched keys: no reservation call on the request path, each slave fetch gives the same bytes,
    // every key is distinct and delivered once.
    std::set<std::string> ids{first->keys[0].key_ID};
    for (int i = 0; i < 4; ++i) {
        auto m = enc("SAE_A", "SAE_B");
        ASSERT_TRUE(m) << m.error().message;
        EXPECT_TRUE(ids.insert(m->keys[0].key_ID).second);
        auto s = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
        ASSERT_TRUE(s) << s.error().message;
        EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m->keys[0].key));
        EXPECT_FALSE(dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID}));
    }
    EXPECT_EQ(to_b->calls, calls);
    EXPECT_EQ(a->keys_from_prefetch, 4u);
    // Get status counts prefetched keys as stored keys.
    const auto ready = a->prefetched_ready("SAE_A", "SAE_B");
    auto st = a->status("SAE_A", "SAE_B");
    ASSERT_TRUE(st);
    EXPECT_GE(static_cast<std::size_t>(st->stored_key_count), ready);
    // Another slave or another size is another combination: ordinary path.
    etsi::KeyRequest r;
    r.size = 512;
    ASSERT_TRUE(enc("SAE_A", "SAE_B", r));
    EXPECT_GT(to_b->calls, calls);
}

// Issue 17 item 5: stocked keys are part of the device buffer, so Get status never reports more
// than max_key_count, even on a link that refills at once.
TEST_F(Prefetching, StatusCountsStockedKeysInsideTheBuffer) {
    ca.peers[0].link.key_rate_bps = 1e9;  // the buffer is full again 1 ms after any take
    restart();
    ASSERT_TRUE(enc("SAE_A", "SAE_B"));
    settle();
    clock.advance(std::chrono::milliseconds(1));
    const auto ready = a->prefetched_ready("SAE_A", "SAE_B");
    ASSERT_GT(ready, 0u);
    auto st = a->status("SAE_A", "SAE_B");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->max_key_count, 64);
    EXPECT_EQ(st->stored_key_count, 64);  // 64 - ready in the pool + ready in stock, not 64 + ready
    // Stock aged out: burned, and the pool refills into its place.
    clock.advance(std::chrono::seconds(2));
    st = a->status("SAE_A", "SAE_B");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->stored_key_count, 64);
    EXPECT_EQ(a->prefetched_ready("SAE_A", "SAE_B"), 0u);
}

TEST_F(Prefetching, StatusMatchesWhatCanBeHandedOut) {
    // No refill (key_rate 0): stored_key_count is exactly the number of keys the master still gets.
    ASSERT_TRUE(enc("SAE_A", "SAE_B"));
    settle();
    auto st = a->status("SAE_A", "SAE_B");
    ASSERT_TRUE(st);
    EXPECT_LT(st->stored_key_count, 64);
    std::int64_t got = 0;
    for (int i = 0; i < 200; ++i) {
        auto m = enc("SAE_A", "SAE_B");
        settle();
        if (!m) {
            EXPECT_EQ(m.error().status, 503);
            break;
        }
        ++got;
        auto now = a->status("SAE_A", "SAE_B");
        ASSERT_TRUE(now);
        EXPECT_LE(now->stored_key_count, st->stored_key_count - got);
    }
    EXPECT_EQ(got, st->stored_key_count);
}

TEST_F(Prefetching, AgedKeysAreBurnedNotHandedOut) {
    ASSERT_TRUE(enc("SAE_A", "SAE_B"));
    settle();
    const auto ready = a->prefetched_ready("SAE_A", "SAE_B");
    ASSERT_GT(ready, 0u);
    clock.advance(std::chrono::seconds(2));  // older than min(ttl / 10, 1 s)
    EXPECT_EQ(a->prefetched_ready("SAE_A", "SAE_B"), 0u);
    const auto burned = a->keys_burned.load();
    const int calls = to_b->calls;
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m);
    EXPECT_EQ(a->keys_burned - burned, ready);
    EXPECT_GT(to_b->calls, calls);  // served by an ordinary reservation
    EXPECT_EQ(a->keys_from_prefetch, 0u);
}

TEST_F(Prefetching, StockedKeysAgeFromTheirAllocationSoTheRoundTripCounts) {
    // Confirmations take 2 s, more than a stocked key may age (min(ttl / 10, 1 s)): nothing
    // stocked is ever fresh enough to hand out.
    to_b->clock = &clock;
    to_b->slow_by = std::chrono::seconds(2);
    ASSERT_TRUE(enc("SAE_A", "SAE_B"));
    settle();
    EXPECT_EQ(a->prefetched_ready("SAE_A", "SAE_B"), 0u);
    ASSERT_TRUE(enc("SAE_A", "SAE_B"));
    EXPECT_EQ(a->keys_from_prefetch, 0u);
}

TEST_F(Prefetching, PeerDownServesOnlyKeysThePeerAlreadyHoldsThen503) {
    ASSERT_TRUE(enc("SAE_A", "SAE_B"));
    settle();
    ASSERT_GT(a->prefetched_ready("SAE_A", "SAE_B"), 0u);
    to_b->fail_with = "connection refused";
    // Already reserved on KME_B (durably): still a valid key, and KME_B delivers it.
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m);
    auto s = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
    ASSERT_TRUE(s);
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m->keys[0].key));
    clock.advance(std::chrono::seconds(2));
    auto e = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().status, 503);
}

TEST_F(Prefetching, RestartForgetsPrefetchedKeysAndNeverReusesTheirMaterial) {
    auto m1 = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m1);
    settle();
    ASSERT_GT(a->prefetched_ready("SAE_A", "SAE_B"), 0u);
    const auto reserved_on_b = b->reservation_count();
    restart();
    EXPECT_EQ(a->prefetched_ready("SAE_A", "SAE_B"), 0u);
    EXPECT_EQ(b->reservation_count(), reserved_on_b);  // they wait on KME_B until they expire
    auto m2 = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m2);
    settle();
    // New material: beyond every offset used before the restart.
    EXPECT_FALSE(qkd::ct_equal(m1->keys[0].key, m2->keys[0].key));
    clock.advance(std::chrono::seconds(61));
    EXPECT_GE(b->expire_reservations(), reserved_on_b);
}

// Both KMEs on a key-file link (key_files.hpp): each reads its own folder, and the device drops
// the same files in both.
struct FilePair : Pair {
    std::filesystem::path dir_a = dir / "keys_a", dir_b = dir / "keys_b";
    void SetUp() override {
        std::filesystem::create_directories(dir_a);
        std::filesystem::create_directories(dir_b);
        kmetest::write(dir / "seed", std::string(64, 'a'));  // the local links stay emulated
        ca = make_config("KME_A", "KME_B", {"SAE_A", "SAE_C"}, {"SAE_B"}, dir);
        cb = make_config("KME_B", "KME_A", {"SAE_B"}, {"SAE_A", "SAE_C"}, dir);
        ca.peers[0].link = LinkConfig{};
        ca.peers[0].link.key_dir = dir_a.string();
        cb.peers[0].link = LinkConfig{};
        cb.peers[0].link.key_dir = dir_b.string();
        start();
    }
    static std::vector<std::uint8_t> pattern(std::size_t n, unsigned seed) {
        std::vector<std::uint8_t> b(n);
        for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed * 131 + i * 29 + (i >> 8));
        return b;
    }
    static void drop(const std::filesystem::path& d, const std::string& name, const std::vector<std::uint8_t>& b) {
        kmetest::write(d / (name + ".tmp"), std::string(b.begin(), b.end()));
        std::filesystem::rename(d / (name + ".tmp"), d / name);
    }
    static std::vector<std::uint8_t> bytes(const qkd::SecretBytes& k) { return {k.view().begin(), k.view().end()}; }
    static std::vector<std::uint8_t> part(const std::vector<std::uint8_t>& f, std::size_t from, std::size_t n) {
        return {f.begin() + static_cast<long>(from), f.begin() + static_cast<long>(from + n)};
    }
};

TEST_F(FilePair, BothEndsServeTheHalvesOfTheSameFiles) {
    const auto f = pattern(256, 1);  // 128 bytes per direction
    drop(dir_a, "0001", f);
    drop(dir_b, "0001", f);
    clock.advance(std::chrono::seconds(1));  // the next take rescans
    EXPECT_EQ(a->status("SAE_A", "SAE_B")->stored_key_count, 4);  // 128 bytes / 32-byte keys
    auto m1 = enc("SAE_A", "SAE_B");
    auto m2 = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m1) << m1.error().message;
    ASSERT_TRUE(m2) << m2.error().message;
    // KME_A < KME_B: KME_A->KME_B is the first half of each file, from offset 0.
    EXPECT_EQ(bytes(m1->keys[0].key), part(f, 0, 32));
    EXPECT_EQ(bytes(m2->keys[0].key), part(f, 32, 32));
    auto s = dec(*b, "SAE_B", "SAE_A", {m2->keys[0].key_ID, m1->keys[0].key_ID});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m2->keys[0].key));
    EXPECT_TRUE(qkd::ct_equal(s->keys[1].key, m1->keys[0].key));
    EXPECT_EQ(a->status("SAE_A", "SAE_B")->stored_key_count, 2);
    // KME_B as master: KME_B->KME_A is the second half.
    auto mb = call([&](auto done) { b->get_key("SAE_B", "SAE_A", {}, done); });
    ASSERT_TRUE(mb) << mb.error().message;
    EXPECT_EQ(bytes(mb->keys[0].key), part(f, 128, 32));
    auto sb = dec(*a, "SAE_A", "SAE_B", {mb->keys[0].key_ID});
    ASSERT_TRUE(sb) << sb.error().message;
    EXPECT_TRUE(qkd::ct_equal(sb->keys[0].key, mb->keys[0].key));
    for (auto& l : a->pool_levels()) EXPECT_EQ(l.key_files, l.stream == "KME_A->KME_B" ? 1 : -1) << l.stream;
}

TEST_F(FilePair, ARestartResumesAtTheHighWaterMarkFourKibibytesOn) {
    const auto f = pattern(16384, 4);  // 8192 bytes per direction
    drop(dir_a, "0001", f);
    drop(dir_b, "0001", f);
    clock.advance(std::chrono::seconds(1));
    auto m1 = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m1) << m1.error().message;
    EXPECT_EQ(bytes(m1->keys[0].key), part(f, 0, 32));
    sa->flush();
    sb->flush();
    restart();
    // The mark was 32 + 4096 (mark_step of a key-file source): the budget and the next key start there.
    EXPECT_EQ(a->status("SAE_A", "SAE_B")->stored_key_count, (8192 - 4128) / 32);
    auto m2 = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m2) << m2.error().message;
    EXPECT_EQ(bytes(m2->keys[0].key), part(f, 4128, 32));
    auto s = dec(*b, "SAE_B", "SAE_A", {m1->keys[0].key_ID, m2->keys[0].key_ID});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m1->keys[0].key));
    EXPECT_TRUE(qkd::ct_equal(s->keys[1].key, m2->keys[0].key));
}

TEST_F(FilePair, MaterialTheSlaveLacksIsRefusedAndBurned) {
    const auto f = pattern(256, 2);
    drop(dir_a, "0001", f);  // KME_B's device has not delivered it yet
    clock.advance(std::chrono::seconds(1));
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().status, 503);
    EXPECT_NE(m.error().message.find("key material of stream KME_A->KME_B at bytes 0..32 is not (yet) in key_dir on KME_B"), std::string::npos)
        << m.error().message;
    EXPECT_EQ(a->keys_burned, 1u);
    EXPECT_EQ(b->reservation_count(), 0u);
    drop(dir_b, "0001", f);
    auto ok = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(bytes(ok->keys[0].key), part(f, 32, 32)) << "burned material handed out";
    auto s = dec(*b, "SAE_B", "SAE_A", {ok->keys[0].key_ID});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, ok->keys[0].key));
}

TEST_F(FilePair, AFileOneSideNeverGotIsNeverPaperedOver) {
    // KME_B's device agent lost file 0002: without a check, every later offset on KME_B would name
    // other bytes than on KME_A, and slaves would get keys that differ from their masters'.
    const auto f1 = pattern(64, 5), f2 = pattern(64, 6), f3 = pattern(64, 7);  // 32 bytes per direction each
    drop(dir_a, "0001", f1);
    drop(dir_b, "0001", f1);
    drop(dir_a, "0002", f2);
    drop(dir_a, "0003", f3);
    drop(dir_b, "0003", f3);
    clock.advance(std::chrono::seconds(1));
    auto m1 = enc("SAE_A", "SAE_B");  // file 0001 on both: fine
    ASSERT_TRUE(m1) << m1.error().message;
    auto s1 = dec(*b, "SAE_B", "SAE_A", {m1->keys[0].key_ID});
    ASSERT_TRUE(s1) << s1.error().message;
    EXPECT_TRUE(qkd::ct_equal(s1->keys[0].key, m1->keys[0].key));
    // Bytes 32..64: file 0002 on KME_A, file 0003 on KME_B.
    auto m2 = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m2) << "a key whose slave copy would differ was handed out";
    EXPECT_EQ(m2.error().status, 503);
    EXPECT_NE(m2.error().message.find("do not hold the same key material at bytes 32..64"), std::string::npos) << m2.error().message;
    EXPECT_NE(m2.error().message.find("KME_A has \"files 0002+0 "), std::string::npos) << m2.error().message;
    EXPECT_NE(m2.error().message.find("KME_B has \"files 0003+0 "), std::string::npos) << m2.error().message;
    // Bytes 64..96: file 0003 on KME_A, beyond KME_B's end: refused too, never other bytes.
    auto m3 = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m3);
    EXPECT_EQ(m3.error().status, 503);
    EXPECT_EQ(a->keys_burned, 2u);
    EXPECT_EQ(b->reservation_count(), 0u);
}

TEST_F(Pair, EndsWithDifferentSeedsGiveNoKeys) {
    // KME_B's seed file is another one than KME_A's: its slaves would get other bytes.
    kmetest::write(dir / "seed_b", std::string(64, 'b'));
    cb.peers[0].link.seed_file = (dir / "seed_b").string();
    restart();
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m) << "a key whose slave copy would differ was handed out";
    EXPECT_EQ(m.error().status, 503);
    EXPECT_NE(m.error().message.find("do not hold the same key material"), std::string::npos) << m.error().message;
    EXPECT_NE(m.error().message.find("KME_A has \"seed check "), std::string::npos) << m.error().message;
    EXPECT_EQ(b->reservation_count(), 0u);
    // And a reservation that carries no check value (a peer that does not send one) is refused too.
    SyncRequest r{"KME_A", "KME_A->KME_B", "SAE_A", {"SAE_B"}, 4102444800, {SyncKey{qkd::uuid_random_v4(), 1 << 22, 256}}, ""};
    std::promise<ApiResult<int>> p;
    b->peer_reserve("KME_A", r, [&](ApiResult<int> res) { p.set_value(std::move(res)); });
    auto res = p.get_future().get();
    ASSERT_FALSE(res);
    EXPECT_EQ(res.error().status, 503);
    EXPECT_NE(res.error().message.find("KME_A has (none)"), std::string::npos) << res.error().message;
}

TEST_F(FilePair, AReservationMeantToOutliveTheFilesIsRefused) {
    // KME_A with a longer reservation_ttl than KME_B: KME_B would delete the file while the
    // reservation still lives, and the slave would lose a key its master has.
    const auto f = pattern(16384, 8);  // room after the restart skips to the 4 KiB mark
    drop(dir_a, "0001", f);
    drop(dir_b, "0001", f);
    ca.reservation_ttl = std::chrono::seconds(3600);
    restart();
    clock.advance(std::chrono::seconds(1));
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().status, 503);
    EXPECT_NE(m.error().message.find("keeps the key files of link KME_A->KME_B for reservations of at most reservation_ttl = 60 s"),
              std::string::npos) << m.error().message;
    EXPECT_EQ(b->reservation_count(), 0u);
    ca.reservation_ttl = cb.reservation_ttl;
    restart();
    auto ok = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(ok) << ok.error().message;
}

TEST_F(FilePair, AnEmptyFolderIs503NamingIt) {
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().status, 503);
    EXPECT_NE(m.error().message.find("not enough key material on link KME_A->KME_B"), std::string::npos) << m.error().message;
    EXPECT_NE(m.error().message.find("key files in " + dir_a.string()), std::string::npos) << m.error().message;
    EXPECT_EQ(to_b->calls, 0);
}

TEST_F(FilePair, AOneWayLinkGivesWholeFilesToItsDirectionAndNothingToTheOther) {
    // Gateways where SAE_A always asks first (always master): key_dir_direction "outgoing" on
    // KME_A, "incoming" on KME_B, and every byte of a file goes KME_A->KME_B.
    ca.peers[0].link.key_dir_direction = KeyDirDirection::Outgoing;
    cb.peers[0].link.key_dir_direction = KeyDirDirection::Incoming;
    restart();  // no file indexed yet: the indexes take the new choice
    const auto f = pattern(256, 7);
    drop(dir_a, "0001", f);
    drop(dir_b, "0001", f);
    clock.advance(std::chrono::seconds(1));
    EXPECT_EQ(a->status("SAE_A", "SAE_B")->stored_key_count, 8);  // 256 bytes / 32-byte keys: twice the split link's
    for (int i = 0; i < 8; ++i) {
        auto m = enc("SAE_A", "SAE_B");
        ASSERT_TRUE(m) << i << ": " << m.error().message;
        EXPECT_EQ(bytes(m->keys[0].key), part(f, 32 * static_cast<std::size_t>(i), 32)) << i;
        auto s = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
        ASSERT_TRUE(s) << i << ": " << s.error().message;
        EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m->keys[0].key)) << i;
    }
    EXPECT_FALSE(enc("SAE_A", "SAE_B"));  // used up
    // KME_B's SAEs cannot be masters on this link, and the error says why.
    auto mb = call([&](auto done) { b->get_key("SAE_B", "SAE_A", {}, done); });
    ASSERT_FALSE(mb);
    EXPECT_EQ(mb.error().status, 503);
    EXPECT_NE(mb.error().message.find("key_dir_direction = \"incoming\""), std::string::npos) << mb.error().message;
}

TEST_F(FilePair, TwoEndsThatBothClaimTheFilesAreToldSo) {
    ca.peers[0].link.key_dir_direction = KeyDirDirection::Outgoing;
    cb.peers[0].link.key_dir_direction = KeyDirDirection::Outgoing;  // should be "incoming"
    restart();
    const auto f = pattern(16384, 8);  // room beyond the high-water mark after the restart below
    drop(dir_a, "0001", f);
    drop(dir_b, "0001", f);
    clock.advance(std::chrono::seconds(1));
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().status, 503);
    EXPECT_NE(m.error().message.find("key_dir_direction = \"outgoing\" on KME_B"), std::string::npos) << m.error().message;
    // One end splitting the files while the other uses them whole: the check values differ.
    cb.peers[0].link.key_dir_direction = KeyDirDirection::Both;
    std::filesystem::remove(cb.state_db + ".keyfiles-KME_A");  // KME_B's link starts afresh
    restart();
    clock.advance(std::chrono::seconds(1));
    m = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().status, 503);
    EXPECT_NE(m.error().message.find("do not hold the same key material"), std::string::npos) << m.error().message;
    EXPECT_NE(m.error().message.find("one-way KME_A->KME_B"), std::string::npos) << m.error().message;
}

TEST_F(FilePair, AFileThatCannotBeReadIs503AndTheSlaveKeepsItsKey) {
    const auto f = pattern(256, 3);
    drop(dir_a, "0001", f);
    drop(dir_b, "0001", f);
    clock.advance(std::chrono::seconds(1));
    auto m = enc("SAE_A", "SAE_B");
    ASSERT_TRUE(m) << m.error().message;
    // The slave's file vanishes (a device agent's mistake, a disk problem): 503, not a crash ...
    std::filesystem::rename(dir_b / "0001", dir / "parked");
    auto s1 = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
    ASSERT_FALSE(s1);
    EXPECT_EQ(s1.error().status, 503);
    EXPECT_NE(s1.error().message.find("KME_A->KME_B: cannot read key material at bytes 0..32"), std::string::npos) << s1.error().message;
    EXPECT_EQ(b->keys_delivered_slave, 0u);
    // The master's file vanishes between its scan and a request: 503, the key is burned.
    std::filesystem::remove(dir_a / "0001");
    auto m2 = enc("SAE_A", "SAE_B");
    ASSERT_FALSE(m2);
    EXPECT_EQ(m2.error().status, 503);
    EXPECT_NE(m2.error().message.find("KME_A->KME_B: cannot read key material at bytes 32..64"), std::string::npos) << m2.error().message;
    EXPECT_NE(m2.error().message.find("burned"), std::string::npos) << m2.error().message;
    EXPECT_EQ(a->keys_burned, 1u);
    // The slave's key is still the slave's, durably: after a restart and with the file back, it is
    // delivered once.
    sa->flush();
    sb->flush();
    restart();
    std::filesystem::rename(dir / "parked", dir_b / "0001");
    auto s2 = dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID});
    ASSERT_TRUE(s2) << s2.error().message;
    EXPECT_TRUE(qkd::ct_equal(s2->keys[0].key, m->keys[0].key));
    EXPECT_FALSE(dec(*b, "SAE_B", "SAE_A", {m->keys[0].key_ID}));
}

namespace {

// A key source that is not the emulated link: byte i of the stream is (i * 7 + 1) mod 256, and
// the device has produced exactly `bits` bits.
// Thread-safe enough for these single-threaded calls only.
class PatternSource final : public KeySource {
public:
    PatternSource(std::string label, double bits) : label_(std::move(label)), bits_(bits) {}
    const std::string& label() const override { return label_; }
    void read(std::uint64_t offset, std::span<std::uint8_t> out) const override {
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>((offset + i) * 7 + 1);
    }
    double available(TimePoint) override { return bits_; }
    bool take(double bits, TimePoint) override {
        if (bits > bits_) return false;
        bits_ -= bits;
        return true;
    }
    bool in_outage(TimePoint) const override { return false; }

private:
    std::string label_;
    double bits_;
};

}  // namespace

TEST(KeySourceInterface, KeyManagerServesWhateverSourceItIsGiven) {
    // KeyManager takes its material and budget from the KeySource it is given: a local pair
    // (SAE_A -> SAE_C on one KME) gets the source's bytes at the allocated offsets, the slave the
    // same bytes, and once the source's budget is spent Get key answers 503.
    auto dir = kmetest::temp_dir("km-source");
    kmetest::write(dir / "seed", std::string(64, 'a'));
    Config c = make_config("KME_A", "KME_B", {"SAE_A", "SAE_C"}, {"SAE_B"}, dir);
    std::vector<std::string> made;
    KeySourceFactory factory = [&](std::span<const std::uint8_t>, const std::string& label, const LinkConfig&, double, KeySource::TimePoint) {
        made.push_back(label);
        return std::make_unique<PatternSource>(label, 2 * 256);  // two 256-bit keys
    };
    kmetest::FakeClock clock;
    Store store(c.state_db);
    auto peer = std::make_shared<LoopbackPeer>();
    // Without the incoming counterpart, or with a source under another label: refused.
    EXPECT_THROW(KeyManager(c, store, clock, {{"KME_B", peer}}, factory), std::invalid_argument);
    KeyMaterialFactory incoming = [](std::span<const std::uint8_t>, const std::string& label) {
        return std::make_unique<PatternSource>(label, 0);
    };
    KeySourceFactory mislabelled = [](std::span<const std::uint8_t>, const std::string&, const LinkConfig&, double, KeySource::TimePoint) {
        return std::make_unique<PatternSource>("other", 0);
    };
    EXPECT_THROW(KeyManager(c, store, clock, {{"KME_B", peer}}, mislabelled, incoming), std::invalid_argument);
    made.clear();
    KeyManager km(c, store, clock, {{"KME_B", peer}}, factory, incoming);
    EXPECT_EQ(made, (std::vector<std::string>{"KME_A->KME_A", "KME_A->KME_B"}));

    auto m = call([&](auto done) { km.get_key("SAE_A", "SAE_C", {}, done); });
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_EQ(m->keys.size(), 1u);
    ASSERT_EQ(m->keys[0].key.size(), 32u);
    for (std::size_t i = 0; i < 32; ++i) EXPECT_EQ(m->keys[0].key.view()[i], static_cast<std::uint8_t>(i * 7 + 1)) << i;  // offset 0
    etsi::KeyIds ids;
    ids.key_IDs.push_back({m->keys[0].key_ID, std::nullopt});
    auto s = call([&](auto done) { km.get_key_with_ids("SAE_C", "SAE_A", ids, done); });
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m->keys[0].key));

    auto m2 = call([&](auto done) { km.get_key("SAE_A", "SAE_C", {}, done); });
    ASSERT_TRUE(m2) << m2.error().message;
    EXPECT_FALSE(qkd::ct_equal(m2->keys[0].key, m->keys[0].key));  // next offset
    auto m3 = call([&](auto done) { km.get_key("SAE_A", "SAE_C", {}, done); });
    ASSERT_FALSE(m3);
    EXPECT_EQ(m3.error().status, 503);
    store.flush();
    std::filesystem::remove_all(dir);
}
