// Configs written as an operator would (TOML) -> to_gateway_config -> two real engines exchanging
// datagrams in memory -> the child SA keys converted to data-plane specs. Checks the daemon's
// conversions end to end without sockets.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>

#include "qkd/daemon/convert.hpp"

using namespace qkd::daemon;

namespace {

struct Clock final : qkd::Clock {
    std::chrono::steady_clock::time_point t{std::chrono::hours(1)};
    std::chrono::steady_clock::time_point now() const override { return t; }
    std::chrono::system_clock::time_point wall() const override { return std::chrono::system_clock::now(); }
};

struct Wire {
    struct D {
        int to;
        qkd::ike::Endpoint src, dst;
        std::vector<std::uint8_t> b;
    };
    std::deque<D> q;
};

struct Side final : qkd::ike::EventSink {
    Side(int i, Wire& w, Clock& c) : idx(i), wire(w), engine(c, qkd::SystemRng::instance(), *this) {}
    int idx;
    Wire& wire;
    qkd::ike::Engine engine;
    std::vector<SaPair> up;
    std::vector<std::string> ike_events;
    void send_datagram(const qkd::ike::Endpoint& l, const qkd::ike::Endpoint& r, std::span<const std::uint8_t> b) override {
        wire.q.push_back({1 - idx, l, r, {b.begin(), b.end()}});
    }
    void child_sa_up(const qkd::ike::ChildSaKeys& k) override {
        auto p = to_sa_pair(k, SaConvertOptions{7, false});
        ASSERT_TRUE(p) << p.error().message;
        up.push_back(std::move(*p));
    }
    void child_sa_rekeyed(const qkd::ike::ChildSaRef&, const qkd::ike::ChildSaKeys&) override {}
    void child_sa_down(const qkd::ike::ChildSaRef&) override {}
    void ike_sa_event(const qkd::ike::IkeSaInfo&, qkd::ike::IkeSaEvent ev, std::string_view reason) override {
        ike_events.push_back(std::to_string(static_cast<int>(ev)) + " " + std::string(reason));
    }
};

Config load(const std::string& dir, const std::string& side) {
    const bool west = side == "west";
    auto psk = dir + "/psk";
    {
        std::ofstream(psk) << "0x5f1c2e8d9a0b4c3d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5\n";
        ::chmod(psk.c_str(), 0600);
    }
    std::string t = std::string("[daemon]\ndataplane = \"userspace\"\n[[gateway]]\nname = \"peer\"\n") +
                    "local_address = \"" + (west ? "10.99.0.1" : "10.99.0.2") + "\"\nremote_address = \"" +
                    (west ? "10.99.0.2" : "10.99.0.1") + "\"\nlocal_id = \"" + (west ? "west" : "east") +
                    ".qkdgate.test\"\nremote_id = \"" + (west ? "east" : "west") + ".qkdgate.test\"\npsk_file = \"" + psk +
                    "\"\nlocal_ts = [\"" + (west ? "10.98.1.0/24" : "10.98.2.0/24") + "\"]\nremote_ts = [\"" +
                    (west ? "10.98.2.0/24" : "10.98.1.0/24") + "\"]\n";
    auto c = parse_config(t, side + ".toml");
    EXPECT_TRUE(c) << (c ? "" : c.error().message);
    return std::move(*c);
}

}  // namespace

TEST(DaemonWiring, TomlToEnginesToDataplaneSpecs) {
    char tmpl[] = "/tmp/qkd-wiring-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    Clock clock;
    Wire wire;
    Side west(0, wire, clock), east(1, wire, clock);
    auto cw = load(dir, "west"), ce = load(dir, "east");
    std::filesystem::remove_all(dir);
    auto gw = to_gateway_config(cw.gateways[0], cw.daemon);
    ASSERT_TRUE(gw) << gw.error().message;
    auto ge = to_gateway_config(ce.gateways[0], ce.daemon);
    ASSERT_TRUE(ge) << ge.error().message;
    EXPECT_EQ(gw->local.port, 500);
    ASSERT_TRUE(west.engine.add_gateway(std::move(*gw)));
    ASSERT_TRUE(east.engine.add_gateway(std::move(*ge)));
    ASSERT_TRUE(west.engine.initiate("peer"));
    Side* sides[] = {&west, &east};
    for (int i = 0; i < 20 && !wire.q.empty(); ++i) {
        auto d = std::move(wire.q.front());
        wire.q.pop_front();
        sides[d.to]->engine.on_datagram(d.dst, d.src, d.b);
    }
    for (auto& e : west.ike_events) EXPECT_EQ(e.rfind("0 ", 0), 0u) << "west event " << e;  // only Up
    ASSERT_EQ(west.up.size(), 1u);
    ASSERT_EQ(east.up.size(), 1u);
    auto& w = west.up[0];
    auto& e = east.up[0];
    // The two ends agree crosswise: what west sends on (spi, key, salt), east receives with.
    EXPECT_EQ(w.out.spi, e.in.spi);
    EXPECT_EQ(w.in.spi, e.out.spi);
    EXPECT_TRUE(qkd::ct_equal(w.out.key, e.in.key));
    EXPECT_TRUE(qkd::ct_equal(w.out.salt, e.in.salt));
    EXPECT_TRUE(qkd::ct_equal(w.in.key, e.out.key));
    EXPECT_EQ(w.out.key.size(), 32u);
    EXPECT_EQ(w.out.reqid, 7u);
    EXPECT_EQ(w.out.outer_dst.to_string(), "10.99.0.2");
    EXPECT_EQ(w.in.outer_dst.to_string(), "10.99.0.1");
    ASSERT_EQ(w.out.selectors.size(), 1u);
    EXPECT_EQ(w.out.selectors[0].local.to_string(), "10.98.1.0/24");
    EXPECT_EQ(w.out.selectors[0].remote.to_string(), "10.98.2.0/24");
    EXPECT_FALSE(w.out.encap);  // no NAT between the two
    // The info structs the control socket serves.
    auto sas = west.engine.list_ike_sas();
    ASSERT_EQ(sas.size(), 1u);
    auto j = ike_sa_json(sas[0]);
    EXPECT_EQ(j["algorithm"], "PSK/DH21/AES256-GCM16");
    EXPECT_EQ(j["role"], "initiator");
    auto cs = west.engine.list_child_sas();
    ASSERT_EQ(cs.size(), 1u);
    auto cj = child_sa_json(cs[0], nullptr, nullptr);
    EXPECT_EQ(cj["local_ts"][0], "10.98.1.0/24");
    EXPECT_TRUE(cj["bytes_in"].is_null());
}

TEST(DaemonWiring, TsToPrefix) {
    auto ts = qkd::ike::TrafficSelector::parse_cidr("10.1.0.0/16");
    ASSERT_TRUE(ts);
    auto p = ts_to_prefix(*ts);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->to_string(), "10.1.0.0/16");
    auto range = *ts;
    range.end = qkd::ike::IpAddr::v4(10, 1, 0, 9);  // 10.1.0.0-10.1.0.9 is not a prefix
    auto bad = ts_to_prefix(range);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("not a CIDR block"), std::string::npos);
}

TEST(DaemonWiring, BadProposalNamesGateway) {
    GatewayEntry g;
    g.name = "x";
    g.local_id = "a.example";
    g.remote_id = {"b.example"};
    g.ike_proposals = "aes256gcm16-prfsha512-ecp999";
    auto r = to_gateway_config(g, DaemonSettings{});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("gateway 'x': ike_proposals \"aes256gcm16-prfsha512-ecp999\""), std::string::npos)
        << r.error().message;
}

// remote_id lists and patterns reach the engine as one RemoteIdentity; the IKE layer's parser
// refuses what the config parser let through only when called directly (no file to name then).
TEST(DaemonWiring, RemoteIdListAndPattern) {
    GatewayEntry g;
    g.name = "bench";
    g.local_id = "east.bench.test";
    g.remote_id = {"west.bench.test", "bench-*.west.bench.test"};
    auto r = to_gateway_config(g, DaemonSettings{});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->remote_id.str(), "west.bench.test, bench-*.west.bench.test");
    EXPECT_EQ(r->remote_id.exact(), nullptr);
    EXPECT_TRUE(r->remote_id.match(*qkd::ike::Identity::parse("bench-7.west.bench.test")));
    EXPECT_FALSE(r->remote_id.match(*qkd::ike::Identity::parse("bench-7.east.bench.test")));

    g.remote_id = {"10.0.0.*"};
    auto ip = to_gateway_config(g, DaemonSettings{});
    ASSERT_FALSE(ip);
    EXPECT_NE(ip.error().message.find("gateway 'bench': remote_id: \"10.0.0.*\": IP address identities"), std::string::npos)
        << ip.error().message;

    // An engine refuses to initiate with a pattern, and to auto-start with one.
    g.remote_id = {"*@bench.test"};
    g.psk = qkd::SecretBytes(32);
    g.local_ts = {*parse_cidr("10.97.0.0/16")};
    g.remote_ts = {*parse_cidr("10.98.1.0/24")};
    auto gc = to_gateway_config(g, DaemonSettings{});
    ASSERT_TRUE(gc) << gc.error().message;
    Clock clock;
    Wire wire;
    Side side(0, wire, clock);
    auto start = to_gateway_config(g, DaemonSettings{}).value();
    start.name = "auto";
    start.auto_start = true;
    auto refused = side.engine.add_gateway(std::move(start));
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("remote_id pattern \"*@bench.test\" cannot be used to initiate"), std::string::npos)
        << refused.error().message;
    auto added = side.engine.add_gateway(std::move(*gc));
    ASSERT_TRUE(added) << added.error().message;
    auto init = side.engine.initiate("bench");
    ASSERT_FALSE(init);
    EXPECT_EQ(init.error().code, qkd::ike::EngineErrc::InvalidConfig);
    EXPECT_NE(init.error().message.find("cannot be used to initiate"), std::string::npos) << init.error().message;
    EXPECT_TRUE(wire.q.empty());
}
