// TSO segmentation for the TUN device: every segment is checked against an independent RFC 1071
// checksum, and the payloads must concatenate back to the super-packet's payload.
#include "qkd/dataplane/gso.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "qkd/dataplane/inner_packet.hpp"

using namespace qkd::dp;

namespace {

// Plain RFC 1071 over 16-bit words, written separately from the production code.
std::uint16_t ref_checksum(const std::vector<std::uint8_t>& d) {
    std::uint32_t s = 0;
    for (std::size_t i = 0; i < d.size(); i += 2)
        s += (d[i] << 8) + (i + 1 < d.size() ? d[i + 1] : 0);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(~s);
}

std::vector<std::uint8_t> tcp_super_packet(bool v6, std::size_t payload, std::uint8_t flags) {
    const std::size_t ip = v6 ? 40 : 20, tcp = 32;  // TCP with 12 octets of options
    std::vector<std::uint8_t> p(ip + tcp + payload, 0);
    if (v6) {
        p[0] = 0x60;
        p[4] = static_cast<std::uint8_t>((tcp + payload) >> 8);
        p[5] = static_cast<std::uint8_t>(tcp + payload);
        p[6] = 6;
        p[7] = 64;
        p[23] = 1;
        p[39] = 2;
    } else {
        p[0] = 0x45;
        p[2] = static_cast<std::uint8_t>(p.size() >> 8);
        p[3] = static_cast<std::uint8_t>(p.size());
        p[4] = 0x12;
        p[5] = 0xff;  // IPv4 ID 0x12ff: segment IDs count up from here (and wrap the low octet)
        p[8] = 64;
        p[9] = 6;
        p[12] = 10, p[13] = 88, p[14] = 1, p[15] = 1;
        p[16] = 10, p[17] = 88, p[18] = 2, p[19] = 1;
    }
    std::uint8_t* t = p.data() + ip;
    t[0] = 0x9c, t[1] = 0x40, t[2] = 0x14, t[3] = 0x51;
    t[4] = 0xff, t[5] = 0xff, t[6] = 0xff, t[7] = 0x00;  // seq near 2^32: the segments wrap it
    t[12] = 0x80;                                        // data offset 8 words
    t[13] = flags;
    for (std::size_t i = 0; i < payload; ++i)
        p[ip + tcp + i] = static_cast<std::uint8_t>(i * 13 + 5);
    return p;
}

void check_segments(bool v6) {
    const std::size_t payload = 10000, mss = 1448;
    auto pkt = tcp_super_packet(v6, payload, 0x80 | 0x18 | 0x01);  // CWR, PSH|ACK, FIN
    VnetHdr h;
    h.gso_type = v6 ? 4 : 1;
    h.gso_size = mss;
    auto count = gso_segment_count(h, pkt);
    ASSERT_TRUE(count);
    ASSERT_EQ(*count, 7u);  // ceil(10000 / 1448)
    const std::size_t ip = v6 ? 40 : 20;
    std::vector<std::uint8_t> joined;
    for (std::size_t i = 0; i < *count; ++i) {
        std::vector<std::uint8_t> seg(2000);
        auto len = gso_build_segment(h, pkt, i, seg);
        ASSERT_TRUE(len);
        seg.resize(*len);
        auto parsed = parse_inner_packet(seg);  // lengths consistent with the buffer
        ASSERT_TRUE(parsed) << "segment " << i;
        const std::size_t tcp_len = seg.size() - ip;
        if (!v6) {
            EXPECT_EQ(ref_checksum(std::vector<std::uint8_t>(seg.begin(), seg.begin() + 20)), 0)
                << "IPv4 header " << i;
            EXPECT_EQ((seg[4] << 8 | seg[5]), 0x12ff + static_cast<int>(i));
        }
        // TCP checksum over pseudo header + segment verifies to 0.
        std::vector<std::uint8_t> ps;
        if (v6)
            ps.assign(seg.begin() + 8, seg.begin() + 40);
        else
            ps.assign(seg.begin() + 12, seg.begin() + 20);
        if (v6)
            ps.insert(ps.end(), {0, 0, static_cast<std::uint8_t>(tcp_len >> 8),
                                 static_cast<std::uint8_t>(tcp_len), 0, 0, 0, 6});
        else
            ps.insert(ps.end(), {0, 6, static_cast<std::uint8_t>(tcp_len >> 8),
                                 static_cast<std::uint8_t>(tcp_len)});
        ps.insert(ps.end(), seg.begin() + ip, seg.end());
        EXPECT_EQ(ref_checksum(ps), 0) << "TCP checksum of segment " << i;
        const std::uint32_t seq =
            seg[ip + 4] << 24 | seg[ip + 5] << 16 | seg[ip + 6] << 8 | seg[ip + 7];
        EXPECT_EQ(seq, static_cast<std::uint32_t>(0xffffff00u + i * mss)) << i;
        const std::uint8_t fl = seg[ip + 13];
        EXPECT_EQ((fl & 0x80) != 0, i == 0) << "CWR only on the first";
        EXPECT_EQ((fl & 0x09) != 0, i + 1 == *count) << "FIN/PSH only on the last";
        EXPECT_TRUE(fl & 0x10) << "ACK on all";
        EXPECT_EQ(seg.size() - ip - 32, i + 1 < *count ? mss : payload - 6 * mss);
        joined.insert(joined.end(), seg.begin() + ip + 32, seg.end());
    }
    EXPECT_TRUE(std::equal(joined.begin(), joined.end(), pkt.begin() + ip + 32));
    EXPECT_EQ(joined.size(), payload);
    std::vector<std::uint8_t> small(100);
    EXPECT_FALSE(gso_build_segment(h, pkt, 0, small));  // buffer too small
    std::vector<std::uint8_t> big(2000);
    EXPECT_FALSE(gso_build_segment(h, pkt, 7, big));  // no such segment
}

}  // namespace

TEST(Gso, SegmentsIpv4Tcp) {
    check_segments(false);
}
TEST(Gso, SegmentsIpv6Tcp) {
    check_segments(true);
}

TEST(Gso, RejectsMalformedSuperPackets) {
    auto pkt = tcp_super_packet(false, 3000, 0x10);
    VnetHdr h;
    h.gso_type = 1;
    h.gso_size = 0;
    EXPECT_FALSE(gso_segment_count(h, pkt));  // MSS 0
    h.gso_size = 1000;
    h.gso_type = 3;  // UDP fragmentation offload: not advertised, not handled
    EXPECT_FALSE(gso_segment_count(h, pkt));
    h.gso_type = 4;  // says IPv6, is IPv4
    EXPECT_FALSE(gso_segment_count(h, pkt));
    h.gso_type = 1;
    auto udp = pkt;
    udp[9] = 17;
    EXPECT_FALSE(gso_segment_count(h, udp));
    EXPECT_FALSE(gso_segment_count(h, std::span(pkt).first(30)));  // TCP header cut
    auto bad_off = pkt;
    bad_off[20 + 12] = 0x20;  // data offset 2 words < 5
    EXPECT_FALSE(gso_segment_count(h, bad_off));
    EXPECT_FALSE(gso_segment_count(h, std::span(pkt).first(52)));  // headers only, no payload
    EXPECT_EQ(*gso_segment_count(h, pkt), 3u);
}

TEST(Gso, FinishesPartialChecksum) {
    // A UDP packet with CHECKSUM_PARTIAL: the field holds the pseudo-header sum.
    std::vector<std::uint8_t> p = {0x45, 0,    0, 32, 0, 0,  0,   0,   64,  17,   0,
                                   0,    10,   0, 0,  1, 10, 0,   0,   2,   0x30, 0x39,
                                   0x00, 0x35, 0, 12, 0, 0,  'q', 'k', 'd', '!'};
    std::vector<std::uint8_t> pseudo = {10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 12};
    const std::uint16_t seed = static_cast<std::uint16_t>(~ref_checksum(pseudo));
    p[26] = static_cast<std::uint8_t>(seed >> 8);
    p[27] = static_cast<std::uint8_t>(seed);
    VnetHdr h;
    h.flags = 1;
    h.csum_start = 20;
    h.csum_offset = 6;
    ASSERT_TRUE(finish_partial_checksum(h, p));
    std::vector<std::uint8_t> all = pseudo;
    all.insert(all.end(), p.begin() + 20, p.end());
    EXPECT_EQ(ref_checksum(all), 0);
    h.csum_start = 31;
    EXPECT_FALSE(finish_partial_checksum(h, p));  // field beyond the packet
    VnetHdr none;
    auto copy = p;
    EXPECT_TRUE(finish_partial_checksum(none, copy));
    EXPECT_EQ(copy, p);  // nothing to do without NEEDS_CSUM
}
