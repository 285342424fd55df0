// Receive-side coalescing: segments cut by gso_build_segment merge back into one TUN write whose
// virtio_net_hdr re-segments into exactly the same segments; everything else passes unmerged.
#include "qkd/dataplane/gro.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "qkd/dataplane/gso.hpp"
#include "qkd/dataplane/inner_packet.hpp"

using namespace qkd::dp;

namespace {

std::vector<std::uint8_t> super_packet(std::size_t payload, std::uint8_t sport = 0x40) {
    std::vector<std::uint8_t> p(20 + 32 + payload, 0);
    p[0] = 0x45, p[2] = static_cast<std::uint8_t>(p.size() >> 8),
    p[3] = static_cast<std::uint8_t>(p.size());
    p[6] = 0x40, p[8] = 64, p[9] = 6;
    p[12] = 10, p[13] = 88, p[14] = 1, p[15] = 1, p[16] = 10, p[17] = 88, p[18] = 2, p[19] = 1;
    std::uint8_t* t = p.data() + 20;
    t[0] = 0x9c, t[1] = sport, t[2] = 0x14, t[3] = 0x51, t[4] = 1, t[8] = 7;
    t[12] = 0x80, t[13] = 0x18, t[14] = 0x01;                 // ACK|PSH, window 256
    t[20] = 1, t[21] = 1, t[22] = 8, t[23] = 10, t[27] = 42;  // NOP NOP timestamp
    for (std::size_t i = 0; i < payload; ++i) p[52 + i] = static_cast<std::uint8_t>(i * 31);
    return p;
}

std::vector<std::vector<std::uint8_t>> segments(const std::vector<std::uint8_t>& sp,
                                                std::size_t mss) {
    VnetHdr h;
    h.gso_type = 1;
    h.gso_size = static_cast<std::uint16_t>(mss);
    std::vector<std::vector<std::uint8_t>> out;
    for (std::size_t i = 0; i < *gso_segment_count(h, sp); ++i) {
        std::vector<std::uint8_t> s(2000);
        s.resize(*gso_build_segment(h, sp, i, s));
        out.push_back(s);
    }
    return out;
}

struct Capture {
    std::vector<std::vector<std::uint8_t>> writes;
    TcpCoalescer gro{
        [this](std::span<const std::uint8_t> w) { writes.emplace_back(w.begin(), w.end()); }};
};

}  // namespace

TEST(Gro, MergesAndResegmentsToTheSameSegments) {
    auto segs = segments(super_packet(6000), 1448);
    ASSERT_EQ(segs.size(), 5u);
    Capture c;
    for (auto& s : segs) c.gro.add(s);
    EXPECT_TRUE(c.writes.empty());  // nothing before the end of the batch
    c.gro.flush();
    ASSERT_EQ(c.writes.size(), 1u);
    const auto& w = c.writes[0];
    auto h = VnetHdr::decode(std::span<const std::uint8_t, vnet_hdr_len>(w.data(), vnet_hdr_len));
    EXPECT_EQ(h.gso_type, 1);
    EXPECT_EQ(h.gso_size, 1448);
    EXPECT_EQ(h.flags, 1);
    EXPECT_EQ(h.csum_start, 20);
    EXPECT_EQ(h.csum_offset, 16);
    std::vector<std::uint8_t> merged(w.begin() + vnet_hdr_len, w.end());
    ASSERT_TRUE(parse_inner_packet(merged));  // lengths updated
    EXPECT_EQ(merged.size(), 20u + 32 + 6000);
    EXPECT_EQ(csum_fold(csum_add(0, std::span<const std::uint8_t>(merged.data(), 20))),
              0);  // IPv4 header
    auto again = segments(merged, 1448);
    ASSERT_EQ(again.size(), segs.size());
    for (std::size_t i = 0; i < segs.size(); ++i) EXPECT_EQ(again[i], segs[i]) << "segment " << i;
}

TEST(Gro, SingleSegmentIsWrittenUnchanged) {
    auto segs = segments(super_packet(1000), 1448);
    Capture c;
    c.gro.add(segs[0]);
    c.gro.flush();
    ASSERT_EQ(c.writes.size(), 1u);
    EXPECT_EQ(std::vector<std::uint8_t>(c.writes[0].begin(), c.writes[0].begin() + vnet_hdr_len),
              std::vector<std::uint8_t>(vnet_hdr_len, 0));
    EXPECT_EQ(std::vector<std::uint8_t>(c.writes[0].begin() + vnet_hdr_len, c.writes[0].end()),
              segs[0]);
}

TEST(Gro, DoesNotMergeAcrossGapsFlowsOrAfterShortSegment) {
    auto a = segments(super_packet(4344), 1448);        // 3 full segments
    auto b = segments(super_packet(4344, 0x41), 1448);  // another flow
    Capture c;
    c.gro.add(a[0]);
    c.gro.add(a[2]);  // gap: a[1] missing
    c.gro.add(b[0]);  // other flow
    c.gro.flush();
    EXPECT_EQ(c.writes.size(), 3u);

    Capture d;                                                 // a short segment closes the merge
    auto s = segments(super_packet(1448 + 700 + 1448), 1448);  // full, full, short(700)
    d.gro.add(s[0]);
    d.gro.add(s[1]);
    d.gro.add(s[2]);
    d.gro.flush();
    ASSERT_EQ(d.writes.size(), 1u);  // all three merged: the short one is last
    EXPECT_EQ(d.writes[0].size(), vnet_hdr_len + 20 + 32 + 1448 + 1448 + 700);
}

TEST(Gro, NonTcpAndControlSegmentsPassThrough) {
    Capture c;
    std::vector<std::uint8_t> udp = {0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 1, 1,
                                     1,    1, 2, 2,  2, 2, 0, 1, 0,  2,  0, 8, 0, 0};
    c.gro.add(udp);
    auto syn = segments(super_packet(100), 1448)[0];
    syn[20 + 13] = 0x02;  // SYN
    c.gro.add(syn);
    c.gro.add(syn);
    c.gro.flush();
    ASSERT_EQ(c.writes.size(), 3u);
    EXPECT_EQ(std::vector<std::uint8_t>(c.writes[0].begin() + vnet_hdr_len, c.writes[0].end()),
              udp);
}
