// UDP sockets for IKE (500) and NAT-T (4500). Receives on the io_context thread; sends with a
// plain sendto so the data-plane threads can send ESP-in-UDP on the same socket.
#include "qkd/daemon/udp_io.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "qkd/common/log.hpp"
#include "qkd/daemon/config.hpp"

namespace qkd::daemon {

namespace asio = boost::asio;
using udp = asio::ip::udp;

UdpKind demux(std::span<const std::uint8_t> d, bool natt_port) {
    if (!natt_port) return d.size() >= 28 ? UdpKind::ike : UdpKind::invalid;  // RFC 7296 3.1: 28-octet header
    if (d.size() == 1 && d[0] == 0xff) return UdpKind::keepalive;
    if (d.size() >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0)
        return d.size() >= 4 + 28 ? UdpKind::ike : UdpKind::invalid;
    return d.size() >= 8 ? UdpKind::esp : UdpKind::invalid;
}

struct UdpSockets::Sock {
    UdpAddr local;
    udp::socket sock;
    udp::endpoint from;
    std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(kMaxDatagram);
    int fd = -1;
    Sock(asio::io_context& io, UdpAddr l) : local(l), sock(io) {}
};

UdpSockets::UdpSockets(asio::io_context& io, Handler on_datagram) : io_(io), handler_(std::move(on_datagram)) {}
UdpSockets::~UdpSockets() { close(); }

Result<void, DaemonError> UdpSockets::bind(const UdpAddr& local) {
    if (socks_.count(local)) return {};
    auto s = std::make_shared<Sock>(io_, local);
    boost::system::error_code ec;
    udp::endpoint ep(asio::ip::address_v4(local.addr), local.port);
    s->sock.open(udp::v4(), ec);
    if (!ec) s->sock.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) s->sock.set_option(asio::socket_base::receive_buffer_size(4 << 20), ec);
    if (!ec) s->sock.set_option(asio::socket_base::send_buffer_size(4 << 20), ec);
    if (!ec) s->sock.bind(ep, ec);
    if (ec)
        return Err{DaemonError{Errc::socket, "cannot bind UDP " + ipv4_to_string(local.addr) + ":" + std::to_string(local.port) +
                                                 ": " + ec.message() + " (another IKE daemon running? address configured?)"}};
    s->fd = s->sock.native_handle();
    {
        // A reload may bind a new local address while data-plane threads send (send()).
        std::unique_lock lock(mu_);
        socks_[local] = s;
    }
    receive(s);
    return {};
}

void UdpSockets::receive(const std::shared_ptr<Sock>& s) {
    s->sock.async_receive_from(asio::buffer(s->buf), s->from, [this, s](boost::system::error_code ec, std::size_t n) {
        if (ec == asio::error::operation_aborted || !s->sock.is_open()) return;
        if (!ec && s->from.address().is_v4()) {
            UdpAddr remote{s->from.address().to_v4().to_uint(), s->from.port()};
            handler_(s->local, remote, std::span<const std::uint8_t>(s->buf.data(), n));
        }
        receive(s);
    });
}

bool UdpSockets::send(const UdpAddr& local, const UdpAddr& remote, std::span<const std::uint8_t> data) const {
    int fd = -1;
    {
        std::shared_lock lock(mu_);
        auto it = socks_.find(local);
        if (it == socks_.end()) {
            // Fall back to a socket on the same port bound to any local address we own.
            for (auto& [k, v] : socks_)
                if (k.port == local.port) {
                    it = socks_.find(k);
                    break;
                }
            if (it == socks_.end()) return false;
        }
        fd = it->second->fd;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(remote.port);
    to.sin_addr.s_addr = htonl(remote.addr);
    for (int attempt = 0; attempt < 50; ++attempt) {
        ssize_t n = ::sendto(fd, data.data(), data.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to);
        if (n >= 0) return true;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) return false;
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 2);
    }
    return false;
}

void UdpSockets::close() {
    std::unique_lock lock(mu_);
    for (auto& [k, s] : socks_) {
        boost::system::error_code ec;
        s->sock.close(ec);
    }
    socks_.clear();
}

}  // namespace qkd::daemon
