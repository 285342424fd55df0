#include "qkd/dataplane/gso.hpp"

#include <cstring>

#include "qkd/common/bytes.hpp"

namespace qkd::dp {

namespace {

constexpr std::uint8_t gso_tcpv4 = 1;
constexpr std::uint8_t gso_tcpv6 = 4;
constexpr std::uint8_t gso_ecn = 0x80;
constexpr std::uint8_t needs_csum = 1;
constexpr std::uint8_t tcp_fin = 0x01, tcp_psh = 0x08, tcp_cwr = 0x80;
constexpr std::size_t max_segments = 65536 / 64;  // a super-packet is at most 64 KiB

struct Layout {
    bool v4 = true;
    std::size_t ip_len = 0;   // IP header length (offset of the TCP header)
    std::size_t hdr_len = 0;  // IP + TCP headers
    std::size_t payload = 0;  // TCP payload octets
    std::size_t mss = 0;
};

void put16(std::uint8_t* p, std::uint16_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

std::optional<Layout> layout(const VnetHdr& h, std::span<const std::uint8_t> pkt) {
    const std::uint8_t type = h.gso_type & static_cast<std::uint8_t>(~gso_ecn);
    if (type != gso_tcpv4 && type != gso_tcpv6) return std::nullopt;
    if (h.gso_size == 0) return std::nullopt;
    ByteReader r(pkt);
    auto first = r.u8();
    if (!first) return std::nullopt;
    Layout l;
    l.v4 = type == gso_tcpv4;
    if (l.v4) {
        if ((*first >> 4) != 4) return std::nullopt;
        l.ip_len = (*first & 0x0f) * 4u;
        if (l.ip_len < 20 || pkt.size() < l.ip_len || pkt[9] != 6) return std::nullopt;
    } else {
        if ((*first >> 4) != 6 || pkt.size() < 40 || pkt[6] != 6)
            return std::nullopt;  // no extension headers
        l.ip_len = 40;
    }
    if (pkt.size() < l.ip_len + 20) return std::nullopt;
    const std::size_t tcp_len = (pkt[l.ip_len + 12] >> 4) * 4u;
    if (tcp_len < 20 || pkt.size() < l.ip_len + tcp_len) return std::nullopt;
    l.hdr_len = l.ip_len + tcp_len;
    l.payload = pkt.size() - l.hdr_len;
    l.mss = h.gso_size;
    if (l.payload == 0 || (l.payload + l.mss - 1) / l.mss > max_segments) return std::nullopt;
    return l;
}

}  // namespace

VnetHdr VnetHdr::decode(std::span<const std::uint8_t, vnet_hdr_len> raw) {
    // Legacy virtio header in the host's (x86: little) byte order: TUN did not get TUNSETVNETBE.
    auto le16 = [&](std::size_t at) {
        return static_cast<std::uint16_t>(raw[at] | (raw[at + 1] << 8));
    };
    VnetHdr h;
    h.flags = raw[0];
    h.gso_type = raw[1];
    h.hdr_len = le16(2);
    h.gso_size = le16(4);
    h.csum_start = le16(6);
    h.csum_offset = le16(8);
    return h;
}

std::uint32_t csum_add(std::uint32_t sum, std::span<const std::uint8_t> data) {
    std::uint64_t s = sum;
    std::size_t i = 0;
    for (; i + 1 < data.size(); i += 2) s += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    if (i < data.size()) s += static_cast<std::uint32_t>(data[i] << 8);
    while (s >> 32) s = (s & 0xffffffff) + (s >> 32);
    return static_cast<std::uint32_t>(s);
}

std::uint16_t csum_fold(std::uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum & 0xffff);
}

bool finish_partial_checksum(const VnetHdr& h, std::span<std::uint8_t> pkt) {
    if (!(h.flags & needs_csum)) return true;
    const std::size_t at = std::size_t{h.csum_start} + h.csum_offset;
    if (h.csum_start >= pkt.size() || at + 2 > pkt.size()) return false;
    // CHECKSUM_PARTIAL: the field holds the pseudo-header sum; sum everything from csum_start.
    put16(&pkt[at], csum_fold(csum_add(0, pkt.subspan(h.csum_start))));
    return true;
}

std::optional<std::size_t> gso_segment_count(const VnetHdr& h, std::span<const std::uint8_t> pkt) {
    auto l = layout(h, pkt);
    if (!l) return std::nullopt;
    return (l->payload + l->mss - 1) / l->mss;
}

std::optional<std::size_t> gso_build_segment(const VnetHdr& h, std::span<const std::uint8_t> pkt,
                                             std::size_t index, std::span<std::uint8_t> out) {
    auto l = layout(h, pkt);
    if (!l) return std::nullopt;
    const std::size_t count = (l->payload + l->mss - 1) / l->mss;
    if (index >= count) return std::nullopt;
    const std::size_t off = index * l->mss;
    const std::size_t n = std::min(l->mss, l->payload - off);
    const std::size_t total = l->hdr_len + n;
    if (out.size() < total) return std::nullopt;
    std::uint8_t* o = out.data();
    std::memcpy(o, pkt.data(), l->hdr_len);
    std::memcpy(o + l->hdr_len, pkt.data() + l->hdr_len + off, n);
    const std::size_t tcp_len = total - l->ip_len;

    std::uint32_t pseudo = 0;
    if (l->v4) {
        put16(o + 2, static_cast<std::uint16_t>(total));
        const std::uint16_t id = static_cast<std::uint16_t>((pkt[4] << 8 | pkt[5]) + index);
        put16(o + 4, id);
        put16(o + 10, 0);
        put16(o + 10, csum_fold(csum_add(0, std::span<const std::uint8_t>(o, l->ip_len))));
        pseudo = csum_add(0, std::span<const std::uint8_t>(o + 12, 8));  // src, dst
    } else {
        put16(o + 4, static_cast<std::uint16_t>(tcp_len));
        pseudo = csum_add(0, std::span<const std::uint8_t>(o + 8, 32));
    }
    std::uint8_t* tcp = o + l->ip_len;
    // RFC 9293 3.4: sequence number of the first payload octet.
    const std::uint32_t seq0 =
        static_cast<std::uint32_t>(tcp[4]) << 24 | tcp[5] << 16 | tcp[6] << 8 | tcp[7];
    const std::uint32_t seq = seq0 + static_cast<std::uint32_t>(off);
    tcp[4] = static_cast<std::uint8_t>(seq >> 24);
    tcp[5] = static_cast<std::uint8_t>(seq >> 16);
    tcp[6] = static_cast<std::uint8_t>(seq >> 8);
    tcp[7] = static_cast<std::uint8_t>(seq);
    if (index + 1 < count)
        tcp[13] &=
            static_cast<std::uint8_t>(~(tcp_fin | tcp_psh));        // only the last carries FIN/PSH
    if (index > 0) tcp[13] &= static_cast<std::uint8_t>(~tcp_cwr);  // only the first carries CWR
    // TCP checksum from scratch: pseudo header (addresses, protocol 6, TCP length) + segment.
    pseudo += 6 + static_cast<std::uint32_t>(tcp_len);
    put16(tcp + 16, 0);
    put16(tcp + 16, csum_fold(csum_add(pseudo, std::span<const std::uint8_t>(tcp, tcp_len))));
    return total;
}

}  // namespace qkd::dp
