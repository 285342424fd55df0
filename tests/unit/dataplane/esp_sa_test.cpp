// EspSa: RFC 4303 / RFC 4106 packets against an independent OpenSSL computation, and a negative
// test for every inbound rule (EspStatus).
#include "qkd/dataplane/esp_sa.hpp"

#include <gtest/gtest.h>

#include "esp_reference.hpp"

using namespace qkd::dp;

namespace {

const std::vector<std::uint8_t> kKey256 = [] {
    std::vector<std::uint8_t> k(32);
    for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(0x40 + i);
    return k;
}();
const std::vector<std::uint8_t> kSalt = {0xca, 0xfe, 0xba, 0xbe};
constexpr std::uint32_t kSpi = 0x12345678;

TrafficSelector any_ts() {
    return {*IpPrefix::parse("0.0.0.0/0"), *IpPrefix::parse("0.0.0.0/0"), 0};
}

std::unique_ptr<EspSa> make_sa(Direction d, bool esn = false,
                               std::vector<std::uint8_t> key = kKey256, std::uint32_t window = 64) {
    SaSpec s;
    s.direction = d;
    s.spi = kSpi;
    s.reqid = 1;
    s.outer_src = *IpAddress::parse("10.0.0.1");
    s.outer_dst = *IpAddress::parse("10.0.0.2");
    s.key = qkd::SecretBytes(key);
    s.salt = qkd::SecretBytes(kSalt);
    s.esn = esn;
    s.replay_window = window;
    s.selectors = {any_ts()};
    auto sa = EspSa::create(std::move(s));
    EXPECT_TRUE(sa.ok());
    return std::move(*sa);
}

std::vector<std::uint8_t> inner_packet(std::size_t n) {
    std::vector<std::uint8_t> p(n);
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i * 7 + 3);
    return p;
}

// Encrypts `inner` through the production code and returns the ESP packet.
std::vector<std::uint8_t> seal(EspSa& sa, const std::vector<std::uint8_t>& inner,
                               std::uint8_t nh = 4) {
    std::vector<std::uint8_t> buf(esp_prefix_len + inner.size() + esp_max_overhead);
    std::copy(inner.begin(), inner.end(), buf.begin() + esp_prefix_len);
    std::size_t len = 0;
    EXPECT_EQ(sa.encrypt_in_place(buf, inner.size(), nh, &len), EspStatus::ok);
    buf.resize(len);
    return buf;
}

EspStatus open(EspSa& sa, std::vector<std::uint8_t> pkt, std::vector<std::uint8_t>* inner = nullptr,
               std::uint8_t* nh_out = nullptr) {
    std::size_t n = 0;
    std::uint8_t nh = 0;
    auto st = sa.decrypt_in_place(pkt, &n, &nh);
    if (st == EspStatus::ok && inner)
        inner->assign(pkt.begin() + esp_prefix_len, pkt.begin() + esp_prefix_len + n);
    if (nh_out) *nh_out = nh;
    return st;
}

// RFC 4303 2.4 trailer spelled out: padding 1, 2, 3, ... to a 4-octet boundary.
std::vector<std::uint8_t> with_trailer(std::vector<std::uint8_t> p, std::uint8_t nh) {
    const std::size_t pad = (4 - (p.size() + 2) % 4) % 4;
    for (std::size_t i = 1; i <= pad; ++i) p.push_back(static_cast<std::uint8_t>(i));
    p.push_back(static_cast<std::uint8_t>(pad));
    p.push_back(nh);
    return p;
}

}  // namespace

TEST(EspSa, OutboundPacketMatchesIndependentComputation) {
    for (std::size_t n : {20u, 21u, 22u, 23u, 1400u}) {
        auto sa = make_sa(Direction::outbound);
        auto inner = inner_packet(n);
        auto first = seal(*sa, inner);  // seq 1
        auto pkt = seal(*sa, inner);    // seq 2
        EXPECT_EQ(pkt, esp_ref::build(kKey256, kSalt, kSpi, 2, false, with_trailer(inner, 4)))
            << "inner " << n;
        EXPECT_EQ(first, esp_ref::build(kKey256, kSalt, kSpi, 1, false, with_trailer(inner, 4)));
        EXPECT_EQ(pkt.size() % 4, 0u);
    }
}

TEST(EspSa, Aes128AndEsnAadMatchIndependentComputation) {
    std::vector<std::uint8_t> k128(kKey256.begin(), kKey256.begin() + 16);
    auto sa = make_sa(Direction::outbound, false, k128);
    auto inner = inner_packet(100);
    EXPECT_EQ(seal(*sa, inner, 41),
              esp_ref::build(k128, kSalt, kSpi, 1, false, with_trailer(inner, 41)));

    // ESN: RFC 4106 5 AAD = SPI || seq_hi || seq_lo; only seq_lo is on the wire.
    auto esn = make_sa(Direction::outbound, true);
    const std::uint64_t seq = (std::uint64_t{5} << 32) | 9;
    esn->set_next_seq_for_test(seq);
    auto pkt = seal(*esn, inner);
    EXPECT_EQ(pkt, esp_ref::build(kKey256, kSalt, kSpi, seq, true, with_trailer(inner, 4)));
    EXPECT_NE(pkt, esp_ref::build(kKey256, kSalt, kSpi, seq, false, with_trailer(inner, 4)));
}

TEST(EspSa, RoundTripThroughInboundSa) {
    auto out = make_sa(Direction::outbound);
    auto in = make_sa(Direction::inbound);
    for (std::size_t n : {1u, 40u, 1399u, 9000u}) {
        auto inner = inner_packet(n);
        std::vector<std::uint8_t> got;
        std::uint8_t nh = 0;
        ASSERT_EQ(open(*in, seal(*out, inner, 41), &got, &nh), EspStatus::ok);
        EXPECT_EQ(got, inner);
        EXPECT_EQ(nh, 41);
    }
    EXPECT_EQ(in->counters().packets, 4u);
    EXPECT_EQ(in->counters().bytes, 1u + 40 + 1399 + 9000);
    EXPECT_EQ(out->counters().seq, 4u);
    EXPECT_EQ(in->counters().seq, 4u);
}

TEST(EspSa, ReferencePacketDecrypts) {
    auto in = make_sa(Direction::inbound);
    auto inner = inner_packet(33);
    std::vector<std::uint8_t> got;
    ASSERT_EQ(
        open(*in, esp_ref::build(kKey256, kSalt, kSpi, 7, false, with_trailer(inner, 4)), &got),
        EspStatus::ok);
    EXPECT_EQ(got, inner);
}

TEST(EspSa, RejectsShortPacket) {
    auto in = make_sa(Direction::inbound);
    EXPECT_EQ(open(*in, std::vector<std::uint8_t>(esp_min_packet - 1, 0)), EspStatus::short_packet);
    EXPECT_EQ(open(*in, {}), EspStatus::short_packet);
}

TEST(EspSa, RejectsCiphertextNotMultipleOfFour) {
    auto in = make_sa(Direction::inbound);
    auto pkt =
        esp_ref::build(kKey256, kSalt, kSpi, 1, false, {1, 2, 3, 0, 4});  // 5-octet ciphertext
    EXPECT_EQ(open(*in, pkt), EspStatus::bad_length);
}

TEST(EspSa, RejectsWrongSpi) {
    auto in = make_sa(Direction::inbound);
    auto pkt =
        esp_ref::build(kKey256, kSalt, kSpi + 1, 1, false, with_trailer(inner_packet(20), 4));
    EXPECT_EQ(open(*in, pkt), EspStatus::wrong_spi);
}

TEST(EspSa, RejectsEveryFlippedBit) {
    auto out = make_sa(Direction::outbound);
    auto in = make_sa(Direction::inbound);
    auto good = seal(*out, inner_packet(24));
    // SPI octets are checked first (wrong_spi); every other bit is covered by the ICV: the
    // sequence number as AAD, the IV as nonce, the ciphertext and the ICV itself.
    for (std::size_t i = 4; i < good.size(); ++i) {
        auto bad = good;
        bad[i] ^= 0x10;
        EXPECT_EQ(open(*in, bad), EspStatus::auth_failed) << "octet " << i;
    }
    EXPECT_EQ(in->counters().dropped_auth, good.size() - 4);
    EXPECT_EQ(open(*in, good), EspStatus::ok);  // failures did not move the replay window
}

TEST(EspSa, RejectsWrongKey) {
    auto in = make_sa(Direction::inbound);
    auto k = kKey256;
    k[0] ^= 1;
    EXPECT_EQ(
        open(*in, esp_ref::build(k, kSalt, kSpi, 1, false, with_trailer(inner_packet(20), 4))),
        EspStatus::auth_failed);
    auto s = kSalt;
    s[3] ^= 1;
    EXPECT_EQ(
        open(*in, esp_ref::build(kKey256, s, kSpi, 1, false, with_trailer(inner_packet(20), 4))),
        EspStatus::auth_failed);
}

TEST(EspSa, RejectsReplayAndTooOld) {
    auto out = make_sa(Direction::outbound);
    auto in = make_sa(Direction::inbound);
    auto p1 = seal(*out, inner_packet(20));
    ASSERT_EQ(open(*in, p1), EspStatus::ok);
    EXPECT_EQ(open(*in, p1), EspStatus::replay);
    auto far = esp_ref::build(kKey256, kSalt, kSpi, 1000, false, with_trailer(inner_packet(20), 4));
    ASSERT_EQ(open(*in, far), EspStatus::ok);
    auto old =
        esp_ref::build(kKey256, kSalt, kSpi, 1000 - 64, false, with_trailer(inner_packet(20), 4));
    EXPECT_EQ(open(*in, old), EspStatus::replay);  // left of a 64-packet window
    auto edge =
        esp_ref::build(kKey256, kSalt, kSpi, 1000 - 63, false, with_trailer(inner_packet(20), 4));
    EXPECT_EQ(open(*in, edge), EspStatus::ok);  // the window's last slot
    EXPECT_EQ(in->counters().dropped_replay, 2u);
}

TEST(EspSa, RejectsBadPadding) {
    auto in = make_sa(Direction::inbound);
    auto inner = inner_packet(21);  // 21 + 2 -> 1 pad octet
    auto pt = with_trailer(inner, 4);
    pt[21] = 7;  // padding must be 1
    EXPECT_EQ(open(*in, esp_ref::build(kKey256, kSalt, kSpi, 1, false, pt)),
              EspStatus::bad_padding);
    auto pt2 = with_trailer(inner, 4);
    pt2[pt2.size() - 2] = 250;  // pad length beyond the plaintext
    EXPECT_EQ(open(*in, esp_ref::build(kKey256, kSalt, kSpi, 2, false, pt2)),
              EspStatus::bad_padding);
    // Extra padding is allowed (RFC 4303 2.4: up to 255 octets) if it is 1, 2, 3, ...
    std::vector<std::uint8_t> pt3 = inner_packet(22);
    for (int i = 1; i <= 4; ++i) pt3.push_back(static_cast<std::uint8_t>(i));
    pt3.push_back(4);
    pt3.push_back(4);
    std::vector<std::uint8_t> got;
    EXPECT_EQ(open(*in, esp_ref::build(kKey256, kSalt, kSpi, 3, false, pt3), &got), EspStatus::ok);
    EXPECT_EQ(got, inner_packet(22));
}

TEST(EspSa, RejectsUnknownNextHeaderAndDropsDummy) {
    auto in = make_sa(Direction::inbound);
    EXPECT_EQ(open(*in, esp_ref::build(kKey256, kSalt, kSpi, 1, false,
                                       with_trailer(inner_packet(20), 17))),
              EspStatus::bad_next_header);
    EXPECT_EQ(open(*in, esp_ref::build(kKey256, kSalt, kSpi, 2, false,
                                       with_trailer(inner_packet(20), 59))),
              EspStatus::dummy);
    EXPECT_EQ(in->counters().packets, 0u);
}

TEST(EspSa, SequenceNumberMustNotCycle) {
    auto out = make_sa(Direction::outbound);
    out->set_next_seq_for_test(0xffffffffull);
    std::vector<std::uint8_t> buf(200);
    std::size_t len = 0;
    EXPECT_EQ(out->encrypt_in_place(buf, 20, 4, &len), EspStatus::ok);  // 2^32 - 1 is the last
    EXPECT_EQ(out->encrypt_in_place(buf, 20, 4, &len), EspStatus::seq_exhausted);
    EXPECT_TRUE(out->take_hard_expired());

    auto esn = make_sa(Direction::outbound, true);
    esn->set_next_seq_for_test(0xffffffffull);
    EXPECT_EQ(esn->encrypt_in_place(buf, 20, 4, &len), EspStatus::ok);
    EXPECT_EQ(esn->encrypt_in_place(buf, 20, 4, &len), EspStatus::ok);  // ESN goes on to 2^32
    EXPECT_EQ(esn->next_seq(), 0x100000001ull);
}

TEST(EspSa, EsnReceiverFollowsWrap) {
    auto out = make_sa(Direction::outbound, true);
    auto in = make_sa(Direction::inbound, true);
    // A jump of less than 2^31 is inferred as "ahead" (RFC 4303 A2.2 case B, Th' = Th).
    out->set_next_seq_for_test(0x70000000ull);
    ASSERT_EQ(open(*in, seal(*out, inner_packet(20))), EspStatus::ok);
    // Near the wrap (case A), then across it: seq_lo restarts at 0 and Th' = Th + 1.
    out->set_next_seq_for_test(0xfffffff0ull);
    for (int i = 0; i < 40; ++i)
        ASSERT_EQ(open(*in, seal(*out, inner_packet(20))), EspStatus::ok) << i;
    EXPECT_EQ(in->counters().seq, 0xfffffff0ull + 39);
    // A late packet from before the wrap is still inside the window.
    auto late = esp_ref::build(kKey256, kSalt, kSpi, 0xfffffff0ull - 5, true,
                               with_trailer(inner_packet(20), 4));
    EXPECT_EQ(open(*in, late), EspStatus::ok);
}

TEST(EspSa, BufferTooSmall) {
    auto out = make_sa(Direction::outbound);
    std::vector<std::uint8_t> buf(esp_prefix_len + 20 + 10);
    std::size_t len = 0;
    EXPECT_EQ(out->encrypt_in_place(buf, 20, 4, &len), EspStatus::buffer_too_small);
    EXPECT_EQ(out->next_seq(), 1u);  // no sequence number consumed
}

TEST(EspSa, LifetimesFireOnce) {
    SaSpec s;
    s.direction = Direction::outbound;
    s.spi = 1;
    s.key = qkd::SecretBytes(kKey256);
    s.salt = qkd::SecretBytes(kSalt);
    s.soft.packets = 2;
    s.hard.packets = 3;
    auto created = EspSa::create(std::move(s));
    ASSERT_TRUE(created.ok());
    auto sa = std::move(created.value());
    std::vector<std::uint8_t> buf(200);
    std::size_t len = 0;
    ASSERT_EQ(sa->encrypt_in_place(buf, 20, 4, &len), EspStatus::ok);
    EXPECT_FALSE(sa->take_soft_expired());
    ASSERT_EQ(sa->encrypt_in_place(buf, 20, 4, &len), EspStatus::ok);
    EXPECT_TRUE(sa->take_soft_expired());
    EXPECT_FALSE(sa->take_soft_expired());
    EXPECT_FALSE(sa->take_hard_expired());
    ASSERT_EQ(sa->encrypt_in_place(buf, 20, 4, &len), EspStatus::ok);
    EXPECT_TRUE(sa->take_hard_expired());
    EXPECT_EQ(sa->encrypt_in_place(buf, 20, 4, &len), EspStatus::expired);
}

TEST(EspSa, CreateValidatesSpec) {
    auto bad = [](auto mutate) {
        SaSpec s;
        s.spi = 1;
        s.key = qkd::SecretBytes(kKey256);
        s.salt = qkd::SecretBytes(kSalt);
        mutate(s);
        auto r = EspSa::create(std::move(s));
        EXPECT_FALSE(r.ok());
        return r.ok() ? std::string() : r.error().message;
    };
    EXPECT_NE(bad([](SaSpec& s) { s.spi = 0; }).find("SPI 0"), std::string::npos);
    EXPECT_NE(bad([](SaSpec& s) { s.key = qkd::SecretBytes(24); }).find("24 octets"),
              std::string::npos);
    EXPECT_NE(bad([](SaSpec& s) { s.salt = qkd::SecretBytes(3); }).find("salt of 3"),
              std::string::npos);
    EXPECT_NE(bad([](SaSpec& s) { s.replay_window = 32; }).find("at least 64"), std::string::npos);
    EXPECT_NE(bad([](SaSpec& s) { s.replay_window = 70000; }).find("at most"), std::string::npos);
}

TEST(EspSa, StoredSpecHoldsNoKey) {
    auto sa = make_sa(Direction::outbound);
    EXPECT_TRUE(sa->spec().key.empty());
    EXPECT_TRUE(sa->spec().salt.empty());
}
