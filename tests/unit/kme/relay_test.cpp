// Trusted-node relay (issue 17, item 1) with KMEs wired back to back in one process: A - R - C and
// A - R1 - R2 - C. Keys equal at both ends, every hop consumes material of its own link, a hop
// down gives 503 naming it, loops are refused, relayed reservations survive a restart.
#include <gtest/gtest.h>

#include <future>
#include <set>

#include "qkd/kme/key_manager.hpp"
#include "test_util.hpp"

using namespace qkd::kme;
namespace etsi = qkd::etsi014;

namespace {

class Wire final : public PeerClient {
public:
    KeyManager** target = nullptr;  // the peer's KeyManager (follows restarts)
    std::string self;
    std::string down;  // non-empty: the peer is unreachable
    int calls = 0;
    void reserve(SyncRequest req, std::function<void(std::string)> done) override {
        ++calls;
        if (!down.empty()) return done(down);
        (*target)->peer_reserve(self, req, [done](ApiResult<int> r) { done(r ? "" : r.error().message); });
    }
};

template <class F>
ApiResult<etsi::KeyContainer> call(F f) {
    std::promise<ApiResult<etsi::KeyContainer>> p;
    f([&](ApiResult<etsi::KeyContainer> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
}

// A chain of KMEs: names[i] has SAE "SAE_" + suffix, links to its neighbours, routes to the rest.
struct Chain : ::testing::Test {
    std::filesystem::path dir = kmetest::temp_dir("relay");
    kmetest::FakeClock clock;
    std::vector<std::string> names;
    std::vector<Config> cfg;
    std::vector<std::unique_ptr<Store>> store;
    std::vector<KeyManager*> km_ptr;
    std::vector<std::unique_ptr<KeyManager>> km;
    std::map<std::pair<std::size_t, std::size_t>, std::shared_ptr<Wire>> wire;  // (from, to)

    static std::string sae(const std::string& kme) { return "SAE_" + kme.substr(4); }

    void build(std::vector<std::string> n) {
        names = std::move(n);
        const std::size_t N = names.size();
        cfg.resize(N);
        km_ptr.assign(N, nullptr);
        for (std::size_t i = 0; i + 1 < N; ++i) kmetest::write(dir / ("seed" + std::to_string(i)), std::string(64, static_cast<char>('a' + i)));
        for (std::size_t i = 0; i < N; ++i) {
            Config& c = cfg[i];
            c.file = (dir / (names[i] + ".toml")).string();
            c.kme_id = names[i];
            c.state_db = (dir / (names[i] + ".db")).string();
            c.saes = {sae(names[i])};
            c.limits.max_key_count = 64;
            c.limits.max_SAE_ID_count = 2;
            c.reservation_ttl = std::chrono::seconds(60);
            c.local_link.key_rate_bps = 0;
            for (std::size_t j : {i - 1, i + 1}) {
                if (j >= N) continue;
                PeerConfig p;
                p.kme_id = names[j];
                p.saes = {sae(names[j])};
                p.link.seed_file = (dir / ("seed" + std::to_string(std::min(i, j)))).string();
                p.link.key_rate_bps = 0;  // the budget is exactly the start buffer: 64 keys of 256 bits
                c.peers.push_back(p);
                auto w = std::make_shared<Wire>();
                w->target = &km_ptr[j];
                w->self = names[i];
                wire[{i, j}] = w;
            }
            for (std::size_t j = 0; j < N; ++j)
                if (j + 1 < i || j > i + 1) c.routes.push_back(RouteConfig{names[j], names[j < i ? i - 1 : i + 1], {sae(names[j])}});
        }
        start();
    }
    void start() {
        const std::size_t N = names.size();
        store.clear();
        for (std::size_t i = 0; i < N; ++i) store.push_back(std::make_unique<Store>(cfg[i].state_db));
        km.clear();
        for (std::size_t i = 0; i < N; ++i) {
            std::map<std::string, std::shared_ptr<PeerClient>> peers;
            for (auto& [k, w] : wire)
                if (k.first == i) peers[names[k.second]] = w;
            km.push_back(std::make_unique<KeyManager>(cfg[i], *store[i], clock, peers));
            km_ptr[i] = km.back().get();
        }
    }
    void restart() {
        for (auto& s : store) s->flush();
        km.clear();
        start();
    }
    void TearDown() override {
        km.clear();
        store.clear();
        std::filesystem::remove_all(dir);
    }
    ApiResult<etsi::KeyContainer> enc(std::size_t at, const std::string& slave, etsi::KeyRequest r = {}) {
        return call([&](auto done) { km[at]->get_key(sae(names[at]), slave, r, done); });
    }
    ApiResult<etsi::KeyContainer> dec(std::size_t at, const std::string& master, std::vector<std::string> ids) {
        etsi::KeyIds k;
        for (auto& i : ids) k.key_IDs.push_back({i, std::nullopt});
        return call([&](auto done) { km[at]->get_key_with_ids(sae(names[at]), master, k, done); });
    }
    std::uint64_t next_offset(std::size_t at, const std::string& stream) {
        for (auto& l : km[at]->pool_levels())
            if (l.stream == stream) return l.next_offset;
        ADD_FAILURE() << "no stream " << stream;
        return 0;
    }
};

}  // namespace

TEST_F(Chain, OneRelayGivesBothEndsTheSameKeyAndEachHopPaysWithItsOwnLink) {
    build({"KME_A", "KME_R", "KME_C"});
    etsi::KeyRequest r;
    r.number = 3;
    auto m = enc(0, "SAE_C", r);
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_EQ(m->keys.size(), 3u);
    auto s = dec(2, "SAE_A", {m->keys[2].key_ID, m->keys[0].key_ID, m->keys[1].key_ID});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m->keys[2].key));
    EXPECT_TRUE(qkd::ct_equal(s->keys[1].key, m->keys[0].key));
    EXPECT_TRUE(qkd::ct_equal(s->keys[2].key, m->keys[1].key));
    EXPECT_FALSE(dec(2, "SAE_A", {m->keys[0].key_ID}));  // delivered once
    // Each hop took 3 keys of 32 bytes from its own link; the relay stores nothing.
    EXPECT_EQ(next_offset(0, "KME_A->KME_R"), 96u);
    EXPECT_EQ(next_offset(1, "KME_R->KME_C"), 96u);
    EXPECT_EQ(km[1]->keys_relayed, 3u);
    EXPECT_EQ(km[1]->reservation_count(), 0u);
    // Get status on KME_A names KME_C and counts the first hop's buffer.
    auto st = km[0]->status("SAE_A", "SAE_C");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->target_KME_ID, "KME_C");
    EXPECT_EQ(st->stored_key_count, 61);
    // The relay's own buffer towards KME_C shrank by the same keys.
    auto sr = km[1]->status("SAE_R", "SAE_C");
    ASSERT_TRUE(sr);
    EXPECT_EQ(sr->stored_key_count, 61);
    // The key is not the first hop's nor the second hop's material alone: a relay that forwarded the
    // raw key would have put the same bytes on the wire. (Keys of the two links differ by seed.)
    auto direct = call([&](auto done) { km[1]->get_key("SAE_R", "SAE_C", {}, done); });
    ASSERT_TRUE(direct);
    EXPECT_FALSE(qkd::ct_equal(direct->keys[0].key, m->keys[0].key));
}

TEST_F(Chain, TwoRelaysBothWaysAndMulticastAlongThePath) {
    build({"KME_A", "KME_R1", "KME_R2", "KME_C"});
    auto m = enc(0, "SAE_C");
    ASSERT_TRUE(m) << m.error().message;
    auto s = dec(3, "SAE_A", {m->keys[0].key_ID});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m->keys[0].key));
    EXPECT_EQ(km[1]->keys_relayed, 1u);
    EXPECT_EQ(km[2]->keys_relayed, 1u);
    // The other way round: SAE_C master, SAE_A slave.
    auto back = enc(3, "SAE_A");
    ASSERT_TRUE(back) << back.error().message;
    auto sb = dec(0, "SAE_C", {back->keys[0].key_ID});
    ASSERT_TRUE(sb) << sb.error().message;
    EXPECT_TRUE(qkd::ct_equal(sb->keys[0].key, back->keys[0].key));
    // Multicast: SAE_C (end of the chain) and SAE_R2 (a relay on the way) get the same key once each.
    etsi::KeyRequest r;
    r.additional_slave_SAE_IDs = {"SAE_R2"};
    auto mm = enc(0, "SAE_C", r);
    ASSERT_TRUE(mm) << mm.error().message;
    auto c1 = dec(3, "SAE_A", {mm->keys[0].key_ID});
    auto c2 = dec(2, "SAE_A", {mm->keys[0].key_ID});
    ASSERT_TRUE(c1) << c1.error().message;
    ASSERT_TRUE(c2) << c2.error().message;
    EXPECT_TRUE(qkd::ct_equal(c1->keys[0].key, mm->keys[0].key));
    EXPECT_TRUE(qkd::ct_equal(c2->keys[0].key, mm->keys[0].key));
    EXPECT_FALSE(dec(2, "SAE_A", {mm->keys[0].key_ID}));
}

TEST_F(Chain, AHopDownIs503NamingItAndNoMaterialIsReused) {
    build({"KME_A", "KME_R", "KME_C"});
    ASSERT_TRUE(enc(0, "SAE_C"));
    wire[{1, 2}]->down = "connection refused";
    auto e = enc(0, "SAE_C");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().status, 503);
    EXPECT_NE(e.error().message.find("KME_R->KME_C"), std::string::npos) << e.error().message;
    EXPECT_EQ(km[1]->relay_failures, 1u);
    // Both hops' material of the failed request is burned: the next key starts after it.
    wire[{1, 2}]->down.clear();
    restart();
    auto m = enc(0, "SAE_C");
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_GE(next_offset(0, "KME_A->KME_R"), 96u);
    EXPECT_GE(next_offset(1, "KME_R->KME_C"), 96u);
    auto s = dec(2, "SAE_A", {m->keys[0].key_ID});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m->keys[0].key));
}

TEST_F(Chain, ARelayOutOfMaterialIs503NamingTheHop) {
    build({"KME_A", "KME_R", "KME_C"});
    // KME_R's link to KME_C spends its buffer on KME_R's own masters.
    etsi::KeyRequest r;
    r.number = 8;
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(call([&](auto done) { km[1]->get_key("SAE_R", "SAE_C", r, done); }));
    auto e = enc(0, "SAE_C");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().status, 503);
    EXPECT_NE(e.error().message.find("not enough key material on hop KME_R->KME_C"), std::string::npos) << e.error().message;
}

TEST_F(Chain, RelayedReservationsSurviveARestartOfTheLastKme) {
    build({"KME_A", "KME_R", "KME_C"});
    auto m = enc(0, "SAE_C");
    ASSERT_TRUE(m) << m.error().message;
    restart();  // the mask is in KME_C's state database
    auto s = dec(2, "SAE_A", {m->keys[0].key_ID});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(qkd::ct_equal(s->keys[0].key, m->keys[0].key));
}

TEST_F(Chain, ALoopAcrossTheKmesIsRefused) {
    build({"KME_A", "KME_R", "KME_C"});
    // KME_R is told KME_D is behind KME_A, KME_A that it is behind KME_R.
    cfg[0].routes.push_back(RouteConfig{"KME_D", "KME_R", {"SAE_D"}});
    cfg[1].routes.push_back(RouteConfig{"KME_D", "KME_A", {"SAE_D"}});
    restart();
    auto e = enc(0, "SAE_D");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().status, 503);
    EXPECT_NE(e.error().message.find("loops"), std::string::npos) << e.error().message;
}
