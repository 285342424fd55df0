// NAT detection and UDP 4500 (RFC 7296 2.23, RFC 3948) and IKE fragmentation (RFC 7383).
#include "harness.hpp"

using namespace qkd::ike;
using namespace qkd::ike::test;

TEST(NatTraversal, NatDetectedMovesToPort4500WithMarkerAndEncap) {
    Pair p;
    const auto nat_ip = IpAddr::v4(203, 0, 113, 5);
    // A sits behind a NAPT: its source becomes 203.0.113.5:3xxxx.
    p.net.filter = [&](Datagram& d) {
        if (d.from == 0) {
            d.src = {nat_ip, static_cast<std::uint16_t>(d.src.port == 500 ? 31000 : 31001)};
        } else if (d.dst.addr == nat_ip) {
            d.dst = {IpAddr::v4(192, 0, 2, 1), static_cast<std::uint16_t>(d.dst.port == 31000 ? 500 : 4500)};
        }
        return true;
    };
    auto gb = gateway(false);
    gb.remote.addr = *IpAddr::parse("0.0.0.0");  // accept any peer address
    p.add(gateway(true), std::move(gb));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    auto ia = p.a.engine.list_ike_sas(), ib = p.b.engine.list_ike_sas();
    ASSERT_EQ(ia.size(), 1u);
    ASSERT_EQ(ib.size(), 1u);
    EXPECT_TRUE(ia[0].nat_local);
    EXPECT_FALSE(ia[0].nat_remote);
    EXPECT_TRUE(ib[0].nat_remote);
    EXPECT_EQ(ia[0].local.port, 4500);
    EXPECT_EQ(ib[0].remote.port, 31001);
    // IKE_AUTH went to port 4500 with the non-ESP marker.
    ASSERT_GE(p.net.log.size(), 4u);
    const auto& auth = p.net.log[2];
    EXPECT_EQ(auth.dst.port, 4500);
    ASSERT_GE(auth.bytes.size(), 4u);
    EXPECT_EQ(std::vector<std::uint8_t>(auth.bytes.begin(), auth.bytes.begin() + 4), std::vector<std::uint8_t>(4, 0));
    EXPECT_EQ(header_of(auth).exchange, wire::ExchangeType::IkeAuth);
    ASSERT_EQ(p.a.installed.size(), 1u);
    const auto& sa = p.a.installed.begin()->second;
    ASSERT_TRUE(sa.encap.has_value());
    EXPECT_EQ(sa.encap->local_port, 4500);
    EXPECT_EQ(sa.encap->remote_port, 4500);
    EXPECT_EQ(p.b.installed.begin()->second.encap->remote_port, 31001);
    expect_matching_children(p.a, p.b);
    // A datagram on 4500 without the marker is ESP, not ours; a keepalive is ignored.
    const auto dropped = p.b.engine.stats().dropped;
    std::vector<std::uint8_t> esp{0, 0, 1, 0, 0, 0, 0, 1};
    p.b.engine.on_datagram({IpAddr::v4(198, 51, 100, 1), 4500}, {nat_ip, 31001}, esp);
    EXPECT_EQ(p.b.engine.stats().dropped, dropped + 1);
    std::vector<std::uint8_t> keepalive{0xFF};
    p.b.engine.on_datagram({IpAddr::v4(198, 51, 100, 1), 4500}, {nat_ip, 31001}, keepalive);
    EXPECT_EQ(p.b.engine.stats().dropped, dropped + 1);
}

TEST(NatTraversal, ForceEncapWithoutNat) {
    Pair p;
    auto ga = gateway(true);
    ga.force_encap = true;
    p.add(std::move(ga), gateway(false));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    ASSERT_EQ(p.b.installed.size(), 1u);
    EXPECT_TRUE(p.b.installed.begin()->second.encap.has_value());
    EXPECT_TRUE(p.b.engine.list_ike_sas()[0].nat_remote);
    expect_matching_children(p.a, p.b);
}

TEST(Fragmentation, LargeIkeAuthIsFragmentedAndReassembled) {
    EngineOptions o;
    o.fragment_size = 200;  // force IKE_AUTH into several SKF payloads
    Pair p(o, o);
    p.add_default();
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    int skf = 0;
    std::uint16_t max_len = 0;
    for (const auto& d : p.net.log) {
        auto h = header_of(d);
        if (h.next_payload == wire::PayloadType::Skf) ++skf;
        if (h.exchange == wire::ExchangeType::IkeAuth) max_len = std::max<std::uint16_t>(max_len, static_cast<std::uint16_t>(d.bytes.size()));
    }
    EXPECT_GE(skf, 3);
    EXPECT_LE(max_len, 200 - 28);  // fragment_size is the IP datagram size (RFC 7383 2.5.1)
    ASSERT_EQ(p.a.installed.size(), 1u);
    expect_matching_children(p.a, p.b);
}

TEST(Fragmentation, LostFragmentIsRecoveredByRetransmission) {
    EngineOptions o;
    o.fragment_size = 200;
    Pair p(o, o);
    p.add_default();
    int auth_frags = 0;
    p.net.filter = [&](Datagram& d) {
        // Drop the second fragment of the first IKE_AUTH request.
        if (d.from == 0 && header_of(d).exchange == wire::ExchangeType::IkeAuth && ++auth_frags == 2) return false;
        return true;
    };
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(std::chrono::seconds(5));
    ASSERT_EQ(p.a.installed.size(), 1u);
    expect_matching_children(p.a, p.b);
}
