// In-process IKEv2 exchanges between two engines (RFC 7296 notation, one comment per step).
#include "harness.hpp"
#include "wire/message.hpp"

using namespace qkd::ike;
using namespace qkd::ike::test;
using wire::ExchangeType;
using wire::NotifyType;
using wire::PayloadType;

namespace {

wire::OuterMessage outer(const Datagram& d) { return wire::decode_outer(d.bytes).value(); }

bool has_notify(const wire::OuterMessage& m, NotifyType t) {
    for (const auto& p : m.plain)
        if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && n->type == t) return true;
    return false;
}

}  // namespace

TEST(IkeExchange, InitAndAuthWithPskCreateIkeAndChildSa) {
    Pair p;
    p.add_default();
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());

    // HDR, SAi1, KEi, Ni, N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP),
    //      N(FRAGMENTATION_SUPPORTED)  -->
    ASSERT_EQ(p.net.in_flight.size(), 1u);
    auto m1 = outer(p.net.in_flight.front());
    EXPECT_EQ(m1.header.exchange, ExchangeType::IkeSaInit);
    EXPECT_EQ(m1.header.flags, wire::kFlagInitiator);
    EXPECT_EQ(m1.header.spi_r, 0u);
    EXPECT_EQ(m1.header.message_id, 0u);
    ASSERT_EQ(m1.plain.size(), 6u);
    EXPECT_EQ(m1.plain[0].type, PayloadType::Sa);
    const auto& kei = std::get<wire::KePayload>(m1.plain[1].body);
    EXPECT_EQ(kei.group, 21);
    EXPECT_EQ(kei.data.size(), 132u);  // ECP-521: x | y, 66 octets each (RFC 5903)
    EXPECT_TRUE(has_notify(m1, NotifyType::NatDetectionSourceIp));
    EXPECT_TRUE(has_notify(m1, NotifyType::FragmentationSupported));
    ASSERT_EQ(p.net.pump(1), 1);

    //                  <--  HDR, SAr1, KEr, Nr, N(NAT_DETECTION_*), N(FRAGMENTATION_SUPPORTED)
    ASSERT_EQ(p.net.in_flight.size(), 1u);
    auto m2 = outer(p.net.in_flight.front());
    EXPECT_EQ(m2.header.flags, wire::kFlagResponse);
    EXPECT_NE(m2.header.spi_r, 0u);
    EXPECT_EQ(m2.header.spi_i, m1.header.spi_i);
    const auto& sar = std::get<wire::SaPayload>(m2.plain[0].body);
    ASSERT_EQ(sar.proposals.size(), 1u);
    EXPECT_EQ(sar.proposals[0].transforms.size(), 3u);  // ENCR(20, 256), PRF(7), KE(21)
    ASSERT_EQ(p.net.pump(1), 1);

    // HDR, SK {IDi, IDr, AUTH, SAi2, TSi, TSr}  -->
    ASSERT_EQ(p.net.in_flight.size(), 1u);
    auto m3 = outer(p.net.in_flight.front());
    EXPECT_EQ(m3.header.exchange, ExchangeType::IkeAuth);
    EXPECT_EQ(m3.header.message_id, 1u);
    EXPECT_TRUE(m3.encrypted);
    EXPECT_TRUE(m3.plain.empty());
    EXPECT_EQ(m3.inner_first, PayloadType::IdI);
    ASSERT_EQ(p.net.pump(1), 1);

    //                  <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
    ASSERT_EQ(p.net.in_flight.size(), 1u);
    EXPECT_EQ(outer(p.net.in_flight.front()).header.flags, wire::kFlagResponse);
    ASSERT_EQ(p.net.pump(1), 1);
    EXPECT_TRUE(p.net.in_flight.empty());

    auto ia = p.a.engine.list_ike_sas(), ib = p.b.engine.list_ike_sas();
    ASSERT_EQ(ia.size(), 1u);
    ASSERT_EQ(ib.size(), 1u);
    EXPECT_EQ(ia[0].state, IkeSaState::Established);
    EXPECT_EQ(ib[0].state, IkeSaState::Established);
    EXPECT_TRUE(ia[0].initiator);
    EXPECT_FALSE(ib[0].initiator);
    EXPECT_EQ(ia[0].spi_i, ib[0].spi_i);
    EXPECT_EQ(ia[0].spi_r, ib[0].spi_r);
    EXPECT_EQ(ia[0].algorithm, "PSK/DH21/AES256-GCM16");
    EXPECT_EQ(ia[0].proposal, "aes256gcm16-prfsha512-ecp521");
    EXPECT_EQ(ib[0].remote_id, "gw-a.example");
    EXPECT_FALSE(ia[0].nat_local || ia[0].nat_remote);
    ASSERT_TRUE(ia[0].rekey_in.has_value());
    EXPECT_LE(*ia[0].rekey_in, std::chrono::seconds(4 * 3600 - 600));

    auto ca = p.a.engine.list_child_sas();
    ASSERT_EQ(ca.size(), 1u);
    EXPECT_EQ(ca[0].algorithm, "AES256-GCM16");
    EXPECT_EQ(ca[0].local_ts[0].str(), "10.1.0.0/16");
    EXPECT_EQ(ca[0].remote_ts[0].str(), "10.2.0.0/16");
    ASSERT_EQ(p.a.installed.size(), 1u);
    EXPECT_EQ(p.a.installed.begin()->second.key_in.size(), 32u);
    EXPECT_EQ(p.a.installed.begin()->second.salt_in.size(), 4u);
    EXPECT_FALSE(p.a.installed.begin()->second.encap.has_value());
    expect_matching_children(p.a, p.b);
    EXPECT_EQ(p.a.ike_events.size(), 1u);
    EXPECT_EQ(p.a.ike_events[0].rfind("Up", 0), 0u);
}

class AllGroups : public ::testing::TestWithParam<const char*> {};

TEST_P(AllGroups, EstablishWithEachProposal) {
    Pair p;
    p.add(gateway(true, GetParam(), "aes128gcm16-esn"), gateway(false, GetParam(), "aes128gcm16-esn"));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    ASSERT_EQ(p.a.installed.size(), 1u);
    EXPECT_TRUE(p.a.installed.begin()->second.esn);
    EXPECT_EQ(p.a.installed.begin()->second.key_in.size(), 16u);
    expect_matching_children(p.a, p.b);
}

INSTANTIATE_TEST_SUITE_P(Proposals, AllGroups,
                         ::testing::Values("aes128gcm16-prfsha256-modp2048", "aes256gcm16-prfsha256-ecp256",
                                           "aes256gcm16-prfsha384-ecp384", "aes128gcm16-prfsha512-ecp521",
                                           "aes256gcm16-prfsha256-curve25519"));

TEST(IkeExchange, WrongPskFailsWithAuthenticationFailed) {
    Pair p;
    auto gb = gateway(false);
    gb.psk[0] ^= 1;
    p.add(gateway(true), std::move(gb));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // HDR, SAi1, KEi, Ni -->  <-- HDR, SAr1, KEr, Nr;  HDR, SK {IDi, AUTH, ...} -->
    //                  <--  HDR, SK {N(AUTHENTICATION_FAILED)}
    p.net.pump();
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.installed.empty());
    ASSERT_EQ(p.a.ike_events.size(), 1u);
    EXPECT_NE(p.a.ike_events[0].find("AUTHENTICATION_FAILED"), std::string::npos) << p.a.ike_events[0];
    ASSERT_EQ(p.b.ike_events.size(), 1u);
    EXPECT_NE(p.b.ike_events[0].find("AUTHENTICATION_FAILED"), std::string::npos);
}

TEST(IkeExchange, WrongIdentityIsRefused) {
    Pair p;
    auto ga = gateway(true);
    ga.local_id = *Identity::parse("intruder.example");
    p.add(std::move(ga), gateway(false));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
}

TEST(IkeExchange, NoProposalChosen) {
    Pair p;
    p.add(gateway(true, "aes128gcm16-prfsha256-ecp256"), gateway(false, "aes256gcm16-prfsha512-ecp521"));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // HDR, SAi1, KEi, Ni -->   <-- HDR, N(NO_PROPOSAL_CHOSEN)
    p.net.pump();
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    ASSERT_EQ(p.a.ike_events.size(), 1u);
    EXPECT_NE(p.a.ike_events[0].find("NO_PROPOSAL_CHOSEN"), std::string::npos);
}

TEST(IkeExchange, InvalidKePayloadRetryWithTheResponderGroup) {
    Pair p;
    // A guesses ECP-256 first; B only accepts ECP-521.
    p.add(gateway(true, "aes256gcm16-prfsha512-ecp256-ecp521"), gateway(false, "aes256gcm16-prfsha512-ecp521"));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // HDR, SAi1, KEi(19), Ni  -->
    p.net.pump(1);
    //                  <--  HDR, N(INVALID_KE_PAYLOAD, 21)
    auto reply = outer(p.net.in_flight.front());
    ASSERT_TRUE(has_notify(reply, NotifyType::InvalidKePayload));
    EXPECT_EQ(reply.header.spi_r, 0u);
    p.net.pump(1);
    // HDR, SAi1, KEi(21), Ni  -->  (same SPIi)
    auto retry = outer(p.net.in_flight.front());
    EXPECT_EQ(std::get<wire::KePayload>(retry.plain[1].body).group, 21);
    EXPECT_EQ(retry.header.spi_i, reply.header.spi_i);
    p.net.pump();
    EXPECT_EQ(p.b.engine.stats().invalid_ke_sent, 1u);
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    EXPECT_EQ(p.a.engine.list_ike_sas()[0].algorithm, "PSK/DH21/AES256-GCM16");
    expect_matching_children(p.a, p.b);
}

TEST(IkeExchange, CookieRequiredUnderHalfOpenLoad) {
    EngineOptions ob;
    ob.cookie_threshold = 0;  // every IKE_SA_INIT must carry a cookie
    Pair p({}, ob);
    p.add_default();
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // HDR, SAi1, KEi, Ni  -->
    p.net.pump(1);
    //                  <--  HDR, N(COOKIE)
    auto reply = outer(p.net.in_flight.front());
    ASSERT_TRUE(has_notify(reply, NotifyType::Cookie));
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());  // stateless (RFC 7296 2.6)
    p.net.pump(1);
    // HDR, N(COOKIE), SAi1, KEi, Ni  -->
    auto retry = outer(p.net.in_flight.front());
    ASSERT_FALSE(retry.plain.empty());
    EXPECT_EQ(std::get<wire::NotifyPayload>(retry.plain[0].body).type, NotifyType::Cookie);
    p.net.pump();
    EXPECT_EQ(p.b.engine.stats().cookies_sent, 1u);
    expect_matching_children(p.a, p.b);
    ASSERT_EQ(p.a.installed.size(), 1u);
}

TEST(IkeExchange, ForgedCookieIsNotAccepted) {
    EngineOptions ob;
    ob.cookie_threshold = 0;
    Pair p({}, ob);
    p.add_default();
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // Corrupt every cookie B hands out: A's retries never pass, and B keeps no state.
    p.net.filter = [](Datagram& d) {
        if (d.from == 1) d.bytes.back() ^= 1;
        return true;
    };
    p.net.run_for(std::chrono::seconds(60));
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_GE(p.b.engine.stats().cookies_sent, 2u);
}

TEST(IkeExchange, RetransmitsWithExponentialBackoffAndRespondsFromCache) {
    Pair p;
    p.add_default();
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // Lose the first two transmissions of IKE_SA_INIT.
    int dropped = 0;
    p.net.filter = [&](Datagram& d) { return !(d.from == 0 && dropped++ < 2); };
    std::vector<std::chrono::steady_clock::time_point> sends;
    auto start = p.clock.t;
    for (int i = 0; i < 3 && p.b.engine.list_ike_sas().empty(); ++i) {
        p.net.pump();
        sends.push_back(p.clock.t);
        auto next = p.a.engine.next_deadline();
        ASSERT_TRUE(next.has_value());
        p.clock.t = *next;
        p.a.engine.on_timer();
    }
    p.net.pump();
    // 1 s, then 1.8 s later (strongSwan-like back-off, base 1 s, factor 1.8).
    ASSERT_GE(sends.size(), 3u);
    EXPECT_EQ(sends[1] - start, std::chrono::milliseconds(1000));
    EXPECT_EQ(sends[2] - sends[1], std::chrono::milliseconds(1800));
    EXPECT_EQ(p.a.engine.stats().retransmits, 2u);
    expect_matching_children(p.a, p.b);
    ASSERT_EQ(p.a.installed.size(), 1u);
}

TEST(IkeExchange, DropEveryOtherDatagramStillComesUp) {
    Pair p;
    p.add_default();
    // Every other datagram in each direction is lost, starting with the first (as an
    // iptables "statistic --mode nth --every 2" rule per direction would do).
    int n[2] = {0, 0};
    p.net.filter = [&](Datagram& d) { return n[d.from]++ % 2 == 1; };
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(std::chrono::seconds(30));
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    EXPECT_EQ(p.a.engine.list_ike_sas()[0].state, IkeSaState::Established);
    EXPECT_EQ(p.b.engine.list_ike_sas().size(), 1u);  // no duplicate SA from retransmitted IKE_SA_INIT
    expect_matching_children(p.a, p.b);
    EXPECT_EQ(p.a.installed.size(), 1u);
    EXPECT_GT(p.a.engine.stats().retransmits + p.b.engine.stats().retransmits, 0u);
}

TEST(IkeExchange, PeerGoneFailsAfterRetransmitsAndDpdDetectsDeadPeer) {
    Pair p;
    auto ga = gateway(true);
    ga.dpd_interval = std::chrono::seconds(10);
    p.add(std::move(ga), gateway(false));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    ASSERT_EQ(p.a.installed.size(), 1u);
    // Liveness check: HDR, SK {} -->   <-- HDR, SK {}
    const auto tx = p.a.engine.stats().tx;
    p.net.run_for(std::chrono::seconds(11));
    EXPECT_EQ(p.a.engine.stats().tx, tx + 1);
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    // The peer vanishes: the next liveness check is retransmitted, then the SA is closed.
    p.net.filter = [](Datagram&) { return false; };
    p.net.run_for(std::chrono::seconds(60));
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.installed.empty());
    EXPECT_EQ(p.a.engine.stats().retransmits, 5u);
    EXPECT_NE(p.a.ike_events.back().find("Failed"), std::string::npos);
}

TEST(IkeExchange, DeleteAndReinitiate) {
    Pair p;
    p.add_default();
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    ASSERT_EQ(p.b.installed.size(), 1u);
    // HDR, SK {D(IKE)} -->   <-- HDR, SK {}
    ASSERT_TRUE(p.a.engine.terminate("to-b").ok());
    p.net.pump();
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.installed.empty());
    EXPECT_TRUE(p.b.installed.empty());
    EXPECT_EQ(p.b.events.back().rfind("down", 0), 0u);
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    EXPECT_EQ(p.a.installed.size(), 1u);
    expect_matching_children(p.a, p.b);
}

TEST(IkeExchange, TrafficSelectorsNarrowedOrRefused) {
    Pair p;
    auto ga = gateway(true);
    ga.remote_ts = {*TrafficSelector::parse_cidr("10.0.0.0/8")};  // wider than B allows
    p.add(std::move(ga), gateway(false));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    // A asked for 10.0.0.0/8 behind B; B narrowed it to 10.2.0.0/16 (RFC 7296 2.9).
    ASSERT_EQ(p.a.installed.size(), 1u);
    EXPECT_EQ(p.a.installed.begin()->second.remote_ts[0].str(), "10.2.0.0/16");
    expect_matching_children(p.a, p.b);

    Pair q;
    auto gb = gateway(true);
    gb.remote_ts = {*TrafficSelector::parse_cidr("172.16.0.0/12")};  // disjoint
    q.add(std::move(gb), gateway(false));
    ASSERT_TRUE(q.a.engine.initiate("to-b").ok());
    q.net.pump();
    // <-- HDR, SK {IDr, AUTH, N(TS_UNACCEPTABLE)}: IKE SA without child SA
    EXPECT_EQ(q.a.engine.list_ike_sas().size(), 1u);
    EXPECT_TRUE(q.a.installed.empty());
    EXPECT_NE(q.a.ike_events.back().find("TS_UNACCEPTABLE"), std::string::npos);
}

TEST(IkeExchange, ApiErrorsNameTheProblem) {
    Pair p;
    p.add_default();
    auto r = p.a.engine.initiate("nope");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EngineErrc::UnknownGateway);
    EXPECT_NE(r.error().message.find("nope"), std::string::npos);
    EXPECT_EQ(p.a.engine.rekey_ike("to-b").error().code, EngineErrc::NotConnected);
    auto dup = p.a.engine.add_gateway(gateway(true));
    EXPECT_EQ(dup.error().code, EngineErrc::DuplicateGateway);
    auto weak = gateway(true);
    weak.name = "weak";
    weak.psk = qkd::SecretBytes(4);
    EXPECT_EQ(p.a.engine.add_gateway(std::move(weak)).error().code, EngineErrc::InvalidConfig);
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    EXPECT_EQ(p.a.engine.initiate("to-b").error().code, EngineErrc::Busy);
}

TEST(IkeExchange, InitialContactClearsStaleSasOfARestartedPeer) {
    Pair p;
    p.add_default();
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    ASSERT_EQ(p.b.installed.size(), 1u);
    // A "restarts": a fresh engine with the same configuration, no DELETE sent.
    Peer a2(0, p.net, p.clock, 77);
    p.net.peers[0] = &a2;
    ASSERT_TRUE(a2.engine.add_gateway(gateway(true)).ok());
    ASSERT_TRUE(a2.engine.initiate("to-b").ok());
    // HDR, SK {IDi, IDr, AUTH, N(INITIAL_CONTACT), SAi2, TSi, TSr} -->
    p.net.pump();
    ASSERT_EQ(p.b.engine.list_ike_sas().size(), 1u);  // the stale SA is gone
    ASSERT_EQ(p.b.installed.size(), 1u);
    expect_matching_children(a2, p.b);
    p.net.peers[0] = &p.a;
}
