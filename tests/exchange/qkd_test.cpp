// QKD as an additional key exchange (issue 16; shared/docs/ike.md 1, pattern C, the QURSA wire
// format): "ecp521-ke1_mlkem768-ke2_qkd" gives DH21 + ML-KEM-768 + QKD, the QKD round carried in
// IKE_INTERMEDIATE. The engine asks for keys through EventSink::qkd_key_request and waits; a fake
// key source answers now, later, never or with an error (Engine::on_qkd_key).
#include <set>

#include "harness.hpp"

namespace qkd::ike::test {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kIke = "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_qkd";
constexpr const char* kCombined = "PSK/DH21+MLKEM768+QKD/AES256-GCM16/COMBINED";

// The two KMEs of a link: a master fetch makes a key and a key_ID, the slave fetch by that ID
// gives the same key (or, to prove the key enters the key schedule, a different one).
struct FakeKms {
    std::map<std::array<std::uint8_t, 16>, std::vector<std::uint8_t>> keys;
    std::uint8_t next = 1;
    bool corrupt_slave = false;
    int slave_fetches = 0;

    QkdKeyAnswer master() {
        QkdKeyAnswer a;
        a.key_id.fill(0);
        a.key_id[0] = 0x42;
        a.key_id[15] = next;
        std::vector<std::uint8_t> k(32, next++);
        keys[a.key_id] = k;
        a.key = SecretBytes(std::span<const std::uint8_t>(k));
        return a;
    }
    QkdKeyAnswer slave(const std::array<std::uint8_t, 16>& id) {
        ++slave_fetches;
        QkdKeyAnswer a;
        auto it = keys.find(id);
        if (it == keys.end()) {
            a.error = "HTTP 400: one or more keys specified are not found on KME";
            return a;
        }
        auto k = it->second;
        keys.erase(it);  // ETSI 014 5.4: deleted once delivered
        if (corrupt_slave) k[0] ^= 1;
        a.key_id = id;
        a.key = SecretBytes(std::span<const std::uint8_t>(k));
        return a;
    }
    // Answers every open request of both peers (never from inside the engine's own call).
    void answer_all(Pair& p) {
        for (auto* peer : {&p.a, &p.b}) {
            auto reqs = std::move(peer->qkd_requests);
            peer->qkd_requests.clear();
            for (auto& r : reqs) peer->engine.on_qkd_key(r.ike_sa_id, r.slot, r.master ? master() : slave(r.key_id));
        }
    }
};

void setup(Pair& p) { p.add(gateway(true, kIke), gateway(false, kIke)); }

// Runs the network, answering key requests as they come, until nothing moves for `span`.
void run_answering(Pair& p, FakeKms& kms, std::chrono::milliseconds span) {
    for (int i = 0; i < 20; ++i) {
        p.net.run_for(span / 20);
        kms.answer_all(p);
    }
    p.net.run_for(100ms);
}

TEST(QkdIke, CombinedDh21MlKem768Qkd) {
    Pair p;
    setup(p);
    FakeKms kms;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    // HDR, SAi1(KE=21, ADDKE1=36, ADDKE2=65516), KEi, Ni, N(INTERMEDIATE_EXCHANGE_SUPPORTED) -->
    //                <-- HDR, SAr1, KEr, Nr, N(INTERMEDIATE_EXCHANGE_SUPPORTED)
    // HDR, SK {KEi(1) ML-KEM-768 ek} -->  <-- HDR, SK {KEr(1) ciphertext}
    p.net.run_for(200ms);
    // Round 2 (QKD): A waits for its KME before it can send KEi(2) = key_ID.
    ASSERT_EQ(p.a.qkd_requests.size(), 1u);
    EXPECT_TRUE(p.a.qkd_requests[0].master);
    EXPECT_EQ(p.a.qkd_requests[0].slot, 2u);
    EXPECT_TRUE(p.b.qkd_requests.empty());
    kms.answer_all(p);
    // HDR, SK {KEi(2) = 16-byte key_ID} -->   B asks its KME for that key_ID, as the slave
    p.net.run_for(200ms);
    ASSERT_EQ(p.b.qkd_requests.size(), 1u);
    EXPECT_FALSE(p.b.qkd_requests[0].master);
    EXPECT_EQ(p.b.qkd_requests[0].key_id[0], 0x42);
    kms.answer_all(p);
    //                <-- HDR, SK {KEr(2), empty};  SKEYSEED(2) = prf(SK_d(1), QKD key | Ni | Nr)
    // IKE_AUTH both ways
    p.net.run_for(500ms);
    auto ia = p.a.engine.list_ike_sas(), ib = p.b.engine.list_ike_sas();
    ASSERT_EQ(ia.size(), 1u);
    ASSERT_EQ(ib.size(), 1u);
    EXPECT_EQ(ia[0].state, IkeSaState::Established);
    EXPECT_EQ(ib[0].state, IkeSaState::Established);
    EXPECT_EQ(ia[0].algorithm, kCombined);
    EXPECT_EQ(ib[0].algorithm, kCombined);
    EXPECT_EQ(ia[0].qkd_key_id, "42000000-0000-0000-0000-000000000001");
    EXPECT_EQ(ib[0].qkd_key_id, ia[0].qkd_key_id);
    EXPECT_EQ(ia[0].qkd_keys_used, 1u);
    ASSERT_TRUE(ia[0].qkd_key_age);
    expect_matching_children(p.a, p.b);
    EXPECT_EQ(kms.slave_fetches, 1);
}

// The QKD key is in the key schedule: the same exchange with a slave key differing in one bit
// cannot authenticate (AUTH is computed with the keys of the last round, RFC 9370 2.2.2).
TEST(QkdIke, ADifferentQkdKeyOnOneSideFailsAuthentication) {
    Pair p;
    setup(p);
    FakeKms kms;
    kms.corrupt_slave = true;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    run_answering(p, kms, 2s);
    for (auto& sa : p.a.engine.list_ike_sas()) EXPECT_NE(sa.state, IkeSaState::Established);
    for (auto& sa : p.b.engine.list_ike_sas()) EXPECT_NE(sa.state, IkeSaState::Established);
    EXPECT_TRUE(p.a.installed.empty());
    EXPECT_TRUE(p.b.installed.empty());
}

// The responder's KME is slow: A retransmits its QKD round, B drops the retransmissions while it
// waits, asks its KME once, and answers once the key is there.
TEST(QkdIke, SlowResponderKmeAndRetransmissionsAskTheKmeOnce) {
    Pair p;
    setup(p);
    FakeKms kms;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(200ms);
    kms.answer_all(p);  // A's master key
    p.net.run_for(200ms);
    ASSERT_EQ(p.b.qkd_requests.size(), 1u);
    const auto req = p.b.qkd_requests[0];
    p.b.qkd_requests.clear();
    p.net.run_for(3500ms);  // A's retransmissions at 1 s and 2.8 s
    EXPECT_TRUE(p.b.qkd_requests.empty()) << "a retransmission must not ask the KME again";
    EXPECT_GE(p.a.engine.stats().retransmits, 2u);
    p.b.engine.on_qkd_key(req.ike_sa_id, req.slot, kms.slave(req.key_id));
    p.net.run_for(3s);
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    EXPECT_EQ(p.a.engine.list_ike_sas()[0].state, IkeSaState::Established);
    EXPECT_EQ(p.a.engine.list_ike_sas()[0].algorithm, kCombined);
    EXPECT_EQ(kms.slave_fetches, 1);
    expect_matching_children(p.a, p.b);
}

// mode = require: the initiator's KME fails -> no IKE SA, with the reason; nothing is sent for
// the QKD round.
TEST(QkdIke, InitiatorKmeErrorFailsTheSaWithTheReason) {
    Pair p;
    setup(p);
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(200ms);
    ASSERT_EQ(p.a.qkd_requests.size(), 1u);
    QkdKeyAnswer err;
    err.error = "KME unreachable: connection refused";
    p.a.engine.on_qkd_key(p.a.qkd_requests[0].ike_sa_id, p.a.qkd_requests[0].slot, std::move(err));
    p.net.run_for(1s);
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    ASSERT_FALSE(p.a.ike_events.empty());
    EXPECT_NE(p.a.ike_events.back().find("Failed"), std::string::npos) << p.a.ike_events.back();
    EXPECT_NE(p.a.ike_events.back().find("no QKD key: KME unreachable"), std::string::npos) << p.a.ike_events.back();
    EXPECT_TRUE(p.a.installed.empty());
    EXPECT_TRUE(p.b.installed.empty());
}

// mode = require: the responder's KME refuses the key_ID (unknown, replayed) -> B answers
// NO_PROPOSAL_CHOSEN, both have no SA.
TEST(QkdIke, ResponderKmeErrorFailsBothSides) {
    Pair p;
    setup(p);
    FakeKms kms;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(200ms);
    kms.answer_all(p);
    p.net.run_for(200ms);
    ASSERT_EQ(p.b.qkd_requests.size(), 1u);
    QkdKeyAnswer err;
    err.error = "key_ID was already used; a QKD key is used once";
    p.b.engine.on_qkd_key(p.b.qkd_requests[0].ike_sa_id, p.b.qkd_requests[0].slot, std::move(err));
    p.net.run_for(1s);
    for (auto& sa : p.a.engine.list_ike_sas()) EXPECT_NE(sa.state, IkeSaState::Established);
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.installed.empty());
    EXPECT_TRUE(p.b.installed.empty());
    bool a_failed = false;
    for (auto& e : p.a.ike_events) a_failed |= e.find("NO_PROPOSAL_CHOSEN") != std::string::npos;
    EXPECT_TRUE(a_failed);
}

// A key source that never answers: the initiator never sends its QKD round; the responder's
// half-open SA goes after its timeout; nothing comes up.
TEST(QkdIke, AKmeThatNeverAnswersBringsNoSaUp) {
    Pair p;
    setup(p);
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(60s);
    EXPECT_TRUE(p.a.installed.empty());
    EXPECT_TRUE(p.b.installed.empty());
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty()) << "the responder's half-open SA must expire";
}

// A late answer for an SA that is gone is ignored (the key is dropped), and an answer for the
// wrong round changes nothing.
TEST(QkdIke, LateAnswersAreIgnored) {
    Pair p;
    setup(p);
    FakeKms kms;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(200ms);
    ASSERT_EQ(p.a.qkd_requests.size(), 1u);
    auto r = p.a.qkd_requests[0];
    p.a.engine.on_qkd_key(r.ike_sa_id + 1000, r.slot, kms.master());  // no such SA
    p.net.run_for(100ms);
    EXPECT_EQ(p.a.engine.list_ike_sas()[0].state, IkeSaState::Connecting);
    kms.answer_all(p);
    run_answering(p, kms, 2s);
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    EXPECT_EQ(p.a.engine.list_ike_sas()[0].state, IkeSaState::Established);
}

// IKE SA rekey (RFC 9370 2.2.4: CREATE_CHILD_SA, then IKE_FOLLOWUP_KE per ADDKE): the QKD round
// takes a fresh key; the new SA shows it and counts two keys; several rekeys, every key_ID new.
TEST(QkdIke, EveryIkeRekeyTakesAFreshQkdKey) {
    Pair p;
    setup(p);
    FakeKms kms;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    run_answering(p, kms, 2s);
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    std::set<std::string> ids{p.a.engine.list_ike_sas()[0].qkd_key_id};
    for (int i = 0; i < 4; ++i) {
        Peer& who = i % 2 ? p.b : p.a;  // both sides start rekeys
        ASSERT_TRUE(who.engine.rekey_ike(i % 2 ? "to-a" : "to-b").ok());
        run_answering(p, kms, 3s);
        auto ia = p.a.engine.list_ike_sas(), ib = p.b.engine.list_ike_sas();
        ASSERT_EQ(ia.size(), 1u) << "rekey " << i;
        ASSERT_EQ(ib.size(), 1u);
        EXPECT_EQ(ia[0].state, IkeSaState::Established);
        EXPECT_EQ(ia[0].algorithm, kCombined);
        EXPECT_EQ(ib[0].algorithm, kCombined);
        EXPECT_EQ(ia[0].qkd_key_id, ib[0].qkd_key_id);
        EXPECT_EQ(ia[0].qkd_keys_used, static_cast<std::uint64_t>(i + 2));
        EXPECT_TRUE(ids.insert(ia[0].qkd_key_id).second) << "key_ID used twice: " << ia[0].qkd_key_id;
        expect_matching_children(p.a, p.b);
    }
    EXPECT_EQ(kms.slave_fetches, 5);
    EXPECT_EQ(p.a.engine.stats().ike_rekeyed, 4u);  // counted on both sides
    EXPECT_EQ(p.b.engine.stats().ike_rekeyed, 4u);
}

// A rekey whose QKD key fails (mode = require) does not replace the IKE SA: the old one, with
// its QKD key, lives on.
TEST(QkdIke, IkeRekeyWithoutAQkdKeyKeepsTheOldSa) {
    Pair p;
    setup(p);
    FakeKms kms;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    run_answering(p, kms, 2s);
    const auto before = p.a.engine.list_ike_sas().at(0);
    ASSERT_TRUE(p.a.engine.rekey_ike("to-b").ok());
    p.net.run_for(300ms);
    ASSERT_EQ(p.a.qkd_requests.size(), 1u);
    QkdKeyAnswer err;
    err.error = "HTTP 503: peer KME unreachable";
    p.a.engine.on_qkd_key(p.a.qkd_requests[0].ike_sa_id, p.a.qkd_requests[0].slot, std::move(err));
    p.a.qkd_requests.clear();
    p.net.run_for(1s);
    auto ia = p.a.engine.list_ike_sas();
    ASSERT_EQ(ia.size(), 1u);
    EXPECT_EQ(ia[0].id, before.id);
    EXPECT_EQ(ia[0].qkd_key_id, before.qkd_key_id);
    EXPECT_EQ(ia[0].state, IkeSaState::Established);
    ASSERT_EQ(p.a.installed.size(), 1u);
}

// Child SA rekeys with PFS (RFC 9370 2.2.4: CREATE_CHILD_SA, then IKE_FOLLOWUP_KE rounds): each
// takes a fresh QKD key; KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | SK(2)).
TEST(QkdIke, EveryPfsChildRekeyTakesAFreshQkdKey) {
    constexpr std::string_view esp = "aes256gcm16-ecp521-ke1_mlkem768-ke2_qkd";
    Pair p;
    p.add(gateway(true, kIke, esp), gateway(false, kIke, esp));
    FakeKms kms;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    run_answering(p, kms, 2s);
    ASSERT_EQ(p.a.installed.size(), 1u);
    for (int i = 0; i < 4; ++i) {
        const int before = kms.slave_fetches;
        Peer& who = i % 2 ? p.b : p.a;
        ASSERT_TRUE(who.engine.rekey_child(i % 2 ? "to-a" : "to-b").ok());
        run_answering(p, kms, 3s);
        EXPECT_EQ(kms.slave_fetches, before + 1) << "child rekey " << i << " must take one fresh QKD key";
        auto ca = p.a.engine.list_child_sas();
        ASSERT_EQ(ca.size(), 1u) << "rekey " << i;
        EXPECT_EQ(ca[0].algorithm, "AES256-GCM16/DH21+MLKEM768+QKD");
        expect_matching_children(p.a, p.b);
    }
    EXPECT_EQ(p.a.engine.stats().child_rekeyed, 4u);
}

// A PFS child rekey whose QKD key fails keeps the old child SA.
TEST(QkdIke, PfsChildRekeyWithoutAQkdKeyKeepsTheOldChildSa) {
    constexpr std::string_view esp = "aes256gcm16-ecp521-ke1_qkd";
    Pair p;
    p.add(gateway(true, kIke, esp), gateway(false, kIke, esp));
    FakeKms kms;
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    run_answering(p, kms, 2s);
    const auto before = p.a.engine.list_child_sas().at(0);
    ASSERT_TRUE(p.a.engine.rekey_child("to-b").ok());
    p.net.run_for(300ms);
    ASSERT_EQ(p.b.qkd_requests.size(), 0u);
    ASSERT_EQ(p.a.qkd_requests.size(), 1u);
    QkdKeyAnswer err;
    err.error = "timeout";
    p.a.engine.on_qkd_key(p.a.qkd_requests[0].ike_sa_id, p.a.qkd_requests[0].slot, std::move(err));
    p.a.qkd_requests.clear();
    p.net.run_for(1s);
    auto ca = p.a.engine.list_child_sas();
    ASSERT_EQ(ca.size(), 1u);
    EXPECT_EQ(ca[0].spi_in, before.spi_in);
    EXPECT_EQ(p.a.engine.list_ike_sas().at(0).state, IkeSaState::Established);
}

// The QKD method is refused as the first key exchange, and the proposal token parses.
TEST(QkdIke, ProposalTokensAndTheFirstSlot) {
    auto ok = parse_ike_proposals("aes256gcm16-prfsha512-ecp521-ke1_qkd");
    ASSERT_TRUE(ok);
    EXPECT_EQ((*ok)[0].addke[0].front(), crypto::KeGroup::Qkd);
    FakeClock c;
    Network net(c);
    Peer a(0, net, c, 1);
    auto g = gateway(true, "aes256gcm16-prfsha512-qkd");
    auto r = a.engine.add_gateway(std::move(g));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("ke1_qkd"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace qkd::ike::test
