// qkd-esp-tunnel: one end of a static ESP tunnel, no IKE. Installs an inbound and an outbound SA
// and one policy through a qkd::dp backend, runs until SIGINT/SIGTERM, then prints the counters
// and removes everything. Used by the netns tests, the VM xfrm test and bench/esp.
//   --udp-encap PORT: RFC 3948 through a UDP socket this tool owns (as the daemon would); with the
//                     xfrm backend the socket gets UDP_ENCAP_ESPINUDP so the kernel decapsulates.
//   SIGUSR1: rekey step 1, install the next inbound SA (SPI + 0x100, key XOR 0x5a);
//   SIGUSR2: rekey step 2, switch outbound to the next SA, drop the old ones (switch_outbound).
//   Both ends derive the same next keys, so a test can rekey both without IKE.
#include <arpa/inet.h>
#include <linux/udp.h>
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
std::atomic<int> g_rekey_in{0}, g_rekey_out{0};
constexpr std::uint32_t rekey_spi_step = 0x100;
constexpr std::uint8_t rekey_key_xor = 0x5a;

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
qkd::SecretBytes next_key(const qkd::SecretBytes& k) {
    auto n = k.clone();
    for (std::size_t i = 0; i < n.size(); ++i) n[i] ^= rekey_key_xor;
    return n;
}

void split_key(std::string& hex, qkd::SecretBytes& key, qkd::SecretBytes& salt) {
    auto raw = qkd::hex_decode(hex);
    qkd::wipe_string(hex);
    if (!raw || (raw->size() != 20 && raw->size() != 36)) {
        std::fprintf(
            stderr,
            "qkd-esp-tunnel: key: expected 40 or 72 hex digits (AES key || 4-octet salt)\n");
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
    std::printf(
        "{\"sa\":\"%s\",\"spi\":%u,\"bytes\":%llu,\"packets\":%llu,\"replay\":%llu,\"auth\":%llu,"
        "\"other\":%llu,\"seq\":%llu}\n",
        name, id.spi, (unsigned long long)c->bytes, (unsigned long long)c->packets,
        (unsigned long long)c->dropped_replay, (unsigned long long)c->dropped_auth,
        (unsigned long long)c->dropped_other, (unsigned long long)c->seq);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 2 && std::string_view(argv[1]) == "--probe") {  // exit 0 when the kernel has ESP
        std::string why;
        const bool ok = qkd::dp::kernel_has_esp(&why);
        std::printf("kernel ESP rfc4106(gcm(aes)): %s%s%s\n", ok ? "yes" : "no", ok ? "" : ": ",
                    why.c_str());
        return ok ? 0 : 1;
    }
    CLI::App app{"qkd-esp-tunnel: a static ESP tunnel end through the qkdgate data plane (no IKE)"};
    std::string backend = "userspace", local_outer, remote_outer, local_net, remote_net, key_out,
                key_in;
    std::string tun = "qkd0", tun_addr;
    std::uint32_t spi_out = 0, spi_in = 0, replay = 128, reqid = 1;
    unsigned mtu = 1400;
    std::uint16_t udp_port = 0;
    bool esn = false, no_offload = false;
    std::uint64_t soft_packets = 0, hard_packets = 0;
    unsigned linger_ms = 1000;
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
    app.add_flag("--no-offload", no_offload,
                 "TUN without IFF_VNET_HDR/TSO (one read per inner packet)");
    app.add_option("--soft-packets", soft_packets, "soft packet lifetime (expire event)");
    app.add_option("--hard-packets", hard_packets, "hard packet lifetime");
    app.add_option("--linger-ms", linger_ms, "old inbound SA kept this long after a rekey")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    using namespace qkd::dp;
    const IpAddress lo = must(IpAddress::parse(local_outer), "--local-outer");
    const IpAddress ro = must(IpAddress::parse(remote_outer), "--remote-outer");
    TrafficSelector ts{must(IpPrefix::parse(local_net), "--local-net"),
                       must(IpPrefix::parse(remote_net), "--remote-net"), 0};

    int udp_fd = -1;
    DataPlaneOptions opt;
    opt.tun_name = tun;
    opt.tun_mtu = mtu;
    opt.tun_offload = !no_offload;
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
        if (backend == "xfrm") {
            int type = UDP_ENCAP_ESPINUDP;  // RFC 3948: the kernel takes ESP out of this socket
            if (::setsockopt(udp_fd, IPPROTO_UDP, UDP_ENCAP, &type, sizeof type) < 0) {
                std::perror("qkd-esp-tunnel: UDP_ENCAP");
                return 1;
            }
        }
        opt.raw_esp_socket = false;
        opt.udp_sender = [udp_fd](const UdpEndpoint&, const UdpEndpoint& to,
                                  std::span<const std::uint8_t> esp) {
            sockaddr_in d{};
            d.sin_family = AF_INET;
            d.sin_port = htons(to.port);
            std::memcpy(&d.sin_addr, to.addr.bytes.data(), 4);
            (void)::sendto(udp_fd, esp.data(), esp.size(), 0, reinterpret_cast<sockaddr*>(&d),
                           sizeof d);
        };
    }
    auto dp = must(make_dataplane(backend, std::move(opt)), "data plane");

    qkd::SecretBytes k_out, s_out, k_in, s_in;
    split_key(key_out, k_out, s_out);
    split_key(key_in, k_in, s_in);
    // Generation g of the SA pair: SPIs + g * 0x100, keys XOR 0x5a applied g times.
    auto make_spec = [&](Direction d, unsigned gen) {
        SaSpec s;
        s.direction = d;
        const bool out = d == Direction::outbound;
        s.spi = (out ? spi_out : spi_in) + gen * rekey_spi_step;
        s.reqid = reqid;
        s.outer_src = out ? lo : ro;
        s.outer_dst = out ? ro : lo;
        s.esn = esn;
        s.replay_window = replay;
        s.selectors = {ts};
        s.key = (out ? k_out : k_in).clone();
        s.salt = (out ? s_out : s_in).clone();
        for (unsigned g = 0; g < gen; ++g) s.key = next_key(s.key);
        s.soft.packets = soft_packets;
        s.hard.packets = hard_packets;
        if (udp_port) s.encap = UdpEncap{udp_port, udp_port};
        return s;
    };
    auto id_of = [&](Direction d, unsigned gen) {
        return d == Direction::outbound ? SaId{d, spi_out + gen * rekey_spi_step, ro}
                                        : SaId{d, spi_in + gen * rekey_spi_step, lo};
    };
    unsigned gen_out = 0, gen_in = 0;  // current outbound generation, newest inbound generation
    must(dp->install_sa(make_spec(Direction::inbound, 0)), "install inbound SA");
    must(dp->install_sa(make_spec(Direction::outbound, 0)), "install outbound SA");
    PolicySpec pol{ts, reqid, lo, ro, 0};
    must(dp->install_policy(pol), "install policy");

    struct sigaction sa {};
    sa.sa_handler = [](int) { g_stop = true; };
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = [](int) { ++g_rekey_in; };
    sigaction(SIGUSR1, &sa, nullptr);
    sa.sa_handler = [](int) { ++g_rekey_out; };
    sigaction(SIGUSR2, &sa, nullptr);
    std::printf("ready backend=%s\n", std::string(dp->backend_name()).c_str());
    std::fflush(stdout);

    std::vector<std::uint8_t> buf(65536 * 32);
    while (!g_stop) {
        if (g_rekey_in.load() > 0) {
            --g_rekey_in;
            ++gen_in;
            must(dp->install_sa(make_spec(Direction::inbound, gen_in)),
                 "rekey: install new inbound SA");
            std::printf("rekey-in gen=%u spi=%u\n", gen_in, id_of(Direction::inbound, gen_in).spi);
            std::fflush(stdout);
        }
        if (g_rekey_out.load() > 0 && gen_out < gen_in) {
            --g_rekey_out;
            must(dp->switch_outbound(id_of(Direction::inbound, gen_out),
                                     id_of(Direction::outbound, gen_out),
                                     make_spec(Direction::outbound, gen_out + 1),
                                     std::chrono::milliseconds(linger_ms)),
                 "rekey: switch outbound");
            ++gen_out;
            std::printf("rekey-out gen=%u spi=%u\n", gen_out,
                        id_of(Direction::outbound, gen_out).spi);
            std::fflush(stdout);
        }
        if (udp_fd < 0) {
            ::usleep(50000);
            continue;
        }
        pollfd p{udp_fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        // One recvmmsg batch -> one handle_udp_esp_batch (TCP segments coalesced per batch).
        constexpr unsigned batch = 32;
        mmsghdr msgs[batch];
        iovec iovs[batch];
        sockaddr_in from[batch];
        for (unsigned k = 0; k < batch; ++k) {
            iovs[k] = iovec{buf.data() + k * 65536, 65536};
            msgs[k] = mmsghdr{};
            msgs[k].msg_hdr.msg_iov = &iovs[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
            msgs[k].msg_hdr.msg_name = &from[k];
            msgs[k].msg_hdr.msg_namelen = sizeof from[k];
        }
        const int n = ::recvmmsg(udp_fd, msgs, batch, MSG_DONTWAIT, nullptr);
        if (n <= 0) continue;
        std::vector<DataPlane::UdpEspDatagram> esp;
        for (int k = 0; k < n; ++k) {
            const std::uint8_t* d = buf.data() + k * 65536;
            const std::size_t len = msgs[k].msg_len;
            // RFC 3948 2.2/2.3: a 0xFF keepalive or a non-ESP marker (IKE) is not ours.
            if (len <= 4 || (d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0)) continue;
            esp.push_back(
                {std::span(d, len), UdpEndpoint{IpAddress::v4(ntohl(from[k].sin_addr.s_addr)),
                                                ntohs(from[k].sin_port)}});
        }
        (void)dp->handle_udp_esp_batch(esp);
    }
    print_counters(*dp, "out", id_of(Direction::outbound, gen_out));
    print_counters(*dp, "in", id_of(Direction::inbound, gen_in));
    if (gen_in > 0) {  // the previous inbound SA: removed after the linger time
        auto old = dp->counters(id_of(Direction::inbound, gen_in - 1));
        std::printf("{\"sa\":\"in-old\",\"present\":%s}\n", old ? "true" : "false");
    }
    std::fflush(stdout);
    must(dp->remove_policy(pol), "remove policy");
    must(dp->remove_sa(id_of(Direction::outbound, gen_out)), "remove outbound SA");
    for (unsigned g = 0; g <= gen_in; ++g) (void)dp->remove_sa(id_of(Direction::inbound, g));
    if (udp_fd >= 0) ::close(udp_fd);
    return 0;
}
