// qkd-esp-tunnel: one end of a static ESP tunnel, no IKE. Installs an inbound and an outbound SA
// and one policy through a qkd::dp backend, runs until SIGINT/SIGTERM, then prints the counters
// and removes everything. Used by the netns tests, the VM xfrm test and bench/esp.
//   --udp-encap PORT: RFC 3948 through a UDP socket this tool owns (as the daemon would).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

#include "qkd/common/encoding.hpp"
#include "qkd/dataplane/dataplane.hpp"

namespace {

std::atomic<bool> g_stop{false};

template <class T>
T must(qkd::dp::DpResult<T> r, const char* what) {
    if (!r) {
        std::fprintf(stderr, "qkd-esp-tunnel: %s: %s\n", what, r.error().message.c_str());
        std::exit(1);
    }
    return std::move(*r);
}
void must(qkd::dp::DpResult<void> r, const char* what) {
    if (!r) {
        std::fprintf(stderr, "qkd-esp-tunnel: %s: %s\n", what, r.error().message.c_str());
        std::exit(1);
    }
}

// KEYMAT for one direction as hex: 16 or 32 key octets followed by the 4-octet salt.
void split_key(std::string& hex, qkd::SecretBytes& key, qkd::SecretBytes& salt) {
    auto raw = qkd::hex_decode(hex);
    qkd::wipe_string(hex);
    if (!raw || (raw->size() != 20 && raw->size() != 36)) {
        std::fprintf(stderr, "qkd-esp-tunnel: key: expected 40 or 72 hex digits (AES key || 4-octet salt)\n");
        std::exit(1);
    }
    key = qkd::SecretBytes(std::span<const std::uint8_t>(raw->data(), raw->size() - 4));
    salt = qkd::SecretBytes(std::span<const std::uint8_t>(raw->data() + raw->size() - 4, 4));
    qkd::secure_zero(raw->data(), raw->size());
}

void print_counters(qkd::dp::DataPlane& dp, const char* name, const qkd::dp::SaId& id) {
    auto c = dp.counters(id);
    if (!c) {
        std::printf("{\"sa\":\"%s\",\"error\":\"%s\"}\n", name, c.error().message.c_str());
        return;
    }
    std::printf("{\"sa\":\"%s\",\"spi\":%u,\"bytes\":%llu,\"packets\":%llu,\"replay\":%llu,\"auth\":%llu,\"other\":%llu,\"seq\":%llu}\n",
                name, id.spi, (unsigned long long)c->bytes, (unsigned long long)c->packets,
                (unsigned long long)c->dropped_replay, (unsigned long long)c->dropped_auth,
                (unsigned long long)c->dropped_other, (unsigned long long)c->seq);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"qkd-esp-tunnel: a static ESP tunnel end through the qkdgate data plane (no IKE)"};
    std::string backend = "userspace", local_outer, remote_outer, local_net, remote_net, key_out, key_in;
    std::string tun = "qkd0", tun_addr;
    std::uint32_t spi_out = 0, spi_in = 0, replay = 128, reqid = 1;
    unsigned mtu = 1400;
    std::uint16_t udp_port = 0;
    bool esn = false;
    app.add_option("--backend", backend, "auto | userspace | xfrm")->capture_default_str();
    app.add_option("--local-outer", local_outer, "our tunnel endpoint (IPv4)")->required();
    app.add_option("--remote-outer", remote_outer, "peer tunnel endpoint (IPv4)")->required();
    app.add_option("--local-net", local_net, "local traffic selector (CIDR)")->required();
    app.add_option("--remote-net", remote_net, "remote traffic selector (CIDR)")->required();
    app.add_option("--spi-out", spi_out, "SPI of the outbound SA")->required();
    app.add_option("--spi-in", spi_in, "SPI of the inbound SA")->required();
    app.add_option("--key-out", key_out, "outbound AES key || salt, hex")->required();
    app.add_option("--key-in", key_in, "inbound AES key || salt, hex")->required();
    app.add_option("--tun", tun, "TUN device (userspace)")->capture_default_str();
    app.add_option("--tun-address", tun_addr, "address for the TUN device (userspace)");
    app.add_option("--mtu", mtu, "TUN MTU (userspace)")->capture_default_str();
    app.add_option("--replay-window", replay, "anti-replay window")->capture_default_str();
    app.add_option("--reqid", reqid, "reqid")->capture_default_str();
    app.add_option("--udp-encap", udp_port, "RFC 3948 UDP encapsulation on this port (both ends)");
    app.add_flag("--esn", esn, "64-bit extended sequence numbers");
    CLI11_PARSE(app, argc, argv);

    using namespace qkd::dp;
    const IpAddress lo = must(IpAddress::parse(local_outer), "--local-outer");
    const IpAddress ro = must(IpAddress::parse(remote_outer), "--remote-outer");
    TrafficSelector ts{must(IpPrefix::parse(local_net), "--local-net"), must(IpPrefix::parse(remote_net), "--remote-net"), 0};

    int udp_fd = -1;
    DataPlaneOptions opt;
    opt.tun_name = tun;
    opt.tun_mtu = mtu;
    if (!tun_addr.empty()) opt.tun_address = must(IpAddress::parse(tun_addr), "--tun-address");
    opt.on_expire = [](const ExpiryEvent& e) {
        std::printf("{\"expire\":%u,\"hard\":%s}\n", e.sa.spi, e.hard ? "true" : "false");
        std::fflush(stdout);
    };
    if (udp_port) {
        udp_fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(udp_port);
        std::memcpy(&a.sin_addr, lo.bytes.data(), 4);
        int sz = 4 << 20;
        (void)::setsockopt(udp_fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
        if (udp_fd < 0 || ::bind(udp_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
            std::perror("qkd-esp-tunnel: UDP socket");
            return 1;
        }
        opt.raw_esp_socket = false;
        opt.udp_sender = [udp_fd](const UdpEndpoint&, const UdpEndpoint& to, std::span<const std::uint8_t> esp) {
            sockaddr_in d{};
            d.sin_family = AF_INET;
            d.sin_port = htons(to.port);
            std::memcpy(&d.sin_addr, to.addr.bytes.data(), 4);
            (void)::sendto(udp_fd, esp.data(), esp.size(), 0, reinterpret_cast<sockaddr*>(&d), sizeof d);
        };
    }
    auto dp = must(make_dataplane(backend, std::move(opt)), "data plane");

    SaSpec out;
    out.direction = Direction::outbound;
    out.spi = spi_out;
    out.reqid = reqid;
    out.outer_src = lo;
    out.outer_dst = ro;
    out.esn = esn;
    out.selectors = {ts};
    split_key(key_out, out.key, out.salt);
    SaSpec in;
    in.direction = Direction::inbound;
    in.spi = spi_in;
    in.reqid = reqid;
    in.outer_src = ro;
    in.outer_dst = lo;
    in.esn = esn;
    in.replay_window = replay;
    in.selectors = {ts};
    split_key(key_in, in.key, in.salt);
    if (udp_port) out.encap = in.encap = UdpEncap{udp_port, udp_port};
    const SaId out_id{Direction::outbound, spi_out, ro}, in_id{Direction::inbound, spi_in, lo};
    must(dp->install_sa(std::move(in)), "install inbound SA");
    must(dp->install_sa(std::move(out)), "install outbound SA");
    PolicySpec pol{ts, reqid, lo, ro, 0};
    must(dp->install_policy(pol), "install policy");

    struct sigaction sa {};
    sa.sa_handler = [](int) { g_stop = true; };
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::printf("ready backend=%s\n", std::string(dp->backend_name()).c_str());
    std::fflush(stdout);

    std::vector<std::uint8_t> buf(65536);
    while (!g_stop) {
        if (udp_fd < 0) {
            ::usleep(100000);
            continue;
        }
        pollfd p{udp_fd, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        sockaddr_in from{};
        socklen_t fl = sizeof from;
        const ssize_t n = ::recvfrom(udp_fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
        if (n <= 4) continue;  // RFC 3948: 0xFF keepalive or a non-ESP marker (IKE) is not ours
        if (buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 0) continue;
        UdpEndpoint src{IpAddress::v4(ntohl(from.sin_addr.s_addr)), ntohs(from.sin_port)};
        (void)dp->handle_udp_esp(std::span(buf.data(), static_cast<std::size_t>(n)), src);
    }
    print_counters(*dp, "out", out_id);
    print_counters(*dp, "in", in_id);
    std::fflush(stdout);
    must(dp->remove_policy(pol), "remove policy");
    must(dp->remove_sa(out_id), "remove outbound SA");
    must(dp->remove_sa(in_id), "remove inbound SA");
    if (udp_fd >= 0) ::close(udp_fd);
    return 0;
}
