#pragma once
// Test doubles for in-process exchanges: a fake clock, a deterministic RNG, an in-memory
// network that can drop, rewrite (NAT) and inspect datagrams, and a recording EventSink.
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>

#include "qkd/ike/engine.hpp"
#include "wire/header.hpp"

namespace qkd::ike::test {

struct FakeClock final : Clock {
    std::chrono::steady_clock::time_point t{std::chrono::hours(1)};
    std::chrono::steady_clock::time_point now() const override { return t; }
    std::chrono::system_clock::time_point wall() const override { return std::chrono::system_clock::time_point{} + t.time_since_epoch(); }
};

struct TestRng final : Rng {
    std::uint64_t s;
    explicit TestRng(std::uint64_t seed) : s(seed) {}
    void fill(std::span<std::uint8_t> out) override {
        for (auto& b : out) {  // splitmix64
            std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            b = static_cast<std::uint8_t>(z ^ (z >> 31));
        }
    }
};

// Keys as the data plane would hold them.
struct InstalledSa {
    ChildSaRef ref;
    std::vector<std::uint8_t> key_in, salt_in, key_out, salt_out;
    std::vector<TrafficSelector> local_ts, remote_ts;
    std::optional<UdpEncap> encap;
    bool esn = false;
};

struct Datagram {
    int from;  // 0 = A, 1 = B
    Endpoint src, dst;
    std::vector<std::uint8_t> bytes;
};

struct Network;

struct Peer final : EventSink {
    Peer(int idx, Network& n, FakeClock& c, std::uint64_t seed, EngineOptions o = {})
        : index(idx), net(n), rng(seed), engine(c, rng, *this, o) {}
    int index;
    Network& net;
    TestRng rng;
    Engine engine;
    std::map<std::uint32_t, InstalledSa> installed;  // by spi_in
    std::vector<std::string> events;
    std::vector<std::string> ike_events;
    std::vector<std::string> drops;  // "reason: detail" per dropped datagram

    void send_datagram(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> bytes) override;
    static std::vector<std::uint8_t> v(const SecretBytes& s) { return {s.view().begin(), s.view().end()}; }
    InstalledSa record(const ChildSaKeys& k) {
        return {k.ref, v(k.key_in), v(k.salt_in), v(k.key_out), v(k.salt_out), k.local_ts, k.remote_ts, k.encap, k.esn};
    }
    void child_sa_up(const ChildSaKeys& k) override {
        events.push_back("up " + std::to_string(k.ref.spi_in));
        installed[k.ref.spi_in] = record(k);
    }
    void child_sa_rekeyed(const ChildSaRef& old, const ChildSaKeys& k) override {
        events.push_back("rekeyed " + std::to_string(old.spi_in) + " -> " + std::to_string(k.ref.spi_in));
        installed[k.ref.spi_in] = record(k);
    }
    void child_sa_down(const ChildSaRef& r) override {
        events.push_back("down " + std::to_string(r.spi_in));
        installed.erase(r.spi_in);
    }
    void ike_sa_event(const IkeSaInfo& sa, IkeSaEvent ev, std::string_view reason) override {
        static const char* names[] = {"Up", "Rekeyed", "Down", "Failed"};
        ike_events.push_back(std::string(names[static_cast<int>(ev)]) + " " + sa.gateway + ": " + std::string(reason));
    }
    // QKD rounds (qkd_test.cpp): what the engine asked for; the test answers with on_qkd_key.
    std::vector<QkdKeyRequest> qkd_requests;
    void qkd_key_request(const QkdKeyRequest& r) override { qkd_requests.push_back(r); }
    void datagram_dropped(const Endpoint&, DropReason r, std::string_view detail) override {
        drops.push_back(std::string(to_string(r)) + ": " + std::string(detail));
    }
};

struct Network {
    FakeClock& clock;
    std::deque<Datagram> in_flight;
    std::vector<Datagram> log;  // everything sent
    Peer* peers[2] = {nullptr, nullptr};
    // Return false to drop. May rewrite src/dst (NAT).
    std::function<bool(Datagram&)> filter;
    // Who is at which address (after NAT rewriting): the receiving peer of a datagram.
    std::function<int(const Datagram&)> route = [](const Datagram& d) { return 1 - d.from; };

    explicit Network(FakeClock& c) : clock(c) {}

    // Delivers until quiet; returns the number of datagrams delivered.
    int pump(int limit = 1000) {
        int n = 0;
        while (!in_flight.empty() && n < limit) {
            Datagram d = std::move(in_flight.front());
            in_flight.pop_front();
            if (filter && !filter(d)) continue;
            ++n;
            peers[route(d)]->engine.on_datagram(d.dst, d.src, d.bytes);
        }
        return n;
    }
    // Advances the clock to each engine deadline (up to `span`), pumping in between.
    void run_for(std::chrono::milliseconds span) {
        const auto end = clock.t + span;
        pump();
        while (true) {
            std::optional<TimePoint> next;
            for (auto* p : peers)
                if (auto d = p->engine.next_deadline(); d && (!next || *d < *next)) next = d;
            if (!next || *next > end) break;
            if (*next > clock.t) clock.t = *next;
            for (auto* p : peers) p->engine.on_timer();
            pump();
        }
        clock.t = end;
        for (auto* p : peers) p->engine.on_timer();
        pump();
    }
};

inline void Peer::send_datagram(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> bytes) {
    Datagram d{index, local, remote, {bytes.begin(), bytes.end()}};
    net.log.push_back(d);
    net.in_flight.push_back(std::move(d));
}

inline GatewayConfig gateway(bool a, std::string_view ike = "aes256gcm16-prfsha512-ecp521",
                             std::string_view esp = "aes256gcm16") {
    GatewayConfig g;
    g.name = a ? "to-b" : "to-a";
    const auto ip_a = IpAddr::v4(192, 0, 2, 1), ip_b = IpAddr::v4(198, 51, 100, 1);
    g.local = {a ? ip_a : ip_b, 500};
    g.remote = {a ? ip_b : ip_a, 500};
    g.local_id = *Identity::parse(a ? "gw-a.example" : "gw-b.example");
    g.remote_id = *Identity::parse(a ? "gw-b.example" : "gw-a.example");
    const std::string psk = "0123456789abcdef0123456789abcdef";
    g.psk = SecretBytes(std::span(reinterpret_cast<const std::uint8_t*>(psk.data()), psk.size()));
    g.ike_proposals = parse_ike_proposals(ike).value();
    g.esp_proposals = parse_esp_proposals(esp).value();
    g.local_ts = {*TrafficSelector::parse_cidr(a ? "10.1.0.0/16" : "10.2.0.0/16")};
    g.remote_ts = {*TrafficSelector::parse_cidr(a ? "10.2.0.0/16" : "10.1.0.0/16")};
    return g;
}

// Two engines A (initiator) and B (responder) on one network.
struct Pair {
    FakeClock clock;
    Network net{clock};
    Peer a, b;
    explicit Pair(EngineOptions oa = {}, EngineOptions ob = {}) : a(0, net, clock, 1, oa), b(1, net, clock, 2, ob) {
        net.peers[0] = &a;
        net.peers[1] = &b;
    }
    void add(GatewayConfig ga, GatewayConfig gb) {
        ASSERT_TRUE(a.engine.add_gateway(std::move(ga)).ok());
        ASSERT_TRUE(b.engine.add_gateway(std::move(gb)).ok());
    }
    void add_default() { add(gateway(true), gateway(false)); }
};

// Every installed SA of one peer has its mirror on the other with the same keys.
inline void expect_matching_children(const Peer& a, const Peer& b) {
    ASSERT_EQ(a.installed.size(), b.installed.size());
    for (const auto& [spi_in, sa] : a.installed) {
        auto it = b.installed.find(sa.ref.spi_out);
        ASSERT_NE(it, b.installed.end()) << "no peer SA with SPI " << sa.ref.spi_out;
        const InstalledSa& o = it->second;
        EXPECT_EQ(o.ref.spi_out, spi_in);
        EXPECT_EQ(sa.key_out, o.key_in);
        EXPECT_EQ(sa.salt_out, o.salt_in);
        EXPECT_EQ(sa.key_in, o.key_out);
        EXPECT_EQ(sa.salt_in, o.salt_out);
        EXPECT_NE(sa.key_in, sa.key_out);
        EXPECT_EQ(sa.local_ts, o.remote_ts);
        EXPECT_EQ(sa.remote_ts, o.local_ts);
    }
}

inline wire::Header header_of(const Datagram& d) {
    std::span<const std::uint8_t> b = d.bytes;
    if (d.src.port == 4500 || d.dst.port == 4500) b = b.subspan(4);
    return wire::Header::decode(b).value();
}

}  // namespace qkd::ike::test
