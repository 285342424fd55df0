// RFC 9370 2.2.1 selection of the additional key exchanges (ADDKE1..7) by a responder, and the
// initiator's check of the answer, with the outcomes strongSwan 6.1 gives (shared/tools/
// ike-peers-pq/README.md, probe-private-ke.sh). Every SA payload goes over the wire codec.
#include <gtest/gtest.h>

#include "src/impl.hpp"

using namespace qkd::ike;
using qkd::crypto::KeGroup;
using wire::TransformType;

namespace {

std::vector<IkeProposal> ike(std::string_view s) { return parse_ike_proposals(s).value(); }
std::vector<EspProposal> esp(std::string_view s) { return parse_esp_proposals(s).value(); }

wire::SaPayload on_the_wire(const wire::SaPayload& sa) {
    qkd::ByteWriter w;
    sa.encode(w);
    auto bytes = w.take();
    qkd::ByteReader r(bytes);
    auto d = wire::SaPayload::decode(r);
    EXPECT_TRUE(d.ok()) << d.error().message;
    return d.ok() ? *d : wire::SaPayload{};
}

// Initiator `init` offers, responder `resp` selects (KEi of the first method), initiator accepts.
std::optional<IkeSelection> negotiate(std::string_view init, std::string_view resp) {
    const auto ours = ike(init);
    const auto offer = on_the_wire(ike_sa_payload(ours, {}));
    auto sel = select_ike(ike(resp), offer, static_cast<std::uint16_t>(ours[0].ke[0]));
    if (!sel) return std::nullopt;
    auto got = accept_ike(ours, on_the_wire(selected_ike_payload(*sel, {})));
    EXPECT_TRUE(got) << "the initiator refused the responder's own selection";
    if (got) {
        EXPECT_EQ(got->addke, sel->addke);
        EXPECT_EQ(got->number, sel->number);
    }
    return got;
}

AdditionalKeChoice choice(std::initializer_list<KeGroup> slots) {
    AdditionalKeChoice c{};
    std::size_t i = 0;
    for (auto g : slots) c[i++] = g;
    return c;
}

std::size_t count(const wire::Proposal& p, TransformType t) {
    std::size_t n = 0;
    for (const auto& x : p.transforms) n += x.type == t;
    return n;
}

}  // namespace

TEST(SelectAddKe, HybridMlKem768) {
    // HDR, SAi1{ENCR, PRF, KE=21, ADDKE1=36}, KEi(21) -->  <-- SAr1{..., KE=21, ADDKE1=36}
    auto offer = on_the_wire(ike_sa_payload(ike("aes256gcm16-prfsha512-ecp521-ke1_mlkem768"), {}));
    ASSERT_EQ(count(offer.proposals[0], TransformType::AddKe1), 1u);
    EXPECT_EQ(offer.proposals[0].transforms.back(), (wire::Transform{TransformType::AddKe1, 36, std::nullopt}));
    auto s = negotiate("aes256gcm16-prfsha512-ecp521-ke1_mlkem768", "aes256gcm16-prfsha512-ecp521-ke1_mlkem768");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->group, KeGroup::Ecp521);
    EXPECT_EQ(s->addke, choice({KeGroup::MlKem768}));
    s = negotiate("aes256gcm16-prfsha512-x25519-ke1_mlkem768-ke2_mlkem1024",
                  "aes256gcm16-prfsha512-curve25519-ke1_mlkem768-ke2_mlkem1024");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->addke, choice({KeGroup::MlKem768, KeGroup::MlKem1024}));
    // ML-KEM alone in the KE slot: no additional exchange.
    s = negotiate("aes256gcm16-prfsha512-mlkem768", "aes256gcm16-prfsha512-mlkem768");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->group, KeGroup::MlKem768);
    EXPECT_EQ(s->addke, AdditionalKeChoice{});
}

// `ke1_none` makes the round optional: a classical peer (no ADDKE configured) still agrees.
TEST(SelectAddKe, OptionalRoundAgainstAClassicalPeer) {
    auto offer = on_the_wire(ike_sa_payload(ike("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none"), {}));
    EXPECT_EQ(count(offer.proposals[0], TransformType::AddKe1), 2u);
    EXPECT_EQ(offer.proposals[0].transforms.back(), (wire::Transform{TransformType::AddKe1, 0, std::nullopt}));
    auto s = negotiate("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha512-ecp521");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->addke, AdditionalKeChoice{});
    // The answer leaves ADDKE1 out (as strongSwan does); an explicit NONE is accepted as well.
    auto ours = ike("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none");
    auto answer = selected_ike_payload(*s, {});
    EXPECT_EQ(count(answer.proposals[0], TransformType::AddKe1), 0u);
    answer.proposals[0].transforms.push_back({TransformType::AddKe1, 0, std::nullopt});
    ASSERT_TRUE(accept_ike(ours, on_the_wire(answer)));
    // Both sides optional: our order decides (strongSwan prefers the configured order).
    s = negotiate("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->addke[0], KeGroup::MlKem768);
    s = negotiate("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha512-ecp521-ke1_none-ke1_mlkem768");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->addke[0], KeGroup::None);
    // A responder with an optional round accepts a classical initiator.
    s = negotiate("aes256gcm16-prfsha512-ecp521", "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->addke, AdditionalKeChoice{});
}

// A required round that the other side does not do: NO_PROPOSAL_CHOSEN, either way.
TEST(SelectAddKe, RequiredRoundRefused) {
    EXPECT_FALSE(negotiate("aes256gcm16-prfsha512-ecp521-ke1_mlkem768", "aes256gcm16-prfsha512-ecp521"));
    EXPECT_FALSE(negotiate("aes256gcm16-prfsha512-ecp521", "aes256gcm16-prfsha512-ecp521-ke1_mlkem768"));
    EXPECT_FALSE(negotiate("aes256gcm16-prfsha512-ecp521-ke1_mlkem768", "aes256gcm16-prfsha512-ecp521-ke1_mlkem1024"));
    EXPECT_FALSE(negotiate("aes256gcm16-prfsha512-ecp521-ke2_mlkem768", "aes256gcm16-prfsha512-ecp521-ke1_mlkem768"));
    // ...but a second, classical proposal is taken, with its number.
    auto s = negotiate("aes256gcm16-prfsha512-ecp521-ke1_mlkem768,aes256gcm16-prfsha512-ecp521", "aes256gcm16-prfsha512-ecp521");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->number, 2);
    EXPECT_EQ(s->addke, AdditionalKeChoice{});
}

// strongSwan 6.1's answers to unknown (private, e.g. QKD 65516) methods, from probe-private-ke.sh.
TEST(SelectAddKe, UnknownMethodsLikeStrongSwan) {
    const auto resp = ike("aes256gcm16-prfsha512-ecp521-ke1_mlkem768");
    auto offer = [](std::vector<std::pair<TransformType, std::uint16_t>> extra) {
        auto sa = ike_sa_payload(ike("aes256gcm16-prfsha512-ecp521"), {});
        for (auto [t, id] : extra) sa.proposals[0].transforms.push_back({t, id, std::nullopt});
        return on_the_wire(sa);
    };
    auto s = select_ike(resp, offer({{TransformType::AddKe1, 36}, {TransformType::AddKe2, 65516}, {TransformType::AddKe2, 0}}), 21);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->addke, choice({KeGroup::MlKem768}));
    EXPECT_EQ(count(selected_ike_payload(*s, {}).proposals[0], TransformType::AddKe2), 0u);
    EXPECT_FALSE(select_ike(resp, offer({{TransformType::AddKe1, 36}, {TransformType::AddKe2, 65516}}), 21));
    s = select_ike(resp, offer({{TransformType::AddKe1, 65516}, {TransformType::AddKe1, 36}}), 21);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->addke[0], KeGroup::MlKem768);
    EXPECT_FALSE(select_ike(resp, offer({{TransformType::AddKe1, 65516}}), 21));
    // An unknown transform type makes the proposal unacceptable (RFC 7296 3.3.6).
    EXPECT_FALSE(select_ike(resp, offer({{TransformType::AddKe1, 36}, {static_cast<TransformType>(13), 1}}), 21));
}

// RFC 9370 2.2.1: one method is used once: a method taken by the KE slot or an earlier ADDKE slot
// is skipped.
TEST(SelectAddKe, NoMethodTwice) {
    auto s = negotiate("aes256gcm16-prfsha512-ecp521-ke1_ecp521-ke1_mlkem768", "aes256gcm16-prfsha512-ecp521-ke1_ecp521-ke1_mlkem768");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->addke[0], KeGroup::MlKem768);
    EXPECT_FALSE(negotiate("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_mlkem768",
                           "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_mlkem768"));
    s = negotiate("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_mlkem768-ke2_none",
                  "aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_mlkem768-ke2_none");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->addke, choice({KeGroup::MlKem768, KeGroup::None}));
}

// The initiator takes only ADDKE choices offered in the proposal the answer names.
TEST(SelectAddKe, AcceptChecksTheNamedProposal) {
    const auto ours = ike("aes256gcm16-prfsha512-ecp521-ke1_mlkem768,aes256gcm16-prfsha512-ecp521-ke1_mlkem1024-ke1_none");
    auto answer = [](std::uint8_t n, AdditionalKeChoice a) {
        return on_the_wire(
            selected_ike_payload(IkeSelection{n, {EncrId::AesGcm16, 256}, qkd::crypto::PrfAlg::HmacSha512, KeGroup::Ecp521, a}, {}));
    };
    EXPECT_TRUE(accept_ike(ours, answer(1, choice({KeGroup::MlKem768}))));
    EXPECT_FALSE(accept_ike(ours, answer(1, choice({KeGroup::MlKem1024})))) << "#2's method under #1";
    EXPECT_FALSE(accept_ike(ours, answer(1, {}))) << "#1 requires ADDKE1";
    EXPECT_FALSE(accept_ike(ours, answer(2, choice({KeGroup::MlKem768})))) << "#1's method under #2";
    EXPECT_TRUE(accept_ike(ours, answer(2, {}))) << "#2 made ADDKE1 optional";
    auto got = accept_ike(ours, answer(2, choice({KeGroup::MlKem1024})));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->addke[0], KeGroup::MlKem1024);
    EXPECT_FALSE(accept_ike(ours, answer(1, choice({KeGroup::MlKem768, KeGroup::MlKem768})))) << "ADDKE2 never offered";
    auto two = answer(1, choice({KeGroup::MlKem768}));
    two.proposals[0].transforms.push_back({TransformType::AddKe1, 37, std::nullopt});
    EXPECT_FALSE(accept_ike(ours, two)) << "two ADDKE1 transforms";
    EXPECT_FALSE(accept_ike(ours, answer(1, choice({KeGroup::Ecp521})))) << "KE method again, and not offered";
}

// ESP: additional exchanges only in CREATE_CHILD_SA with PFS; IKE_AUTH's child never has a KE.
TEST(SelectAddKe, EspPfsRekey) {
    const auto ours = esp("aes256gcm16-ecp521-ke1_mlkem768");
    const auto offer = on_the_wire(esp_sa_payload(ours, 0x01020304, true));
    EXPECT_EQ(count(offer.proposals[0], TransformType::AddKe1), 1u);
    auto sel = select_esp(esp("aes256gcm16-ecp521-ke1_mlkem768"), offer, true, 21);
    ASSERT_TRUE(sel);
    EXPECT_EQ(sel->group, KeGroup::Ecp521);
    EXPECT_EQ(sel->addke, choice({KeGroup::MlKem768}));
    auto got = accept_esp(ours, on_the_wire(selected_esp_payload(*sel, 0x05060708, true)), true);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->addke, choice({KeGroup::MlKem768}));
    // A peer without the round: refused unless optional.
    EXPECT_FALSE(select_esp(esp("aes256gcm16-ecp521"), offer, true, 21));
    EXPECT_TRUE(select_esp(esp("aes256gcm16-ecp521"), on_the_wire(esp_sa_payload(esp("aes256gcm16-ecp521-ke1_mlkem768-ke1_none"), 1, true)),
                           true, 21));
    // IKE_AUTH: no KE or ADDKE transforms are sent, none is selected, an answer with one is refused.
    const auto auth = on_the_wire(esp_sa_payload(ours, 0x01020304, false));
    EXPECT_EQ(count(auth.proposals[0], TransformType::AddKe1), 0u);
    auto in_auth = select_esp(esp("aes256gcm16-ecp521-ke1_mlkem768"), auth, false, 0);
    ASSERT_TRUE(in_auth);
    EXPECT_EQ(in_auth->addke, AdditionalKeChoice{});
    auto with_addke = selected_esp_payload(*in_auth, 9, false);
    with_addke.proposals[0].transforms.push_back({TransformType::AddKe1, 36, std::nullopt});
    EXPECT_FALSE(accept_esp(ours, on_the_wire(with_addke), false));
    EXPECT_TRUE(accept_esp(ours, on_the_wire(selected_esp_payload(*in_auth, 9, false)), false));
}
