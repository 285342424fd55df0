#pragma once
// The receive-side mirror of gso.hpp: consecutive full-sized IPv4 TCP segments of one flow,
// decrypted from one receive batch, are merged into one super-packet written to the TUN device
// with a virtio_net_hdr (gso_type TCPv4, NEEDS_CSUM). The kernel's TCP then handles one packet
// instead of up to 45 and acknowledges once; if the packet is forwarded the kernel re-segments
// it (GSO). Everything else is written as it is.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace qkd::dp {

class TcpCoalescer {
  public:
    // `write` receives one TUN write: virtio_net_hdr followed by the IP packet.
    using Writer = std::function<void(std::span<const std::uint8_t>)>;
    explicit TcpCoalescer(Writer write);

    // `inner` is a complete, already validated inner IP packet. Must be followed by flush()
    // at the end of each receive batch.
    void add(std::span<const std::uint8_t> inner);
    void flush();

  private:
    void start(std::span<const std::uint8_t> p, std::size_t tcp_len, std::size_t payload);
    void write_plain(std::span<const std::uint8_t> p);

    Writer write_;
    std::vector<std::uint8_t> buf_;  // vnet header + merged packet
    std::size_t len_ = 0;            // IP packet length in buf_ (0 = nothing pending)
    std::size_t segments_ = 0;
    std::size_t mss_ = 0;
    std::size_t tcp_len_ = 0;
    std::uint32_t next_seq_ = 0;
    bool closed_ = false;  // last segment was short or carried PSH: nothing may follow
};

}  // namespace qkd::dp
