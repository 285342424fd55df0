// The userspace backend (DESIGN.md 5).
//   outbound thread: TUN read -> SPD lookup by inner selector -> newest SA of the policy's reqid
//                    -> ESP encrypt in place -> sendmmsg on the raw IPPROTO_ESP socket, or the
//                    daemon's UdpSender for UDP-encapsulated SAs (RFC 3948)
//   inbound thread:  recvmmsg on the raw socket -> SA by SPI -> replay check -> decrypt ->
//                    inner selector check (RFC 4301 5.2) -> TUN write
//   housekeeping:    lifetimes (ExpiryEvent) and delayed removal of rekeyed inbound SAs.
// The control API edits tables under a mutex and publishes an immutable snapshot; the data
// threads pick up a new snapshot when the generation counter changes (one atomic load per batch).
#include "userspace/userspace_backend.hpp"

#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "netlink.hpp"
#include "qkd/dataplane/esp_sa.hpp"
#include "qkd/dataplane/gro.hpp"
#include "qkd/dataplane/gso.hpp"
#include "qkd/dataplane/inner_packet.hpp"
#include "tun/tun_device.hpp"

namespace qkd::dp {

namespace {

constexpr unsigned batch_size = 32;
constexpr std::size_t packet_buf_size = 65536 + 128;
constexpr int socket_buffer_bytes = 4 << 20;
constexpr auto housekeeping_period = std::chrono::milliseconds(200);
constexpr std::size_t udp_hdr_len = 8;

struct PolicyEntry {
    PolicySpec spec;
};

struct Tables {
    std::unordered_map<std::uint32_t, std::shared_ptr<EspSa>> in_by_spi;
    std::unordered_map<std::uint32_t, std::shared_ptr<EspSa>> out_by_reqid;  // newest per reqid
    std::vector<PolicySpec> policies;
};

struct Removal {
    SaId id;
    std::chrono::steady_clock::time_point when;
};

class UserspaceDataPlane final : public DataPlane {
  public:
    explicit UserspaceDataPlane(DataPlaneOptions o) : opt_(std::move(o)) {}
    ~UserspaceDataPlane() override { stop(); }

    DpResult<void> start();
    std::string_view backend_name() const override { return "userspace"; }
    DpResult<void> install_sa(SaSpec spec) override;
    DpResult<void> remove_sa(const SaId& id) override;
    DpResult<void> switch_outbound(const SaId& old_in, const SaId& old_out, SaSpec new_out,
                                   std::chrono::milliseconds linger) override;
    DpResult<void> install_policy(const PolicySpec& p) override;
    DpResult<void> remove_policy(const PolicySpec& p) override;
    DpResult<SaCounters> counters(const SaId& id) override;
    std::size_t handle_udp_esp_batch(std::span<const UdpEspDatagram> batch) override;
    DpResult<void> handle_udp_esp(std::span<const std::uint8_t> esp,
                                  const UdpEndpoint& src) override;
    void flush() override;

  private:
    void stop();
    void publish_locked();
    std::shared_ptr<const Tables> snapshot(std::uint64_t* gen) const;
    void outbound_loop();
    void inbound_loop();
    void housekeeping_loop();
    void deliver_inbound(EspSa& sa, std::span<std::uint8_t> esp);
    std::span<std::uint8_t> open_inbound(EspSa& sa, std::span<std::uint8_t> esp);

    DataPlaneOptions opt_;
    std::unique_ptr<TunDevice> tun_;
    int raw_fd_ = -1;
    int udp_raw_fd_ = -1;   // send-only raw IPPROTO_UDP socket for ESP-in-UDP
    std::mutex udp_in_mu_;  // serialises handle_udp_esp_batch callers (one coalescer)
    std::unique_ptr<TcpCoalescer> udp_gro_;
    int stop_fd_ = -1;
    std::atomic<bool> stopping_{false};
    std::thread out_thread_, in_thread_, hk_thread_;

    mutable std::mutex mu_;                                    // guards everything below
    std::map<std::uint32_t, std::shared_ptr<EspSa>> in_sas_;   // by SPI
    std::map<std::uint32_t, std::shared_ptr<EspSa>> out_sas_;  // by SPI
    std::map<std::uint32_t, std::vector<std::shared_ptr<EspSa>>>
        out_order_;  // reqid -> oldest..newest
    std::vector<PolicySpec> policies_;
    std::map<std::string, int> route_refs_;
    std::vector<Removal> removals_;
    std::shared_ptr<const Tables> tables_ = std::make_shared<Tables>();
    std::atomic<std::uint64_t> generation_{1};
    std::condition_variable hk_cv_;
};

DpResult<void> UserspaceDataPlane::start() {
    auto tun = TunDevice::open(opt_.tun_name, opt_.tun_mtu, opt_.tun_address, opt_.tun_offload,
                               opt_.tun_txqueuelen);
    if (!tun) return Err{tun.error()};
    tun_ = std::move(*tun);
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) return Err{DpError{DpErrc::os_error, "eventfd: " + errno_text(errno)}};
    if (opt_.raw_esp_socket) {
        raw_fd_ = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ESP);
        if (raw_fd_ < 0)
            return Err{DpError{DpErrc::os_error,
                               "raw IPPROTO_ESP socket (needs CAP_NET_RAW): " + errno_text(errno)}};
        int sz = socket_buffer_bytes;
        // Best effort: the *FORCE variants need CAP_NET_ADMIN, the plain ones are capped by sysctl.
        if (::setsockopt(raw_fd_, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
            (void)::setsockopt(raw_fd_, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        if (::setsockopt(raw_fd_, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
            (void)::setsockopt(raw_fd_, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        in_thread_ = std::thread([this] { inbound_loop(); });
        udp_raw_fd_ = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
        if (udp_raw_fd_ >= 0) {
            // Send only: a raw UDP socket would get a copy of every UDP datagram; drop them all.
            sock_filter drop_all = BPF_STMT(BPF_RET | BPF_K, 0);
            sock_fprog prog{1, &drop_all};
            (void)::setsockopt(udp_raw_fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
            int sz = socket_buffer_bytes;
            if (::setsockopt(udp_raw_fd_, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
                (void)::setsockopt(udp_raw_fd_, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        }
    }
    out_thread_ = std::thread([this] { outbound_loop(); });
    hk_thread_ = std::thread([this] { housekeeping_loop(); });
    return {};
}

void UserspaceDataPlane::stop() {
    if (stopping_.exchange(true)) return;
    if (stop_fd_ >= 0) {
        std::uint64_t one = 1;
        (void)!::write(stop_fd_, &one, sizeof one);
    }
    hk_cv_.notify_all();
    for (auto* t : {&out_thread_, &in_thread_, &hk_thread_})
        if (t->joinable()) t->join();
    flush();
    if (raw_fd_ >= 0) ::close(raw_fd_);
    if (udp_raw_fd_ >= 0) ::close(udp_raw_fd_);
    if (stop_fd_ >= 0) ::close(stop_fd_);
    raw_fd_ = stop_fd_ = -1;
    tun_.reset();
}

void UserspaceDataPlane::publish_locked() {
    auto t = std::make_shared<Tables>();
    for (auto& [spi, sa] : in_sas_) t->in_by_spi.emplace(spi, sa);
    for (auto& [reqid, list] : out_order_)
        if (!list.empty()) t->out_by_reqid.emplace(reqid, list.back());
    t->policies = policies_;
    tables_ = std::move(t);
    generation_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const Tables> UserspaceDataPlane::snapshot(std::uint64_t* gen) const {
    std::lock_guard lock(mu_);
    *gen = generation_.load(std::memory_order_acquire);
    return tables_;
}

DpResult<void> UserspaceDataPlane::install_sa(SaSpec spec) {
    if (spec.reqid == 0)
        return Err{DpError{DpErrc::invalid_argument,
                           "SA with reqid 0: expected a reqid != 0 linking it to policies"}};
    if (spec.outer_src.family != IpAddress::Family::v4 ||
        spec.outer_dst.family != IpAddress::Family::v4)
        return Err{DpError{DpErrc::invalid_argument,
                           "outer addresses " + spec.outer_src.to_string() + " -> " +
                               spec.outer_dst.to_string() + ": expected IPv4"}};
    if (spec.direction == Direction::inbound && spec.selectors.empty())
        return Err{DpError{DpErrc::invalid_argument,
                           "inbound SA without traffic selectors: expected at least one (RFC 4301 "
                           "5.2 inner check)"}};
    if (spec.encap && !opt_.udp_sender && udp_raw_fd_ < 0 && spec.direction == Direction::outbound)
        return Err{DpError{DpErrc::invalid_argument,
                           "UDP-encapsulated SA but no UdpSender in DataPlaneOptions: expected the "
                           "daemon's sender"}};
    if (!spec.encap && raw_fd_ < 0)
        return Err{DpError{DpErrc::invalid_argument,
                           "plain ESP SA but raw_esp_socket is off: expected encap"}};
    const auto dir = spec.direction;
    const auto spi = spec.spi;
    const auto reqid = spec.reqid;
    auto sa = EspSa::create(std::move(spec));
    if (!sa) return Err{sa.error()};
    std::shared_ptr<EspSa> shared(std::move(*sa));
    std::lock_guard lock(mu_);
    auto& table = dir == Direction::inbound ? in_sas_ : out_sas_;
    if (table.count(spi))
        return Err{DpError{DpErrc::exists, std::string(to_string(dir)) + " SA with SPI " +
                                               std::to_string(spi) + " is installed already"}};
    table.emplace(spi, shared);
    if (dir == Direction::outbound) out_order_[reqid].push_back(shared);
    publish_locked();
    return {};
}

DpResult<void> UserspaceDataPlane::remove_sa(const SaId& id) {
    std::lock_guard lock(mu_);
    auto& table = id.direction == Direction::inbound ? in_sas_ : out_sas_;
    auto it = table.find(id.spi);
    if (it == table.end())
        return Err{DpError{DpErrc::not_found, std::string(to_string(id.direction)) +
                                                  " SA with SPI " + std::to_string(id.spi) +
                                                  " not installed"}};
    if (id.direction == Direction::outbound) {
        auto& list = out_order_[it->second->spec().reqid];
        std::erase(list, it->second);
        if (list.empty()) out_order_.erase(it->second->spec().reqid);
    }
    table.erase(it);
    publish_locked();
    return {};
}

DpResult<void> UserspaceDataPlane::switch_outbound(const SaId& old_in, const SaId& old_out,
                                                   SaSpec new_out,
                                                   std::chrono::milliseconds linger) {
    // The newest outbound SA of a reqid takes the traffic as soon as it is published.
    if (auto r = install_sa(std::move(new_out)); !r) return r;
    (void)remove_sa(old_out);
    std::lock_guard lock(mu_);
    removals_.push_back({old_in, std::chrono::steady_clock::now() + linger});
    hk_cv_.notify_all();
    return {};
}

DpResult<void> UserspaceDataPlane::install_policy(const PolicySpec& p) {
    if (p.reqid == 0)
        return Err{
            DpError{DpErrc::invalid_argument, "policy with reqid 0: expected the SA's reqid"}};
    std::lock_guard lock(mu_);
    for (const auto& q : policies_)
        if (q.selector == p.selector && q.reqid == p.reqid)
            return Err{DpError{DpErrc::exists, "policy " + p.selector.local.to_string() + " <=> " +
                                                   p.selector.remote.to_string() +
                                                   " is installed already"}};
    const std::string key = p.selector.remote.to_string();
    if (route_refs_[key]++ == 0) {
        if (auto r = tun_->add_route(p.selector.remote); !r) {
            route_refs_.erase(key);
            return r;
        }
    }
    policies_.push_back(p);
    publish_locked();
    return {};
}

DpResult<void> UserspaceDataPlane::remove_policy(const PolicySpec& p) {
    std::lock_guard lock(mu_);
    auto it = std::find_if(policies_.begin(), policies_.end(), [&](const PolicySpec& q) {
        return q.selector == p.selector && q.reqid == p.reqid;
    });
    if (it == policies_.end())
        return Err{DpError{DpErrc::not_found, "policy " + p.selector.local.to_string() + " <=> " +
                                                  p.selector.remote.to_string() +
                                                  " not installed"}};
    policies_.erase(it);
    const std::string key = p.selector.remote.to_string();
    DpResult<void> res;
    if (--route_refs_[key] == 0) {
        route_refs_.erase(key);
        res = tun_->remove_route(p.selector.remote);
    }
    publish_locked();
    return res;
}

DpResult<SaCounters> UserspaceDataPlane::counters(const SaId& id) {
    std::lock_guard lock(mu_);
    auto& table = id.direction == Direction::inbound ? in_sas_ : out_sas_;
    auto it = table.find(id.spi);
    if (it == table.end())
        return Err{DpError{DpErrc::not_found, std::string(to_string(id.direction)) +
                                                  " SA with SPI " + std::to_string(id.spi) +
                                                  " not installed"}};
    return it->second->counters();
}

void UserspaceDataPlane::flush() {
    std::lock_guard lock(mu_);
    if (tun_)
        for (const auto& p : policies_)
            if (route_refs_.count(p.selector.remote.to_string())) {
                (void)tun_->remove_route(p.selector.remote);
                route_refs_.erase(p.selector.remote.to_string());
            }
    policies_.clear();
    in_sas_.clear();
    out_sas_.clear();
    out_order_.clear();
    removals_.clear();
    publish_locked();
}

std::span<std::uint8_t> UserspaceDataPlane::open_inbound(EspSa& sa, std::span<std::uint8_t> esp) {
    std::size_t inner_len = 0;
    std::uint8_t nh = 0;
    if (sa.decrypt_in_place(esp, &inner_len, &nh) != EspStatus::ok) return {};  // counted in the SA
    auto inner = esp.subspan(esp_prefix_len, inner_len);
    auto p = parse_inner_packet(inner);
    // RFC 4301 5.2 step 4: the decrypted packet must match the SA's selectors.
    if (!p || p->next_header != nh || !any_selector_matches_in(sa.spec().selectors, *p)) return {};
    return inner;
}

void UserspaceDataPlane::deliver_inbound(EspSa& sa, std::span<std::uint8_t> esp) {
    auto inner = open_inbound(sa, esp);
    if (inner.empty()) return;
    if (tun_->vnet_hdr()) {
        // The ESP header and IV in front of the inner packet are spent: the (all-zero, "no
        // offload, checksum complete") virtio_net_hdr goes there.
        std::uint8_t* h = inner.data() - vnet_hdr_len;
        std::memset(h, 0, vnet_hdr_len);
        (void)!::write(tun_->fd(), h, inner.size() + vnet_hdr_len);
        return;
    }
    (void)!::write(tun_->fd(), inner.data(), inner.size());
}

std::size_t UserspaceDataPlane::handle_udp_esp_batch(std::span<const UdpEspDatagram> batch) {
    std::lock_guard in_lock(udp_in_mu_);
    if (!tun_->vnet_hdr()) return DataPlane::handle_udp_esp_batch(batch);
    if (!udp_gro_) {
        const int fd = tun_->fd();
        udp_gro_ = std::make_unique<TcpCoalescer>(
            [fd](std::span<const std::uint8_t> w) { (void)!::write(fd, w.data(), w.size()); });
    }
    std::uint64_t gen = 0;
    auto t = snapshot(&gen);
    thread_local std::vector<std::uint8_t> buf(packet_buf_size);
    std::size_t ok = 0;
    for (const auto& d : batch) {
        if (d.esp.size() < esp_min_packet || d.esp.size() > packet_buf_size) continue;
        const std::uint32_t spi = (std::uint32_t{d.esp[0]} << 24) |
                                  (std::uint32_t{d.esp[1]} << 16) | (std::uint32_t{d.esp[2]} << 8) |
                                  d.esp[3];
        auto it = t->in_by_spi.find(spi);
        if (it == t->in_by_spi.end()) continue;
        std::copy(d.esp.begin(), d.esp.end(), buf.begin());
        auto inner = open_inbound(*it->second, std::span(buf.data(), d.esp.size()));
        if (inner.empty()) continue;
        udp_gro_->add(inner);  // copies: buf is free again
        ++ok;
    }
    udp_gro_->flush();
    return ok;
}

DpResult<void> UserspaceDataPlane::handle_udp_esp(std::span<const std::uint8_t> esp,
                                                  const UdpEndpoint&) {
    if (esp.size() < esp_min_packet || esp.size() > packet_buf_size)
        return Err{DpError{
            DpErrc::invalid_argument,
            "ESP-in-UDP payload of " + std::to_string(esp.size()) + " octets: expected 34..65536"}};
    const std::uint32_t spi = (std::uint32_t{esp[0]} << 24) | (std::uint32_t{esp[1]} << 16) |
                              (std::uint32_t{esp[2]} << 8) | esp[3];
    std::shared_ptr<EspSa> sa;
    {
        std::lock_guard lock(mu_);
        auto it = in_sas_.find(spi);
        if (it != in_sas_.end()) sa = it->second;
    }
    if (!sa)
        return Err{DpError{DpErrc::not_found, "ESP-in-UDP for unknown SPI " + std::to_string(spi)}};
    thread_local std::vector<std::uint8_t> buf(packet_buf_size);
    std::copy(esp.begin(), esp.end(), buf.begin());
    deliver_inbound(*sa, std::span(buf.data(), esp.size()));
    return {};
}

void UserspaceDataPlane::outbound_loop() {
    std::vector<std::vector<std::uint8_t>> bufs(batch_size,
                                                std::vector<std::uint8_t>(packet_buf_size));
    std::vector<std::uint8_t> rd(packet_buf_size);
    // Each buffer: udp_hdr_len of headroom (RFC 3948 UDP header), then the ESP packet.
    mmsghdr msgs[batch_size], umsgs[batch_size];
    iovec iovs[batch_size];
    sockaddr_in dsts[batch_size];
    unsigned nesp = 0, nudp = 0;
    std::uint64_t gen = 0;
    std::shared_ptr<const Tables> t = snapshot(&gen);
    const bool vnet = tun_->vnet_hdr();
    const std::size_t hdr = vnet ? vnet_hdr_len : 0;
    const std::size_t max_inner = packet_buf_size - esp_max_overhead - udp_hdr_len;
    unsigned n = 0;

    auto send_all = [](int fd, mmsghdr* m, unsigned count) {
        unsigned sent = 0;
        while (sent < count) {
            const int s = ::sendmmsg(fd, m + sent, count - sent, 0);
            if (s <= 0) break;  // ENOBUFS etc.: drop the rest, TCP recovers
            sent += static_cast<unsigned>(s);
        }
    };
    auto flush = [&] {
        send_all(raw_fd_, msgs, nesp);
        send_all(udp_raw_fd_, umsgs, nudp);
        n = nesp = nudp = 0;
    };
    // The inner packet is in bufs[n] at esp_prefix_len: SPD lookup, encrypt, queue.
    auto emit = [&](std::size_t inner_len) {
        std::uint8_t* b = bufs[n].data() + udp_hdr_len;
        auto p = parse_inner_packet(std::span<const std::uint8_t>(b + esp_prefix_len, inner_len));
        if (!p) return;
        const PolicySpec* pol = nullptr;
        for (const auto& q : t->policies)
            if (selector_matches_out(q.selector, *p)) {
                pol = &q;
                break;
            }
        if (!pol) return;  // routed to the TUN but no policy: drop
        auto sit = t->out_by_reqid.find(pol->reqid);
        if (sit == t->out_by_reqid.end()) return;  // no SA yet (IKE still negotiating)
        EspSa& sa = *sit->second;
        std::size_t len = 0;
        if (sa.encrypt_in_place(std::span(b, packet_buf_size - udp_hdr_len), inner_len,
                                p->next_header, &len) != EspStatus::ok)
            return;
        const auto& spec = sa.spec();
        sockaddr_in& d = dsts[n];
        d = sockaddr_in{};
        d.sin_family = AF_INET;
        std::memcpy(&d.sin_addr, spec.outer_dst.bytes.data(), 4);
        if (spec.encap && udp_raw_fd_ >= 0) {
            // RFC 3948 2.1: UDP header in front of the ESP header; checksum 0 (IPv4).
            std::uint8_t* u = b - udp_hdr_len;
            const std::size_t ulen = len + udp_hdr_len;
            u[0] = static_cast<std::uint8_t>(spec.encap->src_port >> 8);
            u[1] = static_cast<std::uint8_t>(spec.encap->src_port);
            u[2] = static_cast<std::uint8_t>(spec.encap->dst_port >> 8);
            u[3] = static_cast<std::uint8_t>(spec.encap->dst_port);
            u[4] = static_cast<std::uint8_t>(ulen >> 8);
            u[5] = static_cast<std::uint8_t>(ulen);
            u[6] = u[7] = 0;
            iovs[n] = iovec{u, ulen};
            umsgs[nudp] = mmsghdr{};
            umsgs[nudp].msg_hdr.msg_name = &d;
            umsgs[nudp].msg_hdr.msg_namelen = sizeof d;
            umsgs[nudp].msg_hdr.msg_iov = &iovs[n];
            umsgs[nudp].msg_hdr.msg_iovlen = 1;
            ++nudp;
            if (++n == batch_size) flush();
            return;
        }
        if (spec.encap) {
            opt_.udp_sender(UdpEndpoint{spec.outer_src, spec.encap->src_port},
                            UdpEndpoint{spec.outer_dst, spec.encap->dst_port}, std::span(b, len));
            return;
        }
        iovs[n] = iovec{b, len};
        msgs[nesp] = mmsghdr{};
        msgs[nesp].msg_hdr.msg_name = &d;
        msgs[nesp].msg_hdr.msg_namelen = sizeof d;
        msgs[nesp].msg_hdr.msg_iov = &iovs[n];
        msgs[nesp].msg_hdr.msg_iovlen = 1;
        ++nesp;
        if (++n == batch_size) flush();
    };

    pollfd pfd[2] = {{tun_->fd(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    while (!stopping_.load(std::memory_order_relaxed)) {
        if (::poll(pfd, 2, 500) <= 0) continue;
        if (pfd[1].revents) break;
        if (generation_.load(std::memory_order_acquire) != gen) t = snapshot(&gen);
        // The TUN fd is non-blocking: read until EAGAIN or a batch worth of reads.
        for (unsigned reads = 0; reads < batch_size; ++reads) {
            const ssize_t r = ::read(tun_->fd(), rd.data(), std::min(rd.size(), max_inner + hdr));
            if (r <= static_cast<ssize_t>(hdr)) break;
            auto pkt = std::span<std::uint8_t>(rd.data() + hdr, static_cast<std::size_t>(r) - hdr);
            VnetHdr h;
            if (vnet)
                h = VnetHdr::decode(
                    std::span<const std::uint8_t, vnet_hdr_len>(rd.data(), vnet_hdr_len));
            if (h.gso_type != 0) {
                auto count = gso_segment_count(h, pkt);
                if (!count) continue;
                for (std::size_t i = 0; i < *count; ++i) {
                    auto seg = gso_build_segment(
                        h, pkt, i,
                        std::span(bufs[n].data() + udp_hdr_len + esp_prefix_len, max_inner));
                    if (seg) emit(*seg);
                }
                continue;
            }
            if (!finish_partial_checksum(h, pkt)) continue;
            std::memcpy(bufs[n].data() + udp_hdr_len + esp_prefix_len, pkt.data(), pkt.size());
            emit(pkt.size());
        }
        flush();
    }
}

void UserspaceDataPlane::inbound_loop() {
    std::vector<std::vector<std::uint8_t>> bufs(batch_size,
                                                std::vector<std::uint8_t>(packet_buf_size));
    mmsghdr msgs[batch_size];
    iovec iovs[batch_size];
    std::uint64_t gen = 0;
    std::shared_ptr<const Tables> t = snapshot(&gen);
    const int tun_fd = tun_->fd();
    TcpCoalescer gro(
        [tun_fd](std::span<const std::uint8_t> w) { (void)!::write(tun_fd, w.data(), w.size()); });
    const bool vnet = tun_->vnet_hdr();
    pollfd pfd[2] = {{raw_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    while (!stopping_.load(std::memory_order_relaxed)) {
        if (::poll(pfd, 2, 500) <= 0) continue;
        if (pfd[1].revents) break;
        for (unsigned i = 0; i < batch_size; ++i) {
            iovs[i] = iovec{bufs[i].data(), bufs[i].size()};
            msgs[i] = mmsghdr{};
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        const int n = ::recvmmsg(raw_fd_, msgs, batch_size, MSG_DONTWAIT, nullptr);
        if (n <= 0) continue;
        if (generation_.load(std::memory_order_acquire) != gen) t = snapshot(&gen);
        for (int i = 0; i < n; ++i) {
            // A raw IPv4 socket delivers the IP header too (reassembled by the kernel).
            std::span<std::uint8_t> pkt(bufs[i].data(), msgs[i].msg_len);
            if (pkt.size() < 20) continue;
            const std::size_t ihl = (pkt[0] & 0x0f) * 4u;
            if ((pkt[0] >> 4) != 4 || ihl < 20 || ihl > pkt.size()) continue;
            auto esp = pkt.subspan(ihl);
            if (esp.size() < esp_min_packet) continue;
            const std::uint32_t spi = (std::uint32_t{esp[0]} << 24) |
                                      (std::uint32_t{esp[1]} << 16) | (std::uint32_t{esp[2]} << 8) |
                                      esp[3];
            auto it = t->in_by_spi.find(spi);
            if (it == t->in_by_spi.end()) continue;
            if (!vnet) {
                deliver_inbound(*it->second, esp);
                continue;
            }
            auto inner = open_inbound(*it->second, esp);
            if (!inner.empty()) gro.add(inner);
        }
        gro.flush();  // nothing waits beyond the end of a receive batch
    }
}

void UserspaceDataPlane::housekeeping_loop() {
    std::unique_lock lock(mu_);
    while (!stopping_.load()) {
        hk_cv_.wait_for(lock, housekeeping_period);
        if (stopping_.load()) break;
        const auto now = std::chrono::steady_clock::now();
        std::vector<ExpiryEvent> events;
        std::vector<SaId> hard;
        auto scan = [&](auto& table) {
            for (auto& [spi, sa] : table) {
                const auto& s = sa->spec();
                SaId id{s.direction, spi, s.outer_dst};
                if (sa->take_soft_expired()) events.push_back({id, s.reqid, false});
                if (sa->take_hard_expired()) {
                    events.push_back({id, s.reqid, true});
                    hard.push_back(id);
                }
            }
        };
        scan(in_sas_);
        scan(out_sas_);
        std::vector<SaId> due;
        std::erase_if(removals_, [&](const Removal& r) {
            if (r.when > now) return false;
            due.push_back(r.id);
            return true;
        });
        lock.unlock();
        for (const auto& id : due) (void)remove_sa(id);
        for (const auto& id : hard)
            (void)remove_sa(id);  // like the kernel: a hard-expired SA is deleted
        if (opt_.on_expire)
            for (const auto& e : events) opt_.on_expire(e);
        lock.lock();
    }
}

}  // namespace

DpResult<std::unique_ptr<DataPlane>> make_userspace_dataplane(DataPlaneOptions options) {
    auto dp = std::make_unique<UserspaceDataPlane>(std::move(options));
    if (auto r = dp->start(); !r) return Err{r.error()};
    return std::unique_ptr<DataPlane>(std::move(dp));
}

}  // namespace qkd::dp
