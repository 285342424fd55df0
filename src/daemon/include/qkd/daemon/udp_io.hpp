#pragma once
// The daemon's UDP sockets: IKE port (500) and NAT-T port (4500) on each local address.
// Port 4500 carries both IKE (after the 4-octet non-ESP marker) and UDP-encapsulated ESP
// (RFC 3948 2.2); demux() tells them apart.
#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange
#include <boost/asio.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/daemon/error.hpp"

namespace qkd::daemon {

inline constexpr std::size_t kMaxDatagram = 65535;

enum class UdpKind { ike, esp, keepalive, invalid };
// RFC 3948 2.2/2.3: on the NAT-T port a datagram starting with four zero octets is IKE (the marker
// stays on: the engine expects it), a single 0xFF octet is a NAT keepalive, anything else with at
// least 8 octets (SPI + sequence number) is ESP. On the IKE port everything is IKE.
UdpKind demux(std::span<const std::uint8_t> d, bool natt_port);

struct UdpAddr {
    std::uint32_t addr = 0;  // IPv4 host order
    std::uint16_t port = 0;
    auto operator<=>(const UdpAddr&) const = default;
};

class UdpSockets {
public:
    using Handler = std::function<void(const UdpAddr& local, const UdpAddr& remote, std::span<const std::uint8_t> data)>;
    UdpSockets(boost::asio::io_context& io, Handler on_datagram);
    ~UdpSockets();

    Result<void, DaemonError> bind(const UdpAddr& local);  // then receives asynchronously
    // Thread-safe (a plain sendto on the socket's descriptor); waits briefly when the socket
    // buffer is full. Returns false when no socket is bound to `local` or the send failed.
    bool send(const UdpAddr& local, const UdpAddr& remote, std::span<const std::uint8_t> data) const;
    void close();

private:
    struct Sock;
    boost::asio::io_context& io_;
    Handler handler_;
    mutable std::shared_mutex mu_;  // socks_: bind/close (io thread) vs send (any thread)
    std::map<UdpAddr, std::shared_ptr<Sock>> socks_;
    void receive(const std::shared_ptr<Sock>& s);
};

}  // namespace qkd::daemon
