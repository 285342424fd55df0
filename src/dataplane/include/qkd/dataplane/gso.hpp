#pragma once
// TCP segmentation offload for the TUN device (IFF_VNET_HDR + TUNSETOFFLOAD TSO4/TSO6): the kernel
// hands the data plane one TCP "super-packet" of up to 64 KiB with a virtio_net_hdr, and the
// data plane cuts it into MSS-sized segments itself before encrypting each one. Fewer, larger
// reads and a much cheaper TCP send path in the kernel; the packets on the wire are unchanged.
// Pure functions over caller buffers (no allocation), tested against an independent checksum.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace qkd::dp {

inline constexpr std::size_t vnet_hdr_len = 10;  // struct virtio_net_hdr (no mergeable buffers)

struct VnetHdr {
    std::uint8_t flags = 0;     // VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
    std::uint8_t gso_type = 0;  // 0 none, 1 TCPv4, 4 TCPv6 (| 0x80 ECN)
    std::uint16_t hdr_len = 0;
    std::uint16_t gso_size = 0;  // MSS: payload octets per segment
    std::uint16_t csum_start = 0;
    std::uint16_t csum_offset = 0;

    static VnetHdr decode(std::span<const std::uint8_t, vnet_hdr_len> raw);  // host (little) endian
};

// RFC 1071 Internet checksum helpers.
std::uint32_t csum_add(std::uint32_t sum, std::span<const std::uint8_t> data);
std::uint16_t csum_fold(std::uint32_t sum);

// Completes a CHECKSUM_PARTIAL packet in place (flags & NEEDS_CSUM): sum from csum_start to the
// end, store at csum_start + csum_offset. False if the offsets do not fit the packet.
bool finish_partial_checksum(const VnetHdr& h, std::span<std::uint8_t> pkt);

// For a TSO packet (gso_type TCPv4/TCPv6): the number of segments, or nullopt when the packet
// is not a well-formed IPv4/IPv6 + TCP packet (without IPv6 extension headers).
std::optional<std::size_t> gso_segment_count(const VnetHdr& h, std::span<const std::uint8_t> pkt);
// Writes segment `index` (IP header + TCP header + at most gso_size payload octets, lengths,
// IPv4 ID and checksum, TCP sequence number, flags and checksum fixed) into `out`; returns its
// length, or nullopt if `out` is too small or the packet is malformed.
std::optional<std::size_t> gso_build_segment(const VnetHdr& h, std::span<const std::uint8_t> pkt,
                                             std::size_t index, std::span<std::uint8_t> out);

}  // namespace qkd::dp
