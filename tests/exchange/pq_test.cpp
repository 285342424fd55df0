// Post-quantum IKE SAs: RFC 9242 IKE_INTERMEDIATE carrying the RFC 9370 additional key exchanges
// (ADDKE1..7), ML-KEM (draft-ietf-ipsecme-ikev2-mlkem) in any slot, and what goes wrong.
#include "harness.hpp"
#include "wire/message.hpp"

namespace qkd::ike::test {
namespace {

using namespace std::chrono_literals;
using wire::ExchangeType;
using wire::NotifyType;
using wire::PayloadType;

// The exchanges as they went over the network: "IKE_SA_INIT", "IKE_SA_INIT r", ... (fragments of one
// message count once).
std::vector<std::string> flow(const Network& net) {
    std::vector<std::string> out;
    for (const auto& d : net.log) {
        std::span<const std::uint8_t> b = d.bytes;
        if (d.src.port == 4500 || d.dst.port == 4500) b = b.subspan(4);
        auto m = wire::decode_outer(b).value();
        if (m.fragment && m.frag.number != 1) continue;
        out.push_back(wire::to_string(m.header.exchange) + (m.header.is_response() ? " r" : "") +
                      (m.fragment ? " (" + std::to_string(m.frag.total) + " fragments)" : ""));
    }
    return out;
}

Pair& pq_pair(Pair& p, std::string_view ike_a, std::string_view ike_b) {
    p.add(gateway(true, ike_a), gateway(false, ike_b));
    return p;
}

void expect_up(const Pair& p, const std::string& algorithm) {
    auto ia = p.a.engine.list_ike_sas(), ib = p.b.engine.list_ike_sas();
    ASSERT_EQ(ia.size(), 1u);
    ASSERT_EQ(ib.size(), 1u);
    EXPECT_EQ(ia[0].state, IkeSaState::Established);
    EXPECT_EQ(ib[0].state, IkeSaState::Established);
    EXPECT_EQ(ia[0].algorithm, algorithm);
    EXPECT_EQ(ib[0].algorithm, algorithm);
    ASSERT_EQ(p.a.installed.size(), 1u);
    expect_matching_children(p.a, p.b);
}

TEST(PqIke, HybridEcp521MlKem768) {
    Pair p;
    pq_pair(p, "aes256gcm16-prfsha512-ecp521-ke1_mlkem768", "aes256gcm16-prfsha512-ecp521-ke1_mlkem768");
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(1s);
    // HDR, SAi1(KE=21, ADDKE1=36), KEi(ECP-521), Ni, N(INTERMEDIATE_EXCHANGE_SUPPORTED)  -->
    //                 <--  HDR, SAr1(KE=21, ADDKE1=36), KEr, Nr, N(INTERMEDIATE_EXCHANGE_SUPPORTED)
    // HDR, SK {KEi(1) = ML-KEM-768 ek, 1184 octets}  -->
    //                 <--  HDR, SK {KEr(1) = ML-KEM-768 ciphertext, 1088 octets}
    //   SKEYSEED(1) = prf(SK_d(0), SK(1) | Ni | Nr), all keys re-derived
    // HDR, SK {IDi, IDr, AUTH, SAi2, TSi, TSr}  -->     AUTH over ... | IntAuth_i | IntAuth_r | MID(2)
    //                 <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
    const std::vector<std::string> want{"IKE_SA_INIT", "IKE_SA_INIT r", "IKE_INTERMEDIATE", "IKE_INTERMEDIATE r",
                                        "IKE_AUTH", "IKE_AUTH r"};
    EXPECT_EQ(flow(p.net), want);
    expect_up(p, "PSK/DH21+MLKEM768/AES256-GCM16");
    const auto info = p.a.engine.list_ike_sas()[0];
    EXPECT_EQ(info.proposal, "aes256gcm16-prfsha512-ecp521-ke1_mlkem768");
    EXPECT_EQ(info.key_exchanges, (std::vector<std::string>{"DH21", "MLKEM768"}));
    // The IKE_INTERMEDIATE request carries the ek: 28 + 4 + 8 (IV) + 4 + 4 + 1184 + 1 + 16 (ICV).
    EXPECT_EQ(p.net.log[2].bytes.size(), 1249u);
}

TEST(PqIke, X25519ThenMlKem768ThenMlKem1024Fragmented) {
    Pair p;
    const char* prop = "aes256gcm16-prfsha512-curve25519-ke1_mlkem768-ke2_mlkem1024";
    pq_pair(p, prop, prop);
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(1s);
    // ... IKE_SA_INIT (X25519), IKE_INTERMEDIATE #1 (ML-KEM-768), IKE_INTERMEDIATE #2 (ML-KEM-1024:
    // a 1568-octet ek and a 1568-octet ciphertext, each sent as SKF fragments, RFC 7383), IKE_AUTH
    const std::vector<std::string> want{"IKE_SA_INIT",
                                        "IKE_SA_INIT r",
                                        "IKE_INTERMEDIATE",
                                        "IKE_INTERMEDIATE r",
                                        "IKE_INTERMEDIATE (2 fragments)",
                                        "IKE_INTERMEDIATE r (2 fragments)",
                                        "IKE_AUTH",
                                        "IKE_AUTH r"};
    EXPECT_EQ(flow(p.net), want);
    expect_up(p, "PSK/DH31+MLKEM768+MLKEM1024/AES256-GCM16");
    EXPECT_EQ(p.b.engine.list_ike_sas()[0].proposal, prop);
}

TEST(PqIke, MlKem768AloneNeedsNoIntermediate) {
    Pair p;
    pq_pair(p, "aes256gcm16-prfsha512-mlkem768", "aes256gcm16-prfsha512-mlkem768");
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // HDR, SAi1(KE=36), KEi(ek, 1184), Ni  -->  <--  HDR, SAr1, KEr(ciphertext, 1088), Nr
    // HDR, SK {IDi, AUTH, ...}  -->  <--  HDR, SK {IDr, AUTH, ...}   (no IntAuth: no IKE_INTERMEDIATE)
    p.net.run_for(1s);
    const std::vector<std::string> want{"IKE_SA_INIT", "IKE_SA_INIT r", "IKE_AUTH", "IKE_AUTH r"};
    EXPECT_EQ(flow(p.net), want);
    expect_up(p, "PSK/MLKEM768/AES256-GCM16");
}

TEST(PqIke, OptionalAddkeChosenWhenTheResponderHasIt) {
    Pair p;
    pq_pair(p, "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha512-ecp521-ke1_mlkem768");
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(1s);
    expect_up(p, "PSK/DH21+MLKEM768/AES256-GCM16");
}

TEST(PqIke, OptionalAddkeSkippedByAClassicalResponder) {
    Pair p;
    // SAi1(KE=21, ADDKE1={36, NONE})  -->  <--  SAr1(KE=21): no ADDKE, no IKE_INTERMEDIATE
    pq_pair(p, "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha512-ecp521");
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(1s);
    const std::vector<std::string> want{"IKE_SA_INIT", "IKE_SA_INIT r", "IKE_AUTH", "IKE_AUTH r"};
    EXPECT_EQ(flow(p.net), want);
    expect_up(p, "PSK/DH21/AES256-GCM16");
}

TEST(PqIke, RequiredAddkeTheResponderDoesNotAllow) {
    Pair p;
    // SAi1(KE=21, ADDKE1=36)  -->  <--  N(NO_PROPOSAL_CHOSEN)
    pq_pair(p, "aes256gcm16-prfsha512-ecp521-ke1_mlkem768", "aes256gcm16-prfsha512-ecp521");
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(1s);
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    ASSERT_FALSE(p.a.ike_events.empty());
    EXPECT_EQ(p.a.ike_events.back(), "Failed to-b: peer answered IKE_SA_INIT with NO_PROPOSAL_CHOSEN");
}

// Removes the ADDKE transforms from the responder's (unprotected) IKE_SA_INIT answer, so the
// initiator, for which the ADDKE is optional, goes to IKE_AUTH while the responder waits for the
// IKE_INTERMEDIATE.
bool strip_addke_from_sar(Datagram& d) {
    if (d.from != 1 || header_of(d).exchange != ExchangeType::IkeSaInit) return true;
    auto m = wire::decode_outer(d.bytes).value();
    for (auto& pl : m.plain)
        if (auto* sa = std::get_if<wire::SaPayload>(&pl.body))
            for (auto& pr : sa->proposals)
                std::erase_if(pr.transforms, [](const wire::Transform& t) { return wire::is_addke(t.type); });
    d.bytes = wire::encode_plain(m.header, m.plain);
    return true;
}

TEST(PqIke, IkeAuthBeforeTheIntermediateIsRefused) {
    Pair p;
    pq_pair(p, "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha512-ecp521-ke1_mlkem768");
    p.net.filter = strip_addke_from_sar;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // HDR, SAi1(ADDKE1={36, NONE}), ...  -->  <--  HDR, SAr1(ADDKE1=36 removed on the way), ...
    // HDR, SK {IDi, AUTH, ...}  -->  (too early: ADDKE1 is pending)  <--  HDR, SK {N(INVALID_SYNTAX)}
    p.net.run_for(1s);
    const std::vector<std::string> want{"IKE_SA_INIT", "IKE_SA_INIT r", "IKE_AUTH", "IKE_AUTH r"};
    EXPECT_EQ(flow(p.net), want);
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    ASSERT_FALSE(p.b.ike_events.empty());
    EXPECT_EQ(p.b.ike_events.back(), "Failed to-a: INVALID_SYNTAX: IKE_AUTH before the IKE_INTERMEDIATE of ADDKE1");
    EXPECT_EQ(p.a.ike_events.back(), "Failed to-b: peer answered IKE_AUTH with INVALID_SYNTAX");
}

TEST(PqIke, MalformedMlKemKeyGetsInvalidSyntax) {
    Pair p;
    pq_pair(p, "aes256gcm16-prfsha512-mlkem768", "aes256gcm16-prfsha512-mlkem768");
    // The first 12-bit coefficient of the ek set to 4095 >= q = 3329 (FIPS 203 7.2 modulus check).
    p.net.filter = [](Datagram& d) {
        if (d.from != 0 || header_of(d).exchange != ExchangeType::IkeSaInit) return true;
        auto m = wire::decode_outer(d.bytes).value();
        for (auto& pl : m.plain)
            if (auto* ke = std::get_if<wire::KePayload>(&pl.body)) {
                ke->data[0] = 0xFF;
                ke->data[1] |= 0x0F;
            }
        d.bytes = wire::encode_plain(m.header, m.plain);
        return true;
    };
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // HDR, SAi1, KEi(ek fails the modulus check), Ni  -->  <--  HDR, N(INVALID_SYNTAX)
    p.net.run_for(1s);
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_EQ(p.a.ike_events.back(), "Failed to-b: peer answered IKE_SA_INIT with INVALID_SYNTAX");
}

TEST(PqIke, LostIntermediateResponseIsRetransmittedUnderTheOldKeys) {
    Pair p;
    pq_pair(p, "aes256gcm16-prfsha512-ecp521-ke1_mlkem768", "aes256gcm16-prfsha512-ecp521-ke1_mlkem768");
    int dropped = 0;
    p.net.filter = [&](Datagram& d) {
        const auto h = header_of(d);
        if (h.exchange == ExchangeType::IkeIntermediate && h.is_response() && dropped == 0) {
            ++dropped;
            return false;
        }
        return true;
    };
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // HDR, SK {KEi(1)}  -->  <--  HDR, SK {KEr(1)}  (lost; B has moved to the keys of round 1)
    // HDR, SK {KEi(1)}  -->  (retransmission after 1 s, same octets: answered from B's cache)
    //                        <--  HDR, SK {KEr(1)}  (the cached answer, under the old keys)
    p.net.run_for(3s);
    EXPECT_EQ(dropped, 1);
    EXPECT_EQ(p.a.engine.stats().retransmits, 1u);
    expect_up(p, "PSK/DH21+MLKEM768/AES256-GCM16");
}

}  // namespace
}  // namespace qkd::ike::test
