// The daemon's QKD key source (src/daemon/qkd_key_source.cpp) against a real `qkd-kme demo`: two
// KMEs on loopback, mTLS with the demo's PKI, the site-a / site-b profiles exactly as the demo
// writes them. Master fetch on site A, slave fetch by key_ID on site B; replays, wrong sizes, a KME
// that is down or silent, and the profile's source address.
#include <gtest/gtest.h>

#include <unistd.h>

#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange
#include <boost/asio.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include "qkd/daemon/qkd_key_source.hpp"
#include "qkd/sae/profile.hpp"
#include "test_process.hpp"

namespace qkd::daemon {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace asio = boost::asio;
using sae::testing::Child;
using sae::testing::free_port;
using sae::testing::SilentListener;

// One `qkd-kme demo` per test process (ctest runs each test in its own process).
struct Demo {
    fs::path dir;
    std::unique_ptr<Child> kme;
    std::uint16_t port_a = 0, port_b = 0;
    sae::Profile a, b;
    std::string skip;

    Demo() {
        dir = fs::temp_directory_path() / ("qkd-ike-src-" + std::to_string(::getpid()));
        fs::remove_all(dir);
        port_a = free_port();
        port_b = free_port();
        kme = std::make_unique<Child>(std::vector<std::string>{QKD_KME_BIN, "demo", (dir / "demo").string(), "--quiet",
                                                               "--port-a", std::to_string(port_a), "--port-b",
                                                               std::to_string(port_b), "--log-level", "warn"});
        for (int i = 0; i < 300 && !fs::exists(dir / "demo" / "demo.json"); ++i) std::this_thread::sleep_for(50ms);
        if (!fs::exists(dir / "demo" / "demo.json")) {
            skip = "qkd-kme demo did not write demo.json within 15 s";
            return;
        }
        a = load("site-a", "kme-a");
        b = load("site-b", "kme-b");
    }
    ~Demo() {
        kme.reset();
        fs::remove_all(dir);
    }
    sae::Profile load(const std::string& site, const std::string& name) {
        auto ps = sae::load_profiles_file((dir / "demo" / site / "qkdgate.toml").string());
        if (!ps) throw std::runtime_error(ps.error());
        auto p = sae::find_profile(*ps, name, site);
        if (!p) throw std::runtime_error(p.error());
        return *p;
    }
};

class KeySource : public ::testing::Test {
protected:
    void SetUp() override {
        demo_ = std::make_unique<Demo>();
        if (!demo_->skip.empty()) GTEST_SKIP() << demo_->skip;
    }
    std::unique_ptr<QkdKeySource> source(std::vector<sae::Profile> ps) {
        auto s = QkdKeySource::create(io_.get_executor(), std::move(ps));
        if (!s) ADD_FAILURE() << s.error();
        return s ? std::move(*s) : nullptr;
    }
    // Runs the io_context until `done` ran (at most 20 s).
    QkdKeyResult wait(const std::function<void(QkdKeyCallback)>& start) {
        std::optional<QkdKeyResult> out;
        start([&](QkdKeyResult r) { out.emplace(std::move(r)); });
        io_.restart();
        for (int i = 0; i < 2000 && !out; ++i) io_.run_for(10ms);
        if (!out) return Err{QkdError{QkdFail::busy, "test: no callback within 20 s"}};
        return std::move(*out);
    }
    QkdKeyResult master(QkdKeySource& s, unsigned bits = 256, std::chrono::milliseconds t = 5s) {
        return wait([&](QkdKeyCallback cb) { s.fetch_master("kme-a", "SAE_B", bits, t, std::move(cb)); });
    }
    QkdKeyResult slave(QkdKeySource& s, const Uuid& id, unsigned bits = 256, std::chrono::milliseconds t = 5s) {
        return wait([&](QkdKeyCallback cb) { s.fetch_slave("kme-b", "SAE_A", id, bits, t, std::move(cb)); });
    }

    asio::io_context io_;
    std::unique_ptr<Demo> demo_;
};

TEST_F(KeySource, MasterOnSiteAAndSlaveByIdOnSiteBGiveTheSameKey) {
    auto a = source({demo_->a});
    auto b = source({demo_->b});
    ASSERT_TRUE(a && b);
    for (int round = 0; round < 3; ++round) {
        auto ka = master(*a);
        ASSERT_TRUE(ka) << ka.error().message;
        EXPECT_EQ(ka->key.size(), 32u);
        EXPECT_EQ(uuid_format(ka->key_id), ka->key_id_text);
        auto kb = slave(*b, ka->key_id);
        ASSERT_TRUE(kb) << kb.error().message;
        EXPECT_EQ(kb->key_id_text, ka->key_id_text);
        EXPECT_TRUE(ct_equal(ka->key, kb->key)) << "site A and site B keys differ for " << ka->key_id_text;
        EXPECT_GT(ka->rtt.count(), 0);
    }
    const QkdCounters* ca = a->counters("kme-a");
    const QkdCounters* cb = b->counters("kme-b");
    ASSERT_TRUE(ca && cb);
    EXPECT_EQ(ca->keys_master, 3u);
    EXPECT_EQ(cb->keys_slave, 3u);
    EXPECT_EQ(ca->rtt_count, 3u);
    EXPECT_GT(ca->last_rtt.count(), 0);
    EXPECT_EQ(a->counters_json()["kme-a"]["keys_master"], 3);
}

TEST_F(KeySource, KeysOf512BitsAndFreshKeyIdsEveryTime) {
    auto a = source({demo_->a});
    auto b = source({demo_->b});
    auto k1 = master(*a, 512);
    auto k2 = master(*a, 512);
    ASSERT_TRUE(k1 && k2);
    EXPECT_EQ(k1->key.size(), 64u);
    EXPECT_NE(k1->key_id, k2->key_id);
    auto s2 = slave(*b, k2->key_id, 512);
    ASSERT_TRUE(s2) << s2.error().message;
    EXPECT_TRUE(ct_equal(k2->key, s2->key));
}

TEST_F(KeySource, AReplayedKeyIdIsRefusedHereAndByTheKme) {
    auto a = source({demo_->a});
    auto b = source({demo_->b});
    auto ka = master(*a);
    ASSERT_TRUE(ka);
    ASSERT_TRUE(slave(*b, ka->key_id));
    // The same daemon: refused from memory, the KME is not asked.
    auto again = slave(*b, ka->key_id);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().kind, QkdFail::replayed);
    EXPECT_NE(again.error().message.find(ka->key_id_text), std::string::npos) << again.error().message;
    EXPECT_NE(again.error().message.find("already used"), std::string::npos) << again.error().message;
    EXPECT_EQ(b->counters("kme-b")->failures[static_cast<std::size_t>(QkdFail::replayed)], 1u);
    // Another daemon (fresh memory): the KME deleted the key when it delivered it (ETSI 014 5.4).
    auto b2 = source({demo_->b});
    auto kme_says = slave(*b2, ka->key_id);
    ASSERT_FALSE(kme_says);
    EXPECT_EQ(kme_says.error().kind, QkdFail::kme_refused) << kme_says.error().message;
    EXPECT_NE(kme_says.error().message.find("400"), std::string::npos) << kme_says.error().message;
}

TEST_F(KeySource, AKeyOfTheWrongSizeIsAClearError) {
    auto a = source({demo_->a});
    auto b = source({demo_->b});
    auto ka = master(*a, 256);
    ASSERT_TRUE(ka);
    auto kb = slave(*b, ka->key_id, 512);  // the gateway expects 512 bits, the key has 256
    ASSERT_FALSE(kb);
    EXPECT_EQ(kb.error().kind, QkdFail::wrong_length) << kb.error().message;
    EXPECT_NE(kb.error().message.find("256"), std::string::npos) << kb.error().message;
    EXPECT_NE(kb.error().message.find("512"), std::string::npos) << kb.error().message;
    // A size the KME refuses (beyond the demo KME's max_key_size): its ETSI 400, verbatim.
    auto big = master(*a, 8192);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().kind, QkdFail::kme_refused) << big.error().message;
    EXPECT_NE(big.error().message.find("400"), std::string::npos) << big.error().message;
    // A size no KME can be asked for: refused before anything is sent.
    auto huge = master(*a, 1u << 20);
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error().kind, QkdFail::bad_request) << huge.error().message;
}

TEST_F(KeySource, KmeDownIsAClearErrorAndTheNextFetchWorksOnceItIsBack) {
    auto a = source({demo_->a});
    ASSERT_TRUE(master(*a));  // a kept-alive connection now exists
    demo_->kme->stop();
    auto down = master(*a);
    ASSERT_FALSE(down);
    EXPECT_EQ(down.error().kind, QkdFail::unreachable) << down.error().message;
    EXPECT_NE(down.error().message.find(std::to_string(demo_->port_a)), std::string::npos) << down.error().message;
    EXPECT_EQ(a->counters("kme-a")->failures[static_cast<std::size_t>(QkdFail::unreachable)], 1u);
    EXPECT_FALSE(a->counters("kme-a")->last_error.empty());
    // Restarted on the same ports, same PKI and link seed: keys flow again.
    demo_->kme = std::make_unique<Child>(std::vector<std::string>{QKD_KME_BIN, "demo", (demo_->dir / "demo").string(),
                                                                  "--quiet", "--port-a", std::to_string(demo_->port_a),
                                                                  "--port-b", std::to_string(demo_->port_b),
                                                                  "--log-level", "warn"});
    ASSERT_TRUE(sae::testing::wait_for_port(demo_->port_a, 15s));
    QkdKeyResult back = Err{QkdError{}};
    for (int i = 0; i < 50 && !back; ++i) {
        back = master(*a);
        if (!back) std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(back) << back.error().message;
}

TEST_F(KeySource, ASilentKmeIsCutAtTheSlaveDeadlineBelowTheFirstRetransmission) {
    SilentListener silent;
    sae::Profile p = demo_->b;
    p.kme_url.port = silent.port();
    p.kme_url.text = "https://127.0.0.1:" + std::to_string(silent.port());
    auto b = source({p});
    const auto t0 = std::chrono::steady_clock::now();
    auto r = slave(*b, uuid_random_v4(), 256, 10s);  // the gateway allows 10 s, the slave cap is 900 ms
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, QkdFail::timeout) << r.error().message;
    EXPECT_NE(r.error().message.find("900 ms"), std::string::npos) << r.error().message;
    EXPECT_GE(took, kSlaveDeadline);
    EXPECT_LT(took, 1000ms + 500ms) << "the responder must answer before the peer's first retransmission";
    // Master: the gateway's own timeout applies.
    sae::Profile pa = demo_->a;
    pa.kme_url.port = silent.port();
    auto a = source({pa});
    auto m = master(*a, 256, 300ms);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().kind, QkdFail::timeout);
    EXPECT_NE(m.error().message.find("300 ms"), std::string::npos) << m.error().message;
}

TEST_F(KeySource, ConnectionsLeaveFromTheProfilesSourceAddress) {
    // Through the real KME: 127.0.0.2 is a loopback address on Linux.
    sae::Profile p = demo_->a;
    p.source_address = "127.0.0.2";
    auto a = source({p});
    auto k = master(*a);
    ASSERT_TRUE(k) << k.error().message;
    // Which address the connection came from, seen by a listener of our own.
    asio::ip::tcp::acceptor acc(io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::optional<asio::ip::address> seen;
    acc.async_accept([&](const boost::system::error_code& ec, asio::ip::tcp::socket s) {
        if (!ec) seen = s.remote_endpoint().address();
    });
    sae::Profile q = p;
    q.kme_url.port = acc.local_endpoint().port();
    auto b = source({q});
    auto r = master(*b, 256, 500ms);  // no TLS server there: fails, but after the TCP connect
    EXPECT_FALSE(r);
    ASSERT_TRUE(seen);
    EXPECT_EQ(seen->to_string(), "127.0.0.2");
    // An address this machine does not have: a clear error naming it.
    sae::Profile bad = demo_->a;
    bad.source_address = "192.0.2.77";
    auto c = source({bad});
    auto e = master(*c);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().kind, QkdFail::unreachable) << e.error().message;
    EXPECT_NE(e.error().message.find("192.0.2.77"), std::string::npos) << e.error().message;
}

TEST_F(KeySource, AnUnknownProfileIsRefused) {
    auto a = source({demo_->a});
    auto r = wait([&](QkdKeyCallback cb) { a->fetch_master("nope", "SAE_B", 256, 1s, std::move(cb)); });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, QkdFail::no_profile);
}

// The replay memory alone (no KME): bounded, oldest forgotten first.
TEST(UsedKeyIdsTest, RefusesRepeatsAndStaysBounded) {
    UsedKeyIds used(4);
    std::vector<Uuid> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(uuid_random_v4());
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(used.insert(ids[i]));
    EXPECT_FALSE(used.insert(ids[2]));
    EXPECT_TRUE(used.insert(ids[4]));  // ids[0] is forgotten
    EXPECT_TRUE(used.insert(ids[5]));  // ids[1] too
    EXPECT_EQ(used.size(), 4u);
    EXPECT_FALSE(used.contains(ids[0]));
    EXPECT_TRUE(used.contains(ids[3]));
    EXPECT_FALSE(used.insert(ids[5]));
}

}  // namespace
}  // namespace qkd::daemon
