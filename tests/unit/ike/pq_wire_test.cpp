// Wire formats of the post-quantum extensions: RFC 9370 ADDKE transform types 6..12 (with NONE),
// IKE_INTERMEDIATE (RFC 9242) and IKE_FOLLOWUP_KE (RFC 9370 2.2.3) payload rules, the new notify
// codepoints, and KE payloads of ML-KEM sizes (draft-ietf-ipsecme-ikev2-mlkem).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "wire/message.hpp"

using namespace qkd::ike;
using namespace qkd::ike::wire;
using Bytes = std::vector<std::uint8_t>;

namespace {

Header hdr(ExchangeType ex, bool response = false) {
    Header h;
    h.spi_i = 0x1122334455667788ULL;
    h.spi_r = 0x99;
    h.exchange = ex;
    h.message_id = 1;
    h.flags = response ? kFlagResponse : kFlagInitiator;
    return h;
}

Payload ke(std::uint16_t method, std::size_t size) { return {PayloadType::Ke, false, KePayload{method, Bytes(size, 0x5a)}}; }

void expect_rule_error(const Header& h, bool encrypted, const std::vector<Payload>& p, const std::string& want) {
    auto r = check_rules(h, encrypted, p);
    ASSERT_FALSE(r.ok()) << want;
    EXPECT_EQ(r.error().code, WireErrc::RuleViolation);
    EXPECT_NE(r.error().message.find(want), std::string::npos) << r.error().message;
}

}  // namespace

TEST(PqCodepoints, ValuesAndNames) {
    EXPECT_EQ(static_cast<int>(ExchangeType::IkeIntermediate), 43);
    EXPECT_EQ(static_cast<int>(ExchangeType::IkeFollowupKe), 44);
    EXPECT_EQ(to_string(ExchangeType::IkeFollowupKe), "IKE_FOLLOWUP_KE");
    EXPECT_EQ(static_cast<int>(NotifyType::IntermediateExchangeSupported), 16438);
    EXPECT_EQ(static_cast<int>(NotifyType::AdditionalKeyExchange), 16441);
    EXPECT_EQ(static_cast<int>(NotifyType::StateNotFound), 47);
    EXPECT_EQ(static_cast<int>(NotifyType::UsePpk), 16435);
    EXPECT_EQ(static_cast<int>(NotifyType::PpkIdentity), 16436);
    EXPECT_EQ(static_cast<int>(NotifyType::NoPpkAuth), 16437);
    EXPECT_EQ(to_string(NotifyType::StateNotFound), "STATE_NOT_FOUND");
    EXPECT_EQ(to_string(NotifyType::AdditionalKeyExchange), "ADDITIONAL_KEY_EXCHANGE");
    EXPECT_EQ(to_string(NotifyType::UsePpk), "USE_PPK");
    EXPECT_EQ(to_string(NotifyType::NoPpkAuth), "NO_PPK_AUTH");
    EXPECT_TRUE((NotifyPayload{ProtocolId::None, NotifyType::StateNotFound, {}, {}}.is_error()));
    for (std::size_t n = 1; n <= kMaxAdditionalKeTypes; ++n) {
        EXPECT_EQ(static_cast<std::size_t>(addke_type(n)), 5 + n);
        EXPECT_TRUE(is_addke(addke_type(n)));
        EXPECT_EQ(addke_slot(addke_type(n)), n);
        EXPECT_EQ(to_string(addke_type(n)), "ADDKE" + std::to_string(n));
    }
    EXPECT_FALSE(is_addke(TransformType::Ke));
    EXPECT_FALSE(is_addke(static_cast<TransformType>(13)));
    EXPECT_EQ(to_string(TransformType::Ke), "KE");
}

// strongSwan 6.1's IKE_SA_INIT proposal for `ecp521-ke1_mlkem768-ke2_mlkem1024-ke2_none`, and all
// seven ADDKE types at once.
TEST(PqSaPayload, AddKeTransformsRoundTripWithNone) {
    SaPayload sa;
    Proposal p;
    p.transforms = {{TransformType::Encr, 20, 256},         {TransformType::Prf, 7, std::nullopt},
                    {TransformType::Ke, 21, std::nullopt},   {TransformType::AddKe1, 36, std::nullopt},
                    {TransformType::AddKe2, 37, std::nullopt}, {TransformType::AddKe2, 0, std::nullopt}};
    sa.proposals.push_back(p);
    p.number = 2;
    p.transforms = {{TransformType::Encr, 20, 128}, {TransformType::Prf, 5, std::nullopt}, {TransformType::Ke, 31, std::nullopt}};
    for (std::size_t n = 1; n <= kMaxAdditionalKeTypes; ++n) {
        p.transforms.push_back({addke_type(n), static_cast<std::uint16_t>(34 + n % 4), std::nullopt});
        p.transforms.push_back({addke_type(n), 0, std::nullopt});
    }
    sa.proposals.push_back(p);
    qkd::ByteWriter w;
    sa.encode(w);
    const Bytes b = w.take();
    // Proposal 1, transform 4: Last=3, 0, length 8, type 6 (ADDKE1), 0, ID 36 (ML-KEM-768).
    EXPECT_EQ(Bytes(b.begin() + 8 + 12 + 8 + 8, b.begin() + 8 + 12 + 8 + 8 + 8), (Bytes{3, 0, 0, 8, 6, 0, 0, 36}));
    // Its last transform: Last=0, type 7 (ADDKE2), ID 0 (NONE).
    EXPECT_EQ(Bytes(b.begin() + 8 + 12 + 8 + 8 + 16, b.begin() + 8 + 12 + 8 + 8 + 24), (Bytes{0, 0, 0, 8, 7, 0, 0, 0}));
    qkd::ByteReader r(b);
    auto d = SaPayload::decode(r);
    ASSERT_TRUE(d.ok()) << d.error().message;
    ASSERT_EQ(d->proposals.size(), 2u);
    EXPECT_EQ(d->proposals[0].transforms, sa.proposals[0].transforms);
    EXPECT_EQ(d->proposals[1].transforms, sa.proposals[1].transforms);
    EXPECT_EQ(d->proposals[1].transforms.back(), (Transform{TransformType::AddKe7, 0, std::nullopt}));
}

TEST(PqKePayload, MlKemSizesAndEmptyData) {
    for (std::size_t size : {std::size_t(0), std::size_t(1088), std::size_t(1184), kMaxKeData}) {
        qkd::ByteWriter w;
        KePayload{36, Bytes(size, 7)}.encode(w);
        const Bytes b = w.take();
        qkd::ByteReader r(b);
        auto d = KePayload::decode(r);
        ASSERT_TRUE(d.ok()) << size << ": " << d.error().message;
        EXPECT_EQ(d->data.size(), size);
        EXPECT_EQ(d->group, 36);
    }
    EXPECT_EQ(kMaxKeData, 1568u);  // ML-KEM-1024 encapsulation key, FIPS 203 Table 3
    qkd::ByteWriter w;
    KePayload{37, Bytes(kMaxKeData + 1, 7)}.encode(w);
    const Bytes big = w.take();
    qkd::ByteReader r(big);
    auto d = KePayload::decode(r);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, WireErrc::BadLength);
    EXPECT_NE(d.error().message.find("1569 octets, expected at most 1568"), std::string::npos) << d.error().message;
}

TEST(PqRules, IkeIntermediate) {
    const auto req = hdr(ExchangeType::IkeIntermediate), resp = hdr(ExchangeType::IkeIntermediate, true);
    // HDR, SK {KEi(1)} -->  <-- HDR, SK {KEr(1)}   (RFC 9370 2.2.2)
    EXPECT_TRUE(check_rules(req, true, {ke(36, 1184)}).ok());
    EXPECT_TRUE(check_rules(resp, true, {ke(36, 1088)}).ok());
    // Without a key exchange (RFC 9242 alone) and with notifies.
    EXPECT_TRUE(check_rules(req, true, {}).ok());
    EXPECT_TRUE(check_rules(resp, true, {make_notify(NotifyType::FragmentationSupported)}).ok());
    expect_rule_error(req, false, {ke(36, 1184)}, "IKE_INTERMEDIATE payloads must be inside an Encrypted payload");
    expect_rule_error(req, true, {ke(36, 1184), ke(37, 1568)}, "IKE_INTERMEDIATE with 2 KE payloads, at most 1");
    SaPayload sa;
    expect_rule_error(resp, true, {{PayloadType::Sa, false, sa}}, "SA payload is not allowed in IKE_INTERMEDIATE response");
    expect_rule_error(req, true, {{PayloadType::Nonce, false, NoncePayload{Bytes(32)}}}, "Nonce payload is not allowed");
}

TEST(PqRules, IkeFollowupKe) {
    const auto req = hdr(ExchangeType::IkeFollowupKe), resp = hdr(ExchangeType::IkeFollowupKe, true);
    const Payload link = make_notify(NotifyType::AdditionalKeyExchange, Bytes{1, 2, 3, 4});
    // HDR, SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)} -->  <-- HDR, SK {KEr(n)}   (RFC 9370 2.2.3)
    EXPECT_TRUE(check_rules(req, true, {ke(36, 1184), link}).ok());
    EXPECT_TRUE(check_rules(resp, true, {ke(36, 1088)}).ok());
    EXPECT_TRUE(check_rules(resp, true, {ke(36, 1088), link}).ok());  // link for a further round
    expect_rule_error(req, true, {ke(36, 1184)}, "IKE_FOLLOWUP_KE request without the required N(ADDITIONAL_KEY_EXCHANGE)");
    expect_rule_error(req, true, {ke(36, 1184), make_notify(NotifyType::InitialContact)},
                      "without the required N(ADDITIONAL_KEY_EXCHANGE)");
    expect_rule_error(req, true, {link}, "IKE_FOLLOWUP_KE request without the required KE payload");
    expect_rule_error(resp, true, {}, "IKE_FOLLOWUP_KE response without the required KE payload");
    expect_rule_error(req, false, {ke(36, 1184), link}, "must be inside an Encrypted payload");
    // RFC 9370 2.2.4: a responder that lost the state answers STATE_NOT_FOUND alone.
    EXPECT_TRUE(check_rules(resp, true, {make_notify(NotifyType::StateNotFound)}).ok());
    // CREATE_CHILD_SA response announcing the follow-up rounds.
    SaPayload sa;
    sa.proposals.push_back(Proposal{});
    EXPECT_TRUE(check_rules(hdr(ExchangeType::CreateChildSa, true), true,
                            {{PayloadType::Sa, false, sa}, {PayloadType::Nonce, false, NoncePayload{Bytes(32)}}, ke(21, 132), link})
                    .ok());
}

// A whole IKE_INTERMEDIATE carrying an ML-KEM-1024 key, fragmented at 1280 octets (RFC 7383) as
// strongSwan does for ML-KEM-768, each fragment decodable.
TEST(PqMessage, IntermediateWithMlKem1024Fragments) {
    Bytes a(36, 0x11), b(36, 0x22);
    auto tx = *SkCrypter::create(a, b);
    auto pkts = encode_encrypted(hdr(ExchangeType::IkeIntermediate), {ke(37, 1568)}, tx, 1280);
    ASSERT_EQ(pkts.size(), 2u);
    for (const auto& pkt : pkts) {
        EXPECT_LE(pkt.size(), 1280u);
        auto m = decode_outer(pkt);
        ASSERT_TRUE(m.ok()) << m.error().message;
        EXPECT_TRUE(m->fragment);
        EXPECT_EQ(m->header.exchange, ExchangeType::IkeIntermediate);
    }
    auto whole = encode_encrypted(hdr(ExchangeType::IkeIntermediate), {ke(37, 1568)}, tx);
    ASSERT_EQ(whole.size(), 1u);
    auto m = decode_outer(whole[0]);
    ASSERT_TRUE(m.ok());
    auto rx = *SkCrypter::create(b, a);
    auto plain = rx.open(*m);
    ASSERT_TRUE(plain.ok()) << plain.error().message;
    auto inner = decode_chain(*plain, m->inner_first);
    ASSERT_TRUE(inner.ok()) << inner.error().message;
    EXPECT_TRUE(check_rules(m->header, true, *inner).ok());
    EXPECT_EQ(std::get<KePayload>(inner->at(0).body).data.size(), 1568u);
}

// The post-quantum seeds of the fuzz corpus (tests/fuzz/make_ike_pq_seeds.py) decode and pass the
// payload rules, so fuzzing starts from the new transform types, exchanges and KE sizes.
TEST(PqFuzzSeeds, DecodeAndPassTheRules) {
    const std::string dir = std::string(QKD_SOURCE_DIR) + "/tests/fuzz/corpus/ike_message/";
    const char* names[] = {"pq_init_hybrid",       "pq_init_mlkem768",     "pq_init_mlkem768_badek", "pq_init_mlkem1024",
                           "pq_init_answer_2",     "pq_intermediate_req",  "pq_intermediate_resp",   "pq_intermediate_empty",
                           "pq_followup_req",      "pq_followup_state_not_found", "pq_create_child_resp"};
    std::size_t addke = 0, big_ke = 0;
    for (const char* name : names) {
        std::ifstream f(dir + name, std::ios::binary);
        ASSERT_TRUE(f.good()) << "missing seed " << dir << name;
        const Bytes b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        auto m = decode_outer(b);
        ASSERT_TRUE(m.ok()) << name << ": " << m.error().message;
        std::vector<Payload> payloads = m->plain;
        if (m->encrypted) {
            auto inner = decode_chain(m->ciphertext, m->inner_first);
            ASSERT_TRUE(inner.ok()) << name << ": " << inner.error().message;
            payloads = *inner;
        }
        auto r = check_rules(m->header, m->encrypted, payloads);
        EXPECT_TRUE(r.ok()) << name << ": " << r.error().message;
        for (const auto& p : payloads) {
            if (auto* sa = std::get_if<SaPayload>(&p.body))
                for (const auto& pr : sa->proposals)
                    for (const auto& t : pr.transforms) addke += is_addke(t.type);
            if (auto* ke = std::get_if<KePayload>(&p.body)) big_ke += ke->data.size() >= 1088;
        }
    }
    EXPECT_GE(addke, 10u);
    EXPECT_GE(big_ke, 6u);
}
