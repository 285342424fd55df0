// Rekeys of post-quantum SAs: CREATE_CHILD_SA followed by one IKE_FOLLOWUP_KE per additional key
// exchange (RFC 9370 2.2.4), for the IKE SA (new SKEYSEED from every SK(n)) and for child SAs with
// PFS (KEYMAT from every SK(n)), from either side, with loss, STATE_NOT_FOUND and collisions.
#include "harness.hpp"
#include "wire/message.hpp"

namespace qkd::ike::test {
namespace {

using namespace std::chrono_literals;
using wire::ExchangeType;

constexpr const char* kIke = "aes256gcm16-prfsha512-ecp521-ke1_mlkem768";
constexpr const char* kEsp = "aes256gcm16-ecp521-ke1_mlkem768";

// Exchanges sent from `from` after log position `since`: "CREATE_CHILD_SA", "IKE_FOLLOWUP_KE r", ...
std::vector<std::string> flow(const Network& net, std::size_t since) {
    std::vector<std::string> out;
    for (std::size_t i = since; i < net.log.size(); ++i) {
        const auto& d = net.log[i];
        std::span<const std::uint8_t> b = d.bytes;
        if (d.src.port == 4500 || d.dst.port == 4500) b = b.subspan(4);
        auto m = wire::decode_outer(b).value();
        if (m.fragment && m.frag.number != 1) continue;
        out.push_back(std::string(d.from ? "B " : "A ") + wire::to_string(m.header.exchange) + (m.header.is_response() ? " r" : ""));
    }
    return out;
}

void up(Pair& p) {
    p.add(gateway(true, kIke, kEsp), gateway(false, kIke, kEsp));
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    ASSERT_EQ(p.a.installed.size(), 1u);
}

void expect_one_ike_sa(const Pair& p) {
    auto ia = p.a.engine.list_ike_sas(), ib = p.b.engine.list_ike_sas();
    ASSERT_EQ(ia.size(), 1u);
    ASSERT_EQ(ib.size(), 1u);
    EXPECT_EQ(ia[0].spi_i, ib[0].spi_i);
    EXPECT_EQ(ia[0].spi_r, ib[0].spi_r);
    EXPECT_EQ(ia[0].algorithm, "PSK/DH21+MLKEM768/AES256-GCM16");
    EXPECT_EQ(ib[0].algorithm, "PSK/DH21+MLKEM768/AES256-GCM16");
}

class PqIkeRekey : public ::testing::TestWithParam<int> {};  // 0: A starts it, 1: B starts it

TEST_P(PqIkeRekey, CreateChildSaThenFollowupKe) {
    Pair p;
    up(p);
    Peer& from = GetParam() ? p.b : p.a;
    const char* who = GetParam() ? "B " : "A ";
    const char* other = GetParam() ? "A " : "B ";
    const auto before = p.a.engine.list_ike_sas()[0];
    const std::size_t mark = p.net.log.size();
    ASSERT_TRUE(from.engine.rekey_ike(GetParam() ? "to-a" : "to-b").ok());
    p.net.pump();
    // HDR, SK {SA(KE=21, ADDKE1=36), Ni, KEi(ECP-521)}  -->
    //                 <--  HDR, SK {SA, Nr, KEr, N(ADDITIONAL_KEY_EXCHANGE)(link)}
    // HDR(IKE_FOLLOWUP_KE), SK {KEi(1) = ML-KEM-768 ek, N(ADDITIONAL_KEY_EXCHANGE)(link)}  -->
    //                 <--  HDR, SK {KEr(1) = ML-KEM-768 ciphertext}
    //   SKEYSEED = prf(SK_d(old), SK(0) | Ni | Nr | SK(1)); new keys with the new SPIs and nonces
    // HDR, SK {D(IKE)} (old SA)  -->  <--  HDR, SK {}
    const std::vector<std::string> want{std::string(who) + "CREATE_CHILD_SA", std::string(other) + "CREATE_CHILD_SA r",
                                        std::string(who) + "IKE_FOLLOWUP_KE", std::string(other) + "IKE_FOLLOWUP_KE r",
                                        std::string(who) + "INFORMATIONAL", std::string(other) + "INFORMATIONAL r"};
    EXPECT_EQ(flow(p.net, mark), want);
    expect_one_ike_sa(p);
    EXPECT_NE(p.a.engine.list_ike_sas()[0].spi_i, before.spi_i);
    EXPECT_EQ(p.a.engine.stats().ike_rekeyed + p.b.engine.stats().ike_rekeyed, 2u);
    // The new IKE SA's keys agree on both sides: a child rekey with PFS runs over it.
    ASSERT_TRUE(p.a.engine.rekey_child("to-b").ok());
    p.net.pump();
    ASSERT_EQ(p.a.installed.size(), 1u);
    expect_matching_children(p.a, p.b);
}

TEST_P(PqIkeRekey, ChildPfsRekeyDoesEveryAdditionalExchangeAgain) {
    Pair p;
    up(p);
    Peer& from = GetParam() ? p.b : p.a;
    const char* who = GetParam() ? "B " : "A ";
    const char* other = GetParam() ? "A " : "B ";
    const auto old_a = p.a.installed.begin()->first;
    const auto old_keys = p.a.installed.begin()->second.key_in;
    const std::size_t mark = p.net.log.size();
    ASSERT_TRUE(from.engine.rekey_child(GetParam() ? "to-a" : "to-b").ok());
    p.net.pump();
    // HDR, SK {N(REKEY_SA), SA(ESP: KE=21, ADDKE1=36), Ni, KEi, TSi, TSr}  -->
    //                 <--  HDR, SK {SA, Nr, KEr, TSi, TSr, N(ADDITIONAL_KEY_EXCHANGE)(link)}
    // HDR(IKE_FOLLOWUP_KE), SK {KEi(1), N(ADDITIONAL_KEY_EXCHANGE)(link)}  -->  <--  HDR, SK {KEr(1)}
    //   KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1))
    // HDR, SK {D(ESP, old)}  -->  <--  HDR, SK {D(ESP, old)}
    const std::vector<std::string> want{std::string(who) + "CREATE_CHILD_SA", std::string(other) + "CREATE_CHILD_SA r",
                                        std::string(who) + "IKE_FOLLOWUP_KE", std::string(other) + "IKE_FOLLOWUP_KE r",
                                        std::string(who) + "INFORMATIONAL", std::string(other) + "INFORMATIONAL r"};
    EXPECT_EQ(flow(p.net, mark), want);
    ASSERT_EQ(p.a.installed.size(), 1u);
    EXPECT_NE(p.a.installed.begin()->first, old_a);
    EXPECT_NE(p.a.installed.begin()->second.key_in, old_keys);
    expect_matching_children(p.a, p.b);
    for (auto* peer : {&p.a, &p.b}) {
        auto c = peer->engine.list_child_sas();
        ASSERT_EQ(c.size(), 1u);
        EXPECT_EQ(c[0].algorithm, "AES256-GCM16/DH21+MLKEM768");
    }
}

INSTANTIATE_TEST_SUITE_P(EitherSide, PqIkeRekey, ::testing::Values(0, 1));

TEST(PqRekey, LostFollowupResponseIsAnsweredFromTheCache) {
    Pair p;
    up(p);
    int dropped = 0;
    p.net.filter = [&](Datagram& d) {
        const auto h = header_of(d);
        if (h.exchange == ExchangeType::IkeFollowupKe && h.is_response() && dropped == 0) {
            ++dropped;
            return false;
        }
        return true;
    };
    ASSERT_TRUE(p.a.engine.rekey_ike("to-b").ok());
    // HDR(IKE_FOLLOWUP_KE), SK {KEi(1), N(link)}  -->  <--  HDR, SK {KEr(1)}  (lost)
    // HDR(IKE_FOLLOWUP_KE), SK {KEi(1), N(link)}  -->  (same message ID: the cached answer)  <--
    p.net.run_for(5s);
    EXPECT_EQ(dropped, 1);
    EXPECT_GE(p.a.engine.stats().retransmits, 1u);
    expect_one_ike_sa(p);
    EXPECT_EQ(p.a.engine.stats().ike_rekeyed, 1u);
}

TEST(PqRekey, ExpiredResponderStateGetsStateNotFoundAndTheRekeyIsRetried) {
    EngineOptions slow;
    slow.retransmit_base = 40s;  // the first retransmission comes after B dropped its state (30 s)
    Pair p(slow, {});
    up(p);
    int dropped = 0;
    p.net.filter = [&](Datagram& d) {
        const auto h = header_of(d);
        if (h.exchange == ExchangeType::IkeFollowupKe && !h.is_response() && dropped == 0) {
            ++dropped;
            return false;
        }
        return true;
    };
    ASSERT_TRUE(p.a.engine.rekey_ike("to-b").ok());
    // HDR, SK {SA, Ni, KEi}  -->  <--  HDR, SK {SA, Nr, KEr, N(link)}
    // HDR(IKE_FOLLOWUP_KE), SK {KEi(1), N(link)}  -->  (lost)
    // ... 40 s: the retransmission  -->  <--  HDR, SK {N(STATE_NOT_FOUND)}   (RFC 9370 2.2.4)
    // A gives that rekey up and starts a new one 10 s later, which completes.
    p.net.run_for(45s);
    EXPECT_EQ(p.a.engine.stats().ike_rekeyed, 0u);
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    p.net.run_for(20s);
    EXPECT_EQ(p.a.engine.stats().ike_rekeyed, 1u);
    expect_one_ike_sa(p);
    expect_matching_children(p.a, p.b);
}

TEST(PqRekey, SimultaneousIkeRekeysWithFollowupKe) {
    for (std::uint64_t seed = 0; seed < 6; ++seed) {
        Pair p;
        p.b.rng.s += seed * 104729;  // either side may hold the lowest nonce
        up(p);
        // Both ends send HDR, SK {SA, Ni, KEi} before seeing the other's request, then each runs
        // its IKE_FOLLOWUP_KE; RFC 7296 2.8.2 keeps the new SA without the lowest nonce.
        ASSERT_TRUE(p.a.engine.rekey_ike("to-b").ok());
        ASSERT_TRUE(p.b.engine.rekey_ike("to-a").ok());
        p.net.run_for(2s);
        expect_one_ike_sa(p);
        ASSERT_EQ(p.a.engine.list_ike_sas()[0].child_sas, 1u) << "seed " << seed;
        expect_matching_children(p.a, p.b);
        ASSERT_TRUE(p.b.engine.rekey_child("to-a").ok());
        p.net.pump();
        ASSERT_EQ(p.a.installed.size(), 1u) << "seed " << seed;
        expect_matching_children(p.a, p.b);
    }
}

}  // namespace
}  // namespace qkd::ike::test
