// Whole messages: header, payload chain, Encrypted payload and fragments, and the per-exchange
// payload rules table (one negative test per rule).
#include <gtest/gtest.h>

#include "wire/message.hpp"

using namespace qkd::ike;
using namespace qkd::ike::wire;
using Bytes = std::vector<std::uint8_t>;

namespace {

Header hdr(ExchangeType ex, bool response = false) {
    Header h;
    h.spi_i = 0x1122334455667788ULL;
    h.spi_r = response ? 0x99 : 0;
    h.exchange = ex;
    h.flags = response ? kFlagResponse : kFlagInitiator;
    return h;
}

std::vector<Payload> init_payloads() {
    SaPayload sa;
    Proposal p;
    p.transforms = {{TransformType::Encr, 20, 256}, {TransformType::Prf, 7, std::nullopt}, {TransformType::Ke, 21, std::nullopt}};
    sa.proposals.push_back(p);
    return {{PayloadType::Sa, false, sa}, {PayloadType::Ke, false, KePayload{21, Bytes(132, 1)}},
            {PayloadType::Nonce, false, NoncePayload{Bytes(32, 2)}}, make_notify(NotifyType::FragmentationSupported)};
}

SkCrypter crypter(bool flip = false) {
    Bytes a(36, 0x11), b(36, 0x22);
    return flip ? *SkCrypter::create(b, a) : *SkCrypter::create(a, b);
}

void expect_rule_error(const Header& h, bool encrypted, const std::vector<Payload>& p, const char* what) {
    auto r = check_rules(h, encrypted, p);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.error().code, WireErrc::RuleViolation) << what;
    EXPECT_FALSE(r.error().message.empty());
}

}  // namespace

TEST(Header, DecodeAndNegative) {
    auto bytes = encode_plain(hdr(ExchangeType::IkeSaInit), init_payloads());
    auto h = Header::decode(bytes);
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->length, bytes.size());
    EXPECT_EQ(h->next_payload, PayloadType::Sa);
    EXPECT_EQ(Header::decode(std::span(bytes).first(27)).error().code, WireErrc::Truncated);
    auto bad = bytes;
    bad[17] = 0x30;  // version 3.0
    EXPECT_EQ(Header::decode(bad).error().code, WireErrc::BadVersion);
    bad = bytes;
    bad.push_back(0);
    EXPECT_EQ(Header::decode(bad).error().code, WireErrc::BadLength);
}

TEST(PayloadChain, RoundTripAndNegative) {
    auto bytes = encode_plain(hdr(ExchangeType::IkeSaInit), init_payloads());
    auto m = decode_outer(bytes);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(m->plain.size(), 4u);
    EXPECT_FALSE(m->encrypted);
    EXPECT_TRUE(check_rules(m->header, false, m->plain).ok());

    auto body = Bytes(bytes.begin() + kHeaderSize, bytes.end());
    EXPECT_EQ(decode_chain(Bytes{0, 0}, PayloadType::Nonce).error().code, WireErrc::Truncated);
    EXPECT_EQ(decode_chain(Bytes{0, 0, 0, 3}, PayloadType::Nonce).error().code, WireErrc::BadLength);
    EXPECT_EQ(decode_chain(Bytes{0, 0, 0, 40}, PayloadType::Nonce).error().code, WireErrc::Truncated);
    // An unknown payload type is skipped, unless marked critical (RFC 7296 2.5).
    EXPECT_TRUE(decode_chain(Bytes{0, 0, 0, 5, 9}, static_cast<PayloadType>(200)).ok());
    EXPECT_EQ(decode_chain(Bytes{0, 0x80, 0, 5, 9}, static_cast<PayloadType>(200)).error().code, WireErrc::UnsupportedCritical);
    // Octets after the last payload.
    Bytes nonce{0, 0, 0, 20};
    nonce.resize(20, 1);
    nonce.push_back(0);
    EXPECT_EQ(decode_chain(nonce, PayloadType::Nonce).error().code, WireErrc::BadLength);
    // SK must be the last payload, and never nested.
    Bytes sk_then_more{static_cast<std::uint8_t>(PayloadType::Nonce), 0, 0, 4, 0, 0, 0, 20};
    sk_then_more.resize(28, 1);
    Header h = hdr(ExchangeType::IkeAuth);
    h.next_payload = PayloadType::Sk;
    qkd::ByteWriter w;
    h.length = static_cast<std::uint32_t>(kHeaderSize + sk_then_more.size());
    h.encode(w);
    w.bytes(sk_then_more);
    EXPECT_EQ(decode_outer(w.data()).error().code, WireErrc::RuleViolation);
    EXPECT_EQ(decode_chain(Bytes{0, 0, 0, 4}, PayloadType::Sk).error().code, WireErrc::RuleViolation);
    // More than kMaxPayloads payloads.
    Bytes many;
    for (int i = 0; i < 70; ++i) {
        many.insert(many.end(), {static_cast<std::uint8_t>(i == 69 ? 0 : 41), 0, 0, 8, 0, 0, 0x40, 0});
    }
    EXPECT_EQ(decode_chain(many, PayloadType::Notify).error().code, WireErrc::TooMany);
}

TEST(EncryptedPayload, SealOpenTamperAndPadding) {
    auto tx = crypter(), rx = crypter(true);
    std::vector<Payload> inner{{PayloadType::IdI, false, IdPayload{*Identity::parse("a.example")}},
                               {PayloadType::Auth, false, AuthPayload{AuthMethod::SharedKeyMic, Bytes(64, 3)}}};
    auto pkts = encode_encrypted(hdr(ExchangeType::IkeAuth), inner, tx);
    ASSERT_EQ(pkts.size(), 1u);
    auto m = decode_outer(pkts[0]);
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE(m->encrypted);
    EXPECT_EQ(m->inner_first, PayloadType::IdI);
    auto plain = rx.open(*m);
    ASSERT_TRUE(plain.ok());
    auto payloads = decode_chain(*plain, m->inner_first);
    ASSERT_TRUE(payloads.ok());
    EXPECT_EQ(payloads->size(), 2u);
    EXPECT_TRUE(check_rules(m->header, true, *payloads).ok());  // IDi + AUTH: a childless IKE_AUTH
    // A flipped bit anywhere (header = AAD, or ciphertext) fails the ICV.
    for (std::size_t pos : {std::size_t(20), pkts[0].size() - 30}) {
        auto bad = pkts[0];
        bad[pos] ^= 1;
        auto mb = decode_outer(bad);
        if (!mb.ok()) continue;
        EXPECT_EQ(rx.open(*mb).error().code, WireErrc::DecryptFailed);
    }
    // Wrong key.
    auto other = crypter();
    EXPECT_EQ(other.open(*m).error().code, WireErrc::DecryptFailed);
    // Too short for IV + pad length + ICV.
    Header h = hdr(ExchangeType::IkeAuth);
    h.next_payload = PayloadType::Sk;
    qkd::ByteWriter w;
    h.length = kHeaderSize + 4 + 20;
    h.encode(w);
    w.bytes(Bytes{0, 0, 0, 24});
    w.zeros(20);
    EXPECT_EQ(decode_outer(w.data()).error().code, WireErrc::Truncated);
}

TEST(EncryptedFragments, SplitAndValidate) {
    auto tx = crypter(), rx = crypter(true);
    std::vector<Payload> inner{{PayloadType::IdI, false, IdPayload{*Identity::parse("a.example")}},
                               {PayloadType::Auth, false, AuthPayload{AuthMethod::SharedKeyMic, Bytes(300, 3)}}};
    auto pkts = encode_encrypted(hdr(ExchangeType::IkeAuth), inner, tx, 150);
    ASSERT_GE(pkts.size(), 3u);
    Bytes whole;
    PayloadType first = PayloadType::None;
    for (std::size_t i = 0; i < pkts.size(); ++i) {
        EXPECT_LE(pkts[i].size(), 150u);
        auto m = decode_outer(pkts[i]);
        ASSERT_TRUE(m.ok()) << m.error().message;
        EXPECT_TRUE(m->fragment);
        EXPECT_EQ(m->frag.number, i + 1);
        EXPECT_EQ(m->frag.total, pkts.size());
        if (i == 0) first = m->inner_first;
        auto p = rx.open(*m);
        ASSERT_TRUE(p.ok());
        whole.insert(whole.end(), p->begin(), p->end());
    }
    auto payloads = decode_chain(whole, first);
    ASSERT_TRUE(payloads.ok());
    EXPECT_EQ(std::get<AuthPayload>((*payloads)[1].body).data.size(), 300u);
    // Fragment numbers are authenticated (RFC 7383 2.5): changing one breaks the ICV.
    auto bad = pkts[1];
    bad[kHeaderSize + 5] = 3;  // fragment number 2 -> 3
    auto mb = decode_outer(bad);
    ASSERT_TRUE(mb.ok());
    EXPECT_EQ(rx.open(*mb).error().code, WireErrc::DecryptFailed);
    // Fragment number 0, number > total, and total above the limit are refused.
    for (auto [num, total] : {std::pair{0, 3}, std::pair{4, 3}, std::pair{1, 65}}) {
        auto b = pkts[0];
        b[kHeaderSize + 4] = static_cast<std::uint8_t>(num >> 8);
        b[kHeaderSize + 5] = static_cast<std::uint8_t>(num);
        b[kHeaderSize + 6] = static_cast<std::uint8_t>(total >> 8);
        b[kHeaderSize + 7] = static_cast<std::uint8_t>(total);
        EXPECT_EQ(decode_outer(b).error().code, WireErrc::BadValue);
    }
    // A non-first fragment must have Next Payload 0.
    auto np = pkts[1];
    np[kHeaderSize] = 35;
    EXPECT_EQ(decode_outer(np).error().code, WireErrc::BadValue);
}

TEST(Rules, OneNegativeTestPerRule) {
    auto init = init_payloads();
    EXPECT_TRUE(check_rules(hdr(ExchangeType::IkeSaInit), false, init).ok());
    // Unknown exchange type.
    expect_rule_error(hdr(static_cast<ExchangeType>(99)), false, init, "exchange 99");
    // IKE_SA_INIT must not be encrypted; IKE_AUTH must be.
    expect_rule_error(hdr(ExchangeType::IkeSaInit), true, init, "encrypted IKE_SA_INIT");
    expect_rule_error(hdr(ExchangeType::IkeAuth), false, {}, "plaintext IKE_AUTH");
    // Missing SA / KE / Nonce.
    for (std::size_t drop = 0; drop < 3; ++drop) {
        auto p = init;
        p.erase(p.begin() + static_cast<long>(drop));
        expect_rule_error(hdr(ExchangeType::IkeSaInit), false, p, "IKE_SA_INIT missing a required payload");
    }
    // Two nonces.
    auto two = init;
    two.push_back({PayloadType::Nonce, false, NoncePayload{Bytes(32, 9)}});
    expect_rule_error(hdr(ExchangeType::IkeSaInit), false, two, "two Nonce payloads");
    // A payload that does not belong in the exchange.
    auto auth_in_init = init;
    auth_in_init.push_back({PayloadType::Auth, false, AuthPayload{AuthMethod::SharedKeyMic, Bytes(8)}});
    expect_rule_error(hdr(ExchangeType::IkeSaInit), false, auth_in_init, "AUTH in IKE_SA_INIT");
    // IKE_AUTH request without AUTH; with two IDi.
    std::vector<Payload> auth_req{{PayloadType::IdI, false, IdPayload{*Identity::parse("a.example")}}};
    expect_rule_error(hdr(ExchangeType::IkeAuth), true, auth_req, "IKE_AUTH without AUTH");
    auth_req.push_back({PayloadType::Auth, false, AuthPayload{AuthMethod::SharedKeyMic, Bytes(8)}});
    EXPECT_TRUE(check_rules(hdr(ExchangeType::IkeAuth), true, auth_req).ok());  // childless is fine
    auth_req.push_back(auth_req[0]);
    expect_rule_error(hdr(ExchangeType::IkeAuth), true, auth_req, "two IDi");
    // CREATE_CHILD_SA without SA.
    expect_rule_error(hdr(ExchangeType::CreateChildSa), true, {{PayloadType::Nonce, false, NoncePayload{Bytes(32)}}},
                      "CREATE_CHILD_SA without SA");
    // INFORMATIONAL with an SA payload.
    expect_rule_error(hdr(ExchangeType::Informational), true, {init[0]}, "SA in INFORMATIONAL");
    EXPECT_TRUE(check_rules(hdr(ExchangeType::Informational), true, {}).ok());
    // A response that is only an error notify is exempt from the minimum counts...
    EXPECT_TRUE(check_rules(hdr(ExchangeType::IkeSaInit, true), false, {make_notify(NotifyType::NoProposalChosen)}).ok());
    EXPECT_TRUE(check_rules(hdr(ExchangeType::IkeSaInit, true), false, {make_notify(NotifyType::Cookie, Bytes(8))}).ok());
    // ...but a request is not.
    expect_rule_error(hdr(ExchangeType::IkeSaInit), false, {make_notify(NotifyType::Cookie, Bytes(8))}, "cookie-only request");
}
