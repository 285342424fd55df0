// In-process IKE_AUTH identity handling on the responder: the IDr check (RFC 7296 3.5), remote_id
// lists and '*' patterns, and the gateway precedence of src/ike/src/gateway_select.cpp.
#include <algorithm>

#include "harness.hpp"

using namespace qkd::ike;
using namespace qkd::ike::test;

namespace {

qkd::SecretBytes psk_of(std::string_view text) {
    return qkd::SecretBytes(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

// A's gateway `name` with identity `local_id`, asking B for `want` (sent as IDr).
GatewayConfig initiator(std::string name, std::string_view local_id, std::string_view psk, std::string_view remote_ts,
                        std::string_view want = "gw-b.example") {
    GatewayConfig g = gateway(true);
    g.name = std::move(name);
    g.local_id = *Identity::parse(local_id);
    g.remote_id = *Identity::parse(want);
    g.psk = psk_of(psk);
    g.remote_ts = {*TrafficSelector::parse_cidr(remote_ts)};
    return g;
}

// B's gateway `name` accepting `remote_ids`.
GatewayConfig responder(std::string name, std::vector<std::string> remote_ids, std::string_view psk,
                        std::string_view local_id = "gw-b.example") {
    GatewayConfig g = gateway(false);
    g.name = std::move(name);
    g.local_id = *Identity::parse(local_id);
    g.remote_id = RemoteIdentity::parse(remote_ids).value();
    g.psk = psk_of(psk);
    return g;
}

const std::string kPsk0 = "psk-0-0123456789abcdef", kPsk1 = "psk-1-0123456789abcdef", kPsk2 = "psk-2-0123456789abcdef",
                  kPsk3 = "psk-3-0123456789abcdef";

// B's IKE SAs as "gateway <- peer identity".
std::vector<std::string> b_sas(const Pair& p) {
    std::vector<std::string> out;
    for (const auto& sa : p.b.engine.list_ike_sas())
        out.push_back(sa.gateway + " <- " + sa.remote_id + (sa.state == IkeSaState::Established ? "" : " (not established)"));
    return out;
}

}  // namespace

// HDR, SK {IDi, IDr(gw-x.example), AUTH, SAi2, TSi, TSr} -->
//                  <--  HDR, SK {N(AUTHENTICATION_FAILED)}
// B is gw-b.example: the initiator wants someone else, so no configuration matches.
TEST(IkeIdentity, IdrNotOurIdentityFailsWithAuthenticationFailed) {
    Pair p;
    auto ga = gateway(true);
    ga.remote_id = *Identity::parse("gw-x.example");
    p.add(std::move(ga), gateway(false));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.installed.empty());
    EXPECT_TRUE(p.b.installed.empty());
    ASSERT_EQ(p.a.ike_events.size(), 1u);
    EXPECT_NE(p.a.ike_events[0].find("AUTHENTICATION_FAILED"), std::string::npos) << p.a.ike_events[0];
    ASSERT_EQ(p.b.ike_events.size(), 1u);
    EXPECT_NE(p.b.ike_events[0].find("AUTHENTICATION_FAILED: IDr \"gw-x.example\" is not our identity (gateway to-a is "
                                     "\"gw-b.example\")"),
              std::string::npos)
        << p.b.ike_events[0];
    // The answer is the notify alone (RFC 7296 2.21.2), encrypted: four datagrams in all.
    EXPECT_EQ(p.net.log.size(), 4u);
}

// The same IDi, two responder identities: IDr picks the gateway (and so the PSK).
TEST(IkeIdentity, IdrSelectsAmongResponderIdentities) {
    Pair p;
    ASSERT_TRUE(p.b.engine.add_gateway(responder("as-b1", {"gw-a.example"}, kPsk1, "gw-b1.example")).ok());
    ASSERT_TRUE(p.b.engine.add_gateway(responder("as-b2", {"gw-a.example"}, kPsk2, "gw-b2.example")).ok());
    ASSERT_TRUE(p.a.engine.add_gateway(initiator("to-b2", "gw-a.example", kPsk2, "10.2.0.0/16", "gw-b2.example")).ok());
    ASSERT_TRUE(p.a.engine.initiate("to-b2").ok());
    p.net.pump();
    EXPECT_EQ(b_sas(p), (std::vector<std::string>{"as-b2 <- gw-a.example"}));
    auto ia = p.a.engine.list_ike_sas();
    ASSERT_EQ(ia.size(), 1u);
    EXPECT_EQ(ia[0].remote_id, "gw-b2.example");  // the IDr B answered with
    EXPECT_EQ(p.b.engine.list_ike_sas()[0].local_id, "gw-b2.example");
    expect_matching_children(p.a, p.b);
}

// Two initiators with distinct identities come up under one wildcard gateway. Each sends
// INITIAL_CONTACT (it has no other IKE SA with B), and neither removes the other's SA: RFC 7296
// 2.4 is about the same authenticated identities.
TEST(IkeIdentity, TwoInitiatorsUnderOneWildcardGateway) {
    Pair p;
    ASSERT_TRUE(p.b.engine.add_gateway(responder("bench", {"*@bench.qkdgate"}, kPsk0)).ok());
    ASSERT_TRUE(p.a.engine.add_gateway(initiator("bench-0", "bench-0@bench.qkdgate", kPsk0, "10.2.0.1/32")).ok());
    ASSERT_TRUE(p.a.engine.add_gateway(initiator("bench-1", "bench-1@bench.qkdgate", kPsk0, "10.2.0.2/32")).ok());
    // HDR, SAi1, KEi, Ni -->  (twice)   <-- HDR, SAr1, KEr, Nr  (twice)
    // HDR, SK {IDi(bench-N@bench.qkdgate), IDr, AUTH, N(INITIAL_CONTACT), SAi2, TSi, TSr} --> (twice)
    //                  <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}  (twice)
    ASSERT_TRUE(p.a.engine.initiate("bench-0").ok());
    ASSERT_TRUE(p.a.engine.initiate("bench-1").ok());
    p.net.pump();
    EXPECT_EQ(b_sas(p), (std::vector<std::string>{"bench <- bench-0@bench.qkdgate", "bench <- bench-1@bench.qkdgate"}));
    ASSERT_EQ(p.a.installed.size(), 2u);
    expect_matching_children(p.a, p.b);
    for (const auto& e : p.b.ike_events) EXPECT_EQ(e.rfind("Up bench", 0), 0u) << e;
    // Each child SA is narrowed to its initiator's selector.
    std::vector<std::string> ts;
    for (const auto& c : p.b.engine.list_child_sas()) ts.push_back(c.local_ts[0].str());
    std::sort(ts.begin(), ts.end());
    EXPECT_EQ(ts, (std::vector<std::string>{"10.2.0.1/32", "10.2.0.2/32"}));

    // bench-0 restarts (a fresh engine, no DELETE): its INITIAL_CONTACT removes only its own
    // stale SA.
    Peer a2(0, p.net, p.clock, 77);
    p.net.peers[0] = &a2;
    ASSERT_TRUE(a2.engine.add_gateway(initiator("bench-0", "bench-0@bench.qkdgate", kPsk0, "10.2.0.1/32")).ok());
    ASSERT_TRUE(a2.engine.initiate("bench-0").ok());
    p.net.pump();
    EXPECT_EQ(b_sas(p), (std::vector<std::string>{"bench <- bench-1@bench.qkdgate", "bench <- bench-0@bench.qkdgate"}));
    EXPECT_EQ(p.b.installed.size(), 2u);
    p.net.peers[0] = &p.a;

    // terminate(gateway) on the responder deletes every IKE SA of the wildcard gateway (the
    // DELETE for the SA of the restarted bench-0 goes unanswered and ends it after the retries).
    ASSERT_TRUE(p.b.engine.terminate("bench").ok());
    p.net.run_for(std::chrono::seconds(60));
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.b.installed.empty());
}

// One identity, several gateways that accept it: exact beats patterns, more literal characters
// beat fewer, a named remote address beats 0.0.0.0, and the first name wins a tie. Each B
// gateway has its own PSK, and A uses the PSK of the gateway that must be chosen, so a wrong
// choice shows as AUTHENTICATION_FAILED.
TEST(IkeIdentity, SeveralMatchingGatewaysResolveByPrecedence) {
    Pair p;
    auto add_b = [&](GatewayConfig g) { ASSERT_TRUE(p.b.engine.add_gateway(std::move(g)).ok()); };
    add_b(responder("a-any", {"%any"}, kPsk0));                                 // first by name: IKE_SA_INIT's pick
    add_b(responder("b-wide", {"*.example", "*@example.org"}, kPsk1));
    add_b(responder("c-narrow", {"gw-*.example"}, kPsk2));
    add_b(responder("d-exact", {"other.example", "gw-a.example"}, kPsk3));
    auto any_addr = responder("0-anywhere", {"gw-*.example"}, kPsk0);
    any_addr.remote.addr = IpAddr::v4(0, 0, 0, 0);
    add_b(std::move(any_addr));                                                 // loses to c-narrow on the address
    add_b(responder("e-tie", {"gw-*.example"}, kPsk0));                         // ties c-narrow: c first by name
    struct Case {
        std::string identity, psk, expect;
    } cases[] = {
        {"gw-a.example", kPsk3, "d-exact"},
        {"gw-z.example", kPsk2, "c-narrow"},
        {"host.example", kPsk1, "b-wide"},
        {"me@example.org", kPsk1, "b-wide"},
        {"192.0.2.1", kPsk0, "a-any"},
    };
    int i = 0;
    std::vector<std::string> want;
    for (const auto& c : cases) {
        const std::string name = "to-b-" + std::to_string(i);
        const std::string ts = "10.2.0." + std::to_string(++i) + "/32";
        ASSERT_TRUE(p.a.engine.add_gateway(initiator(name, c.identity, c.psk, ts)).ok());
        ASSERT_TRUE(p.a.engine.initiate(name).ok());
        want.push_back(c.expect + " <- " + c.identity);
    }
    p.net.pump();
    EXPECT_EQ(b_sas(p), want);
    EXPECT_EQ(p.a.installed.size(), std::size(cases));
    for (const auto& e : p.a.ike_events) EXPECT_EQ(e.rfind("Up", 0), 0u) << e;
}

// The gateway picked by IDi must take the IKE proposal IKE_SA_INIT negotiated (with the gateway
// chosen by address); if it does not, AUTHENTICATION_FAILED names the reason.
TEST(IkeIdentity, ChosenGatewayMustAcceptTheNegotiatedProposal) {
    Pair p;
    ASSERT_TRUE(p.b.engine.add_gateway(responder("a-first", {"nobody.example"}, kPsk0)).ok());
    auto other = responder("b-other", {"gw-a.example"}, kPsk1);
    other.ike_proposals = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").value();
    ASSERT_TRUE(p.b.engine.add_gateway(std::move(other)).ok());
    ASSERT_TRUE(p.a.engine.add_gateway(initiator("to-b", "gw-a.example", kPsk1, "10.2.0.0/16")).ok());
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    ASSERT_EQ(p.b.ike_events.size(), 1u);
    EXPECT_NE(p.b.ike_events[0].find("gateway b-other accepts peer identity \"gw-a.example\" but not the IKE proposal "
                                     "negotiated with gateway a-first (aes256gcm16-prfsha512-ecp521)"),
              std::string::npos)
        << p.b.ike_events[0];
}

// Negative tests of the other IKE_AUTH refusals: no gateway accepts IDi; IDi accepted but the
// AUTH is made with another PSK than the chosen gateway's.
TEST(IkeIdentity, UnknownIdentityAndWrongPskOfWildcardGateway) {
    Pair p;
    ASSERT_TRUE(p.b.engine.add_gateway(responder("bench", {"*@bench.qkdgate"}, kPsk0)).ok());
    ASSERT_TRUE(p.a.engine.add_gateway(initiator("stranger", "bench-0@elsewhere.example", kPsk0, "10.2.0.1/32")).ok());
    ASSERT_TRUE(p.a.engine.add_gateway(initiator("wrong-psk", "bench-1@bench.qkdgate", kPsk1, "10.2.0.2/32")).ok());
    ASSERT_TRUE(p.a.engine.initiate("stranger").ok());
    p.net.pump();
    ASSERT_EQ(p.b.ike_events.size(), 1u);
    EXPECT_NE(p.b.ike_events[0].find("AUTHENTICATION_FAILED: no gateway accepts peer identity \"bench-0@elsewhere.example\" "
                                     "(gateway bench expects \"*@bench.qkdgate\")"),
              std::string::npos)
        << p.b.ike_events[0];
    ASSERT_TRUE(p.a.engine.initiate("wrong-psk").ok());
    p.net.pump();
    ASSERT_EQ(p.b.ike_events.size(), 2u);
    EXPECT_NE(p.b.ike_events[1].find("AUTHENTICATION_FAILED: peer bench-1@bench.qkdgate did not prove the PSK of gateway bench"),
              std::string::npos)
        << p.b.ike_events[1];
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_EQ(p.a.ike_events.size(), 2u);
}
