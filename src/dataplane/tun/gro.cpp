#include "qkd/dataplane/gro.hpp"

#include <cstring>

#include "qkd/dataplane/gso.hpp"

namespace qkd::dp {

namespace {

constexpr std::size_t max_ip_packet = 65535;
constexpr std::uint8_t tcp_ack = 0x10, tcp_psh = 0x08;
constexpr std::size_t ipv4_min = 20;

std::uint32_t be32(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3];
}
void put16(std::uint8_t* p, std::uint16_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
void put16le(std::uint8_t* p, std::uint16_t v) {
    p[0] = static_cast<std::uint8_t>(v);
    p[1] = static_cast<std::uint8_t>(v >> 8);
}

// An IPv4 TCP data segment that may be merged: no IP options, not a fragment, flags ACK or
// ACK|PSH only, some payload. Returns the TCP header length (0 = not mergeable).
std::size_t mergeable(std::span<const std::uint8_t> p, std::size_t* payload) {
    if (p.size() < ipv4_min + 20 || p[0] != 0x45 || p[9] != 6) return 0;
    if ((p[6] & 0x3f) != 0 || p[7] != 0) return 0;  // MF or fragment offset
    const std::size_t tcp_len = (p[ipv4_min + 12] >> 4) * 4u;
    if (tcp_len < 20 || p.size() <= ipv4_min + tcp_len) return 0;
    const std::uint8_t flags = p[ipv4_min + 13];
    if (flags != tcp_ack && flags != (tcp_ack | tcp_psh)) return 0;
    *payload = p.size() - ipv4_min - tcp_len;
    return tcp_len;
}

}  // namespace

TcpCoalescer::TcpCoalescer(Writer write)
    : write_(std::move(write)), buf_(vnet_hdr_len + max_ip_packet) {}

void TcpCoalescer::write_plain(std::span<const std::uint8_t> p) {
    // Unmerged packets go out through the same buffer with an all-zero header.
    std::memset(buf_.data(), 0, vnet_hdr_len);
    std::memcpy(buf_.data() + vnet_hdr_len, p.data(), p.size());
    write_(std::span<const std::uint8_t>(buf_.data(), vnet_hdr_len + p.size()));
}

void TcpCoalescer::start(std::span<const std::uint8_t> p, std::size_t tcp_len,
                         std::size_t payload) {
    std::memcpy(buf_.data() + vnet_hdr_len, p.data(), p.size());
    len_ = p.size();
    segments_ = 1;
    mss_ = payload;
    tcp_len_ = tcp_len;
    next_seq_ = be32(p.data() + ipv4_min + 4) + static_cast<std::uint32_t>(payload);
    closed_ = (p[ipv4_min + 13] & tcp_psh) != 0;
}

void TcpCoalescer::add(std::span<const std::uint8_t> p) {
    std::size_t payload = 0;
    const std::size_t tcp_len = mergeable(p, &payload);
    if (len_ && tcp_len) {
        const std::uint8_t* q = buf_.data() + vnet_hdr_len;
        // Same flow and header shape (addresses, ports, TOS, TTL, ACK number, window, options),
        // the next sequence number, and the previous segment was full-sized.
        const bool same =
            !closed_ && tcp_len == tcp_len_ && payload <= mss_ && len_ + payload <= max_ip_packet &&
            be32(p.data() + ipv4_min + 4) == next_seq_ && std::memcmp(p.data(), q, 2) == 0 &&
            std::memcmp(p.data() + 8, q + 8, 2) == 0 &&
            std::memcmp(p.data() + 12, q + 12, 8) == 0 &&
            std::memcmp(p.data() + ipv4_min, q + ipv4_min, 4) == 0 &&            // ports
            std::memcmp(p.data() + ipv4_min + 8, q + ipv4_min + 8, 5) == 0 &&    // ack, offset
            std::memcmp(p.data() + ipv4_min + 14, q + ipv4_min + 14, 2) == 0 &&  // window
            std::memcmp(p.data() + ipv4_min + 20, q + ipv4_min + 20, tcp_len - 20) == 0;  // options
        if (same) {
            std::memcpy(buf_.data() + vnet_hdr_len + len_, p.data() + ipv4_min + tcp_len, payload);
            len_ += payload;
            ++segments_;
            next_seq_ += static_cast<std::uint32_t>(payload);
            const bool psh = (p[ipv4_min + 13] & tcp_psh) != 0;
            if (psh) buf_[vnet_hdr_len + ipv4_min + 13] |= tcp_psh;
            closed_ = psh || payload < mss_;
            return;
        }
    }
    flush();
    if (tcp_len)
        start(p, tcp_len, payload);
    else
        write_plain(p);
}

void TcpCoalescer::flush() {
    if (!len_) return;
    std::uint8_t* h = buf_.data();
    std::uint8_t* ip = h + vnet_hdr_len;
    std::memset(h, 0, vnet_hdr_len);
    if (segments_ > 1) {
        put16(ip + 2, static_cast<std::uint16_t>(len_));
        put16(ip + 10, 0);
        put16(ip + 10, csum_fold(csum_add(0, std::span<const std::uint8_t>(ip, ipv4_min))));
        // CHECKSUM_PARTIAL: the TCP checksum field holds the (uncomplemented) pseudo-header sum;
        // the kernel completes it if it ever needs one (it trusts our ICV-verified payload).
        const std::size_t tcp_total = len_ - ipv4_min;
        std::uint32_t pseudo = csum_add(0, std::span<const std::uint8_t>(ip + 12, 8)) + 6 +
                               static_cast<std::uint32_t>(tcp_total);
        put16(ip + ipv4_min + 16, static_cast<std::uint16_t>(~csum_fold(pseudo)));
        h[0] = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
        h[1] = 1;  // VIRTIO_NET_HDR_GSO_TCPV4
        put16le(h + 2, static_cast<std::uint16_t>(ipv4_min + tcp_len_));
        put16le(h + 4, static_cast<std::uint16_t>(mss_));
        put16le(h + 6, static_cast<std::uint16_t>(ipv4_min));
        put16le(h + 8, 16);
    }
    write_(std::span<const std::uint8_t>(h, vnet_hdr_len + len_));
    len_ = 0;
    segments_ = 0;
}

}  // namespace qkd::dp
