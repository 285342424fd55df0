// Issue 15 defects on the engine side: every dropped datagram says why, and a flood of
// IKE_SA_INIT requests with bogus KE data turns cookies on (RFC 7296 2.6) instead of costing a
// key generation each.
#include "harness.hpp"
#include "wire/message.hpp"

namespace qkd::ike::test {
namespace {

using namespace std::chrono_literals;

TEST(Drops, EveryDropHasAReasonCountedAndReported) {
    Pair p;
    p.add_default();
    const Endpoint from{IpAddr::v4(192, 0, 2, 1), 500}, to{IpAddr::v4(198, 51, 100, 1), 500};
    // A datagram that is not an IKE message: the header is cut short.
    const std::vector<std::uint8_t> junk(20, 0x41);
    p.b.engine.on_datagram(to, from, junk);
    EXPECT_EQ(p.b.engine.stats().drops_of(DropReason::Malformed), 1u);
    ASSERT_EQ(p.b.drops.size(), 1u);
    EXPECT_EQ(p.b.drops[0].rfind("malformed: ", 0), 0u) << p.b.drops[0];
    EXPECT_GT(p.b.drops[0].size(), std::string("malformed: ").size()) << "the decoder's reason is quoted";

    // HDR(A,B), SK {IDi, AUTH, ...} with one octet of the ciphertext flipped  -->  dropped (2.21.2)
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.filter = [](Datagram& d) {
        if (header_of(d).exchange == wire::ExchangeType::IkeAuth && !header_of(d).is_response()) d.bytes[d.bytes.size() - 20] ^= 1;
        return true;
    };
    p.net.pump();
    EXPECT_EQ(p.b.engine.stats().drops_of(DropReason::IntegrityFailed), 1u);
    EXPECT_EQ(p.b.engine.stats().dropped, 2u);
    EXPECT_EQ(p.b.drops.back(), "integrity check failed: ");
    std::uint64_t sum = 0;
    for (auto n : p.b.engine.stats().drops) sum += n;
    EXPECT_EQ(sum, p.b.engine.stats().dropped);
}

// A captured IKE_SA_INIT request with another SPIi and, if `bad_point`, KE data of the right
// length that is not a point of P-521 (x = y = 2^528 - 1).
std::vector<std::uint8_t> copy_init(const std::vector<std::uint8_t>& real, std::uint64_t spi_i, bool bad_point) {
    auto outer = wire::decode_outer(real).value();
    outer.header.spi_i = spi_i;
    for (auto& pl : outer.plain)
        if (auto* ke = std::get_if<wire::KePayload>(&pl.body); ke && bad_point) std::fill(ke->data.begin(), ke->data.end(), 0xFF);
    return wire::encode_plain(outer.header, outer.plain);
}

TEST(Cookies, BadPointFloodCostsNoKeyGeneration) {
    EngineOptions ob;
    ob.cookie_rate = 50;
    Pair p({}, ob);
    p.add_default();
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    Datagram real = p.net.in_flight.front();
    p.net.in_flight.clear();
    // 400 x  HDR(SPIi = n), SAi1, KEi(not a point), Ni  -->  <--  HDR, N(INVALID_SYNTAX)
    // The on-curve check runs before any key generation, so the flood neither costs one nor
    // counts towards cookie_rate.
    for (std::uint64_t n = 1; n <= 400; ++n) p.b.engine.on_datagram(real.dst, real.src, copy_init(real.bytes, n, true));
    EXPECT_EQ(p.b.engine.stats().tx, 400u);
    EXPECT_EQ(p.b.engine.stats().cookies_sent, 0u);
    EXPECT_EQ(p.b.engine.list_ike_sas().size(), 0u);
    auto outer = wire::decode_outer(p.net.in_flight.back().bytes).value();
    ASSERT_EQ(outer.plain.size(), 1u);
    EXPECT_EQ(std::get<wire::NotifyPayload>(outer.plain[0].body).type, wire::NotifyType::InvalidSyntax);
}

TEST(Cookies, InitFloodTurnsCookiesOnByRateAndARealInitiatorGetsThrough) {
    EngineOptions ob;
    ob.cookie_threshold = 1000;  // the half-open count alone would not trigger
    ob.cookie_rate = 50;
    Pair p({}, ob);
    p.add_default();
    // HDR, SAi1, KEi, Ni  -->   captured, held back until the flood has passed
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    ASSERT_EQ(p.net.in_flight.size(), 1u);
    Datagram real = p.net.in_flight.front();
    p.net.in_flight.clear();

    // 400 x  HDR(SPIi = n), SAi1, KEi (a valid point), Ni  -->   (spoofed from A's address)
    for (std::uint64_t n = 1; n <= 400; ++n) p.b.engine.on_datagram(real.dst, real.src, copy_init(real.bytes, n, false));
    const auto st = p.b.engine.stats();
    // <--  HDR, SAr1, KEr, Nr until 50 key generations were spent in this second,
    // <--  HDR, N(COOKIE) for the rest: no key generation without a proven address.
    EXPECT_EQ(st.tx - st.cookies_sent, 50u) << "answers that cost a key generation";
    EXPECT_EQ(st.cookies_sent, 350u);
    EXPECT_EQ(p.b.engine.list_ike_sas().size(), 50u);
    p.net.in_flight.clear();  // the answers to the flood go nowhere

    // The real initiator: HDR, SAi1, KEi, Ni  -->  <--  HDR, N(COOKIE)
    //                     HDR, N(COOKIE), SAi1, KEi, Ni  -->  <--  HDR, SAr1, KEr, Nr ... IKE_AUTH
    p.clock.t += 100ms;
    p.net.in_flight.push_back(real);
    p.net.run_for(3s);
    EXPECT_EQ(p.b.engine.stats().cookies_sent, 351u);
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    EXPECT_EQ(p.a.engine.list_ike_sas()[0].state, IkeSaState::Established);
    expect_matching_children(p.a, p.b);

    // Once the rate has been low for a full second, no cookie is asked for.
    p.clock.t += 3s;
    ASSERT_TRUE(p.a.engine.terminate("to-b").ok());
    p.net.run_for(1s);
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.run_for(1s);
    EXPECT_EQ(p.b.engine.stats().cookies_sent, 351u);
    EXPECT_EQ(p.a.engine.list_ike_sas().size(), 1u);
}

TEST(Cookies, WrongLengthKeIsRefusedBeforeAnyKeyGeneration) {
    EngineOptions ob;
    ob.cookie_rate = 5;
    Pair p({}, ob);
    p.add_default();
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    Datagram real = p.net.in_flight.front();
    p.net.in_flight.clear();
    auto outer = wire::decode_outer(real.bytes).value();
    for (auto& pl : outer.plain)
        if (auto* ke = std::get_if<wire::KePayload>(&pl.body)) ke->data.resize(40);
    // 20 x  HDR, SAi1, KEi(40 octets for ECP-521), Ni  -->  <--  HDR, N(INVALID_SYNTAX), stateless and cheap
    for (std::uint64_t n = 1; n <= 20; ++n) {
        outer.header.spi_i = n;
        p.b.engine.on_datagram(real.dst, real.src, wire::encode_plain(outer.header, outer.plain));
    }
    EXPECT_EQ(p.b.engine.stats().tx, 20u);
    EXPECT_EQ(p.b.engine.stats().cookies_sent, 0u) << "a length check costs no key generation, so it does not count";
}

}  // namespace
}  // namespace qkd::ike::test
