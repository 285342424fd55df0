// Proposal selection (sa/select.cpp): what a responder picks from an SA payload (RFC 7296 2.7,
// 3.3.6) and what an initiator accepts in the answer (3.3.1: the answer keeps the number of the
// proposal it accepted). Each answer goes through the wire encoder and decoder, as on the network.
#include <gtest/gtest.h>

#include "src/impl.hpp"

using namespace qkd::ike;
using qkd::crypto::KeGroup;
using qkd::crypto::PrfAlg;

namespace {

std::vector<IkeProposal> ike(std::string_view s) { return parse_ike_proposals(s).value(); }
std::vector<EspProposal> esp(std::string_view s) { return parse_esp_proposals(s).value(); }

// The SA payload after a trip through the encoder and decoder.
wire::SaPayload on_the_wire(const wire::SaPayload& sa) {
    qkd::ByteWriter w;
    sa.encode(w);
    auto bytes = w.take();
    qkd::ByteReader r(bytes);
    auto d = wire::SaPayload::decode(r);
    EXPECT_TRUE(d.ok()) << d.error().message;
    return d.ok() ? *d : wire::SaPayload{};
}

constexpr std::uint32_t kSpiI = 0x11223344, kSpiR = 0x55667788;

}  // namespace

// Regression (issue 15): strongSwan allowing only our second IKE proposal answers with proposal
// number 2; the decoder took only number 1 and the exchange hung in retransmissions.
TEST(Select, IkeAnswerPicksOurSecondProposal) {
    const auto ours = ike("aes256gcm16-prfsha512-ecp521,aes128gcm16-prfsha256-ecp521");
    const auto peer = ike("aes128gcm16-prfsha256-ecp521");
    // HDR, SAi1{1: AES256/SHA512/21, 2: AES128/SHA256/21}, KEi(21), Ni -->
    const auto offer = on_the_wire(ike_sa_payload(ours, {}));
    ASSERT_EQ(offer.proposals.size(), 2u);
    EXPECT_EQ(offer.proposals[1].number, 2);
    auto sel = select_ike(peer, offer, 21);
    ASSERT_TRUE(sel);
    EXPECT_EQ(sel->number, 2);
    // <-- HDR, SAr1{2: AES128/SHA256/21}, KEr, Nr
    const auto answer = on_the_wire(selected_ike_payload(*sel, {}));
    ASSERT_EQ(answer.proposals.size(), 1u);
    EXPECT_EQ(answer.proposals[0].number, 2);
    auto got = accept_ike(ours, answer);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->number, 2);
    EXPECT_EQ(got->encr, (EncrAlg{EncrId::AesGcm16, 128}));
    EXPECT_EQ(got->prf, PrfAlg::HmacSha256);
    EXPECT_EQ(got->group, KeGroup::Ecp521);
}

// The number says which of our proposals the transforms must come from.
TEST(Select, IkeAnswerMustMatchTheProposalItNames) {
    const auto ours = ike("aes256gcm16-prfsha512-ecp521,aes128gcm16-prfsha256-ecp521");
    auto answer = [](std::uint8_t n, std::uint16_t bits, PrfAlg prf) {
        return on_the_wire(selected_ike_payload(IkeSelection{n, {EncrId::AesGcm16, bits}, prf, KeGroup::Ecp521}, {}));
    };
    EXPECT_TRUE(accept_ike(ours, answer(1, 256, PrfAlg::HmacSha512)));
    EXPECT_FALSE(accept_ike(ours, answer(2, 256, PrfAlg::HmacSha512))) << "#2 with #1's transforms";
    EXPECT_FALSE(accept_ike(ours, answer(1, 128, PrfAlg::HmacSha256))) << "#1 with #2's transforms";
    EXPECT_FALSE(accept_ike(ours, answer(2, 128, PrfAlg::HmacSha512))) << "a mix of #1 and #2";
    EXPECT_FALSE(accept_ike(ours, answer(3, 128, PrfAlg::HmacSha256))) << "a number we never sent";
    // Two transforms of one type, or a type we did not offer, are not an answer (3.3.6).
    auto two = answer(1, 256, PrfAlg::HmacSha512);
    two.proposals[0].transforms.push_back({wire::TransformType::Ke, 21, std::nullopt});
    EXPECT_FALSE(accept_ike(ours, two));
    auto esn = answer(1, 256, PrfAlg::HmacSha512);
    esn.proposals[0].transforms.push_back({wire::TransformType::Esn, 0, std::nullopt});
    EXPECT_FALSE(accept_ike(ours, esn));
}

// Regression (issue 15): after INVALID_KE_PAYLOAD the retried request carries the same SA payload
// and the answer may pick proposal 2, whose group the retry used.
TEST(Select, IkeAnswerPicksOurSecondAfterInvalidKe) {
    const auto ours = ike("aes256gcm16-prfsha512-ecp521,aes128gcm16-prfsha256-ecp256");
    const auto peer = ike("aes128gcm16-prfsha256-ecp256");
    const auto offer = on_the_wire(ike_sa_payload(ours, {}));
    // HDR, SAi1, KEi(21) -->   <-- N(INVALID_KE_PAYLOAD, 19): the selected group differs from KEi's
    auto first = select_ike(peer, offer, 21);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->group, KeGroup::Ecp256);
    // HDR, SAi1 (unchanged), KEi(19) -->   <-- HDR, SAr1{2: AES128/SHA256/19}, KEr(19)
    auto sel = select_ike(peer, offer, 19);
    ASSERT_TRUE(sel);
    EXPECT_EQ(sel->number, 2);
    auto got = accept_ike(ours, on_the_wire(selected_ike_payload(*sel, {})));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->number, 2);
    EXPECT_EQ(got->group, KeGroup::Ecp256);
    EXPECT_EQ(got->encr.key_bits, 128);
}

// Regression (issue 15): in IKE_AUTH strongSwan picked our second ESP proposal and installed a
// child SA that we never did.
TEST(Select, EspAnswerInIkeAuthPicksOurSecond) {
    const auto ours = esp("aes256gcm16-ecp521,aes128gcm16-ecp521-esn");
    const auto peer = esp("aes128gcm16-esn");
    // IKE_AUTH: SAi2 without KE transforms (the child SA of IKE_AUTH has no KE, RFC 7296 1.2)
    const auto offer = on_the_wire(esp_sa_payload(ours, kSpiI, false));
    for (const auto& p : offer.proposals)
        for (const auto& t : p.transforms) EXPECT_NE(t.type, wire::TransformType::Ke);
    auto sel = select_esp(peer, offer, false, 0);
    ASSERT_TRUE(sel);
    EXPECT_EQ(sel->number, 2);
    EXPECT_EQ(sel->peer_spi, kSpiI);
    auto got = accept_esp(ours, on_the_wire(selected_esp_payload(*sel, kSpiR, false)), false);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->number, 2);
    EXPECT_EQ(got->peer_spi, kSpiR);
    EXPECT_EQ(got->encr.key_bits, 128);
    EXPECT_TRUE(got->esn);
    EXPECT_EQ(got->group, KeGroup::None);
    // #2 with #1's cipher, #1 with #2's ESN, and a KE transform in IKE_AUTH are refused.
    auto bad = *sel;
    bad.encr.key_bits = 256;
    EXPECT_FALSE(accept_esp(ours, on_the_wire(selected_esp_payload(bad, kSpiR, false)), false));
    bad = *sel;
    bad.number = 1;
    EXPECT_FALSE(accept_esp(ours, on_the_wire(selected_esp_payload(bad, kSpiR, false)), false));
    bad = *sel;
    bad.group = KeGroup::Ecp521;
    EXPECT_FALSE(accept_esp(ours, on_the_wire(selected_esp_payload(bad, kSpiR, true)), false));
}

// CREATE_CHILD_SA with PFS: the group must be one offered in the proposal the answer names.
TEST(Select, EspPfsAnswerPicksOurSecond) {
    const auto ours = esp("aes256gcm16-ecp521,aes128gcm16-ecp256");
    const auto peer = esp("aes128gcm16-ecp256");
    auto sel = select_esp(peer, on_the_wire(esp_sa_payload(ours, kSpiI, true)), true, 19);
    ASSERT_TRUE(sel);
    EXPECT_EQ(sel->number, 2);
    EXPECT_EQ(sel->group, KeGroup::Ecp256);
    auto got = accept_esp(ours, on_the_wire(selected_esp_payload(*sel, kSpiR, true)), true);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->number, 2);
    EXPECT_EQ(got->group, KeGroup::Ecp256);
    auto bad = *sel;
    bad.group = KeGroup::Ecp521;  // offered, but in proposal 1
    EXPECT_FALSE(accept_esp(ours, on_the_wire(selected_esp_payload(bad, kSpiR, true)), true));
    bad.group = KeGroup::None;  // PFS required by our proposal 2
    EXPECT_FALSE(accept_esp(ours, on_the_wire(selected_esp_payload(bad, kSpiR, true)), true));
}

// The decoder keeps RFC 7296 3.3.1 numbering for lists and lets a lone proposal keep its number.
TEST(Select, ProposalNumbering) {
    auto offer = ike_sa_payload(ike("aes256gcm16-prfsha512-ecp521,aes128gcm16-prfsha256-ecp256"), {});
    offer.proposals[1].number = 3;
    qkd::ByteWriter w;
    offer.encode(w);
    auto bytes = w.take();
    qkd::ByteReader r(bytes);
    auto d = wire::SaPayload::decode(r);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.error().message.find("proposal number 3, expected 2"), std::string::npos) << d.error().message;
    auto lone = selected_ike_payload(IkeSelection{0, {}, PrfAlg::HmacSha512, KeGroup::Ecp521}, {});
    qkd::ByteWriter w2;
    lone.encode(w2);
    bytes = w2.take();
    qkd::ByteReader r2(bytes);
    EXPECT_FALSE(wire::SaPayload::decode(r2).ok()) << "proposal number 0";
    lone.proposals[0].number = 255;
    EXPECT_EQ(on_the_wire(lone).proposals.at(0).number, 255);
}

// Narrowing never yields more selectors than one TS payload may carry.
TEST(Select, NarrowingStaysWithinTheSelectorLimit) {
    std::vector<TrafficSelector> allowed;
    for (int i = 0; i < 64; ++i) allowed.push_back(*TrafficSelector::parse_cidr("10." + std::to_string(i) + ".0.0/24"));
    auto any = *TrafficSelector::parse_cidr("10.0.0.0/8");
    auto tcp = any;
    tcp.ip_proto = 6;
    EXPECT_EQ(narrow({any}, allowed).size(), 64u);
    // {any, tcp} x 64 ranges are 128 distinct intersections: a subset of 64 is the answer.
    auto out = narrow({any, tcp}, allowed);
    EXPECT_EQ(out.size(), kMaxTrafficSelectors);
    EXPECT_EQ(out.front(), allowed.front());
}
