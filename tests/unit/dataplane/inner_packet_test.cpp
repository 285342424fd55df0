// Inner packet parsing (bounded) and selector matching, addresses and prefixes.
#include "qkd/dataplane/inner_packet.hpp"

#include <gtest/gtest.h>

using namespace qkd::dp;

namespace {
std::vector<std::uint8_t> ipv4(const char* src, const char* dst, std::uint8_t proto,
                               std::size_t len) {
    std::vector<std::uint8_t> p(len, 0);
    p[0] = 0x45;
    p[2] = static_cast<std::uint8_t>(len >> 8);
    p[3] = static_cast<std::uint8_t>(len);
    p[9] = proto;
    auto s = *IpAddress::parse(src), d = *IpAddress::parse(dst);
    std::copy_n(s.bytes.begin(), 4, p.begin() + 12);
    std::copy_n(d.bytes.begin(), 4, p.begin() + 16);
    return p;
}
std::vector<std::uint8_t> ipv6(const char* src, const char* dst, std::size_t payload) {
    std::vector<std::uint8_t> p(40 + payload, 0);
    p[0] = 0x60;
    p[4] = static_cast<std::uint8_t>(payload >> 8);
    p[5] = static_cast<std::uint8_t>(payload);
    p[6] = 58;
    auto s = *IpAddress::parse(src), d = *IpAddress::parse(dst);
    std::copy_n(s.bytes.begin(), 16, p.begin() + 8);
    std::copy_n(d.bytes.begin(), 16, p.begin() + 24);
    return p;
}
}  // namespace

TEST(InnerPacket, ParsesIpv4AndIpv6) {
    auto p4 = parse_inner_packet(ipv4("10.88.1.1", "10.88.2.1", 6, 60));
    ASSERT_TRUE(p4);
    EXPECT_EQ(p4->src.to_string(), "10.88.1.1");
    EXPECT_EQ(p4->dst.to_string(), "10.88.2.1");
    EXPECT_EQ(p4->protocol, 6);
    EXPECT_EQ(p4->next_header, 4);
    auto p6 = parse_inner_packet(ipv6("fd88:1::1", "fd88:2::1", 8));
    ASSERT_TRUE(p6);
    EXPECT_EQ(p6->dst.to_string(), "fd88:2::1");
    EXPECT_EQ(p6->next_header, 41);
}

TEST(InnerPacket, RejectsMalformed) {
    EXPECT_FALSE(parse_inner_packet({}));
    auto p = ipv4("1.1.1.1", "2.2.2.2", 1, 40);
    EXPECT_FALSE(parse_inner_packet(std::span(p).first(19)));  // truncated header
    auto wrong_total = p;
    wrong_total[3] = 41;
    EXPECT_FALSE(parse_inner_packet(wrong_total));  // total length != buffer
    auto small_ihl = p;
    small_ihl[0] = 0x44;
    EXPECT_FALSE(parse_inner_packet(small_ihl));  // IHL < 5
    auto big_ihl = p;
    big_ihl[0] = 0x4f;
    EXPECT_FALSE(parse_inner_packet(big_ihl));  // header longer than the packet
    auto v5 = p;
    v5[0] = 0x55;
    EXPECT_FALSE(parse_inner_packet(v5));  // unknown version
    auto p6 = ipv6("::1", "::2", 10);
    p6[5] = 11;
    EXPECT_FALSE(parse_inner_packet(p6));  // payload length != buffer
    EXPECT_FALSE(parse_inner_packet(std::span(p6).first(39)));
}

TEST(InnerPacket, SelectorDirections) {
    TrafficSelector ts{*IpPrefix::parse("10.88.1.0/24"), *IpPrefix::parse("10.88.2.0/24"), 0};
    auto out = *parse_inner_packet(ipv4("10.88.1.5", "10.88.2.9", 17, 28));
    EXPECT_TRUE(selector_matches_out(ts, out));
    EXPECT_FALSE(selector_matches_in(ts, out));
    auto in = *parse_inner_packet(ipv4("10.88.2.9", "10.88.1.5", 17, 28));
    EXPECT_TRUE(selector_matches_in(ts, in));
    auto spoofed = *parse_inner_packet(ipv4("10.99.0.1", "10.88.1.5", 17, 28));
    EXPECT_FALSE(any_selector_matches_in({ts}, spoofed));
    ts.protocol = 6;
    EXPECT_FALSE(selector_matches_in(ts, in));  // UDP packet, TCP-only selector
    auto v6 = *parse_inner_packet(ipv6("fd88:2::1", "fd88:1::1", 0));
    EXPECT_FALSE(selector_matches_in(ts, v6));  // family mismatch
}

TEST(Addresses, ParseAndContain) {
    EXPECT_FALSE(IpAddress::parse("10.0.0.256").ok());
    EXPECT_FALSE(IpAddress::parse("").ok());
    EXPECT_NE(IpAddress::parse("nonsense").error().message.find("'nonsense'"), std::string::npos);
    EXPECT_FALSE(IpPrefix::parse("10.0.0.0/33").ok());
    EXPECT_FALSE(IpPrefix::parse("10.0.0.0/").ok());
    EXPECT_FALSE(IpPrefix::parse("10.0.0.0/8x").ok());
    EXPECT_NE(IpPrefix::parse("10.0.0.1/24").error().message.find("host bits"), std::string::npos);
    auto p = *IpPrefix::parse("10.88.0.0/15");
    EXPECT_TRUE(p.contains(*IpAddress::parse("10.89.255.255")));
    EXPECT_FALSE(p.contains(*IpAddress::parse("10.90.0.0")));
    EXPECT_EQ(IpPrefix::parse("10.1.2.3")->len, 32);
    EXPECT_EQ(IpPrefix::parse("fd00::/8")->to_string(), "fd00::/8");
    EXPECT_TRUE(IpPrefix::parse("0.0.0.0/0")->contains(*IpAddress::parse("1.2.3.4")));
    EXPECT_FALSE(IpPrefix::parse("::/0")->contains(*IpAddress::parse("1.2.3.4")));
}

#include "qkd/dataplane/recording.hpp"

TEST(RecordingDataPlane, RekeyStepsAndPreconditions) {
    RecordingDataPlane dp;
    auto spec = [](Direction d, std::uint32_t spi) {
        SaSpec s;
        s.direction = d;
        s.spi = spi;
        s.reqid = 7;
        s.key = qkd::SecretBytes(32);
        s.salt = qkd::SecretBytes(4);
        return s;
    };
    ASSERT_TRUE(dp.install_sa(spec(Direction::inbound, 0x1001)).ok());
    ASSERT_TRUE(dp.install_sa(spec(Direction::outbound, 0x2001)).ok());
    EXPECT_EQ(dp.install_sa(spec(Direction::inbound, 0x1001)).error().code, DpErrc::exists);
    auto no_reqid = spec(Direction::inbound, 0x1002);
    no_reqid.reqid = 0;
    EXPECT_EQ(dp.install_sa(std::move(no_reqid)).error().code, DpErrc::invalid_argument);
    ASSERT_TRUE(dp.rekey_sa_pair(
                      SaId{Direction::inbound, 0x1001, {}}, SaId{Direction::outbound, 0x2001, {}},
                      spec(Direction::inbound, 0x1101), spec(Direction::outbound, 0x2101))
                    .ok());
    auto calls = dp.calls();
    ASSERT_EQ(calls.size(), 6u);
    EXPECT_EQ(calls[2], "install_sa in 0x00001101");  // new inbound first
    EXPECT_EQ(calls[3], "install_sa out 0x00002101");
    EXPECT_EQ(calls[4], "remove_sa out 0x00002001");
    EXPECT_EQ(calls[5], "switch_outbound 0x00002001 -> 0x00002101");
    ASSERT_EQ(dp.pending_removals().size(), 1u);
    EXPECT_EQ(dp.pending_removals()[0].spi, 0x1001u);
    EXPECT_EQ(dp.sas().size(), 3u);  // old inbound lingers until removed
    EXPECT_EQ(dp.remove_sa(SaId{Direction::outbound, 0x2001, {}}).error().code, DpErrc::not_found);
}
