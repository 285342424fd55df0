// qkdgated's wiring: engine <-> UDP sockets, engine events -> data plane, timers, control socket.
#include "qkd/daemon/gateway_daemon.hpp"


#include "qkd/common/log.hpp"
#include "qkd/daemon/convert.hpp"

namespace qkd::daemon {

namespace asio = boost::asio;

namespace {
using Fail = Err<DaemonError>;

std::uint32_t v4_of(const ike::IpAddr& a) {
    return (std::uint32_t{a.bytes[0]} << 24) | (std::uint32_t{a.bytes[1]} << 16) | (std::uint32_t{a.bytes[2]} << 8) | a.bytes[3];
}
ike::Endpoint to_ike(const UdpAddr& a) {
    return ike::Endpoint{ike::IpAddr::v4(static_cast<std::uint8_t>(a.addr >> 24), static_cast<std::uint8_t>(a.addr >> 16),
                                         static_cast<std::uint8_t>(a.addr >> 8), static_cast<std::uint8_t>(a.addr)),
                         a.port};
}
std::string spi_hex(std::uint32_t v) { return fmt::format("{:08x}", v); }

// For trace logs: "IKE_AUTH request mid 1" from the RFC 7296 3.1 header (after a non-ESP marker).
std::string ike_summary(std::span<const std::uint8_t> d) {
    if (d.size() >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0) d = d.subspan(4);
    if (d.size() < 28) return "short";
    const unsigned exch = d[18], flags = d[19];
    const unsigned mid = (unsigned{d[20]} << 24) | (unsigned{d[21]} << 16) | (unsigned{d[22]} << 8) | d[23];
    const char* names[] = {"IKE_SA_INIT", "IKE_AUTH", "CREATE_CHILD_SA", "INFORMATIONAL"};
    std::string name = exch >= 34 && exch <= 37 ? names[exch - 34] : "exchange " + std::to_string(exch);
    return fmt::format("{} {} mid {} first payload {}", name, (flags & 0x20) ? "response" : "request", mid, d[16]);
}
}  // namespace

GatewayDaemon::GatewayDaemon(asio::io_context& io, Config cfg, DaemonOptions opt)
    : io_(io), cfg_(std::move(cfg)), opt_(opt), timer_(io), shutdown_timer_(io) {}

GatewayDaemon::~GatewayDaemon() {
    metrics_.reset();
    if (control_) control_->stop();
    engine_.reset();
    dp_.reset();  // stops the data-plane threads before the sockets they send on go away
    if (udp_) udp_->close();
}

Result<void, DaemonError> GatewayDaemon::start() {
    dp::DataPlaneOptions dpo;
    dpo.tun_name = cfg_.daemon.tun_name;
    dpo.udp_sender = [this](const dp::UdpEndpoint& l, const dp::UdpEndpoint& r, std::span<const std::uint8_t> esp) {
        auto a4 = [](const dp::IpAddress& a) {
            return (std::uint32_t{a.bytes[0]} << 24) | (std::uint32_t{a.bytes[1]} << 16) | (std::uint32_t{a.bytes[2]} << 8) | a.bytes[3];
        };
        udp_->send(UdpAddr{a4(l.addr), l.port}, UdpAddr{a4(r.addr), r.port}, esp);
    };
    dpo.on_expire = [this](const dp::ExpiryEvent& ev) {
        asio::post(io_, [this, ev] {
            if (!engine_) return;
            std::uint32_t spi_in = ev.sa.spi;
            if (ev.sa.direction == dp::Direction::outbound) {
                spi_in = 0;
                for (auto& [k, c] : children_)
                    if (c.out.spi == ev.sa.spi) spi_in = k;
                if (!spi_in) return;
            }
            spdlog::info("child SA {}: {} lifetime expired in the data plane", spi_hex(spi_in), ev.hard ? "hard" : "soft");
            engine_->on_child_sa_expired(spi_in, ev.hard);
            arm_timer();
        });
    };
    auto d = dp::make_dataplane(cfg_.daemon.dataplane, std::move(dpo));
    if (!d) return Fail{DaemonError{Errc::dataplane, "data plane \"" + cfg_.daemon.dataplane + "\": " + d.error().message}};
    dp_ = std::move(*d);
    kernel_lifetimes_ = dp_->backend_name() == "xfrm";
    spdlog::info("data plane: {}", dp_->backend_name());

    udp_ = std::make_unique<UdpSockets>(io_, [this](const UdpAddr& l, const UdpAddr& r, std::span<const std::uint8_t> b) { on_udp(l, r, b); });
    if (auto r = start_qkd(); !r) return r;
    engine_ = std::make_unique<ike::Engine>(SystemClock::instance(), SystemRng::instance(), *this, opt_.engine);
    for (auto& g : cfg_.gateways)
        if (auto r = add_gateway(g); !r) return r;
    control_ = std::make_unique<ControlServer>(
        io_, cfg_.daemon.control_socket,
        DeferredControlHandler{[this](const ControlRequest& r, ControlReply reply) { handle_deferred(r, std::move(reply)); }});
    if (auto r = control_->start(); !r) return r;
    spdlog::info("control socket {}", cfg_.daemon.control_socket);
    if (auto r = start_metrics(); !r) return r;
    arm_timer();
    return {};
}

void GatewayDaemon::on_udp(const UdpAddr& local, const UdpAddr& remote, std::span<const std::uint8_t> data) {
    const bool natt = local.port == cfg_.daemon.natt_port;
    switch (demux(data, natt)) {
        case UdpKind::ike:
            spdlog::trace("rx {} bytes from {}:{}: {}", data.size(), ipv4_to_string(remote.addr), remote.port, ike_summary(data));
            engine_->on_datagram(to_ike(local), to_ike(remote), data);
            arm_timer();
            break;
        case UdpKind::esp:
            if (auto r = dp_->handle_udp_esp(data, dp::UdpEndpoint{dp::IpAddress::v4(remote.addr), remote.port}); !r)
                spdlog::debug("ESP-in-UDP from {}:{} dropped: {}", ipv4_to_string(remote.addr), remote.port, r.error().message);
            break;
        case UdpKind::keepalive:
            break;
        case UdpKind::invalid:
            spdlog::debug("UDP datagram of {} bytes from {}:{} is neither IKE nor ESP, dropped", data.size(),
                          ipv4_to_string(remote.addr), remote.port);
            break;
    }
}

void GatewayDaemon::arm_timer() {
    if (!engine_) return;
    auto next = engine_->next_deadline();
    if (next == armed_) return;
    armed_ = next;
    if (!next) {
        timer_.cancel();
        return;
    }
    timer_.expires_at(*next);
    timer_.async_wait([this](boost::system::error_code ec) {
        if (ec == asio::error::operation_aborted || !engine_) return;
        armed_.reset();
        engine_->on_timer();
        arm_timer();
    });
}

void GatewayDaemon::send_datagram(const ike::Endpoint& local, const ike::Endpoint& remote, std::span<const std::uint8_t> bytes) {
    spdlog::trace("tx {} bytes {} -> {}: {}", bytes.size(), local.str(), remote.str(), ike_summary(bytes));
    if (!udp_->send(UdpAddr{v4_of(local.addr), local.port}, UdpAddr{v4_of(remote.addr), remote.port}, bytes))
        spdlog::warn("IKE datagram {} -> {} ({} bytes) could not be sent", local.str(), remote.str(), bytes.size());
}

std::uint32_t GatewayDaemon::reqid_for(const ike::ChildSaKeys& k) {
    std::string key = k.ref.gateway + "|";
    for (auto& t : k.local_ts) key += t.str() + ",";
    key += "|";
    for (auto& t : k.remote_ts) key += t.str() + ",";
    if (auto it = reqids_.find(key); it != reqids_.end()) return it->second;
    std::uint32_t reqid = 0;
    for (std::size_t i = 0; i < cfg_.gateways.size() && !reqid; ++i)
        if (cfg_.gateways[i].name == k.ref.gateway) reqid = static_cast<std::uint32_t>(i + 1);
    for (auto& [other, r] : reqids_)
        if (r == reqid) reqid = 0;  // the gateway's first reqid is taken by another selector set
    if (!reqid) {
        // Above any gateway index (kMaxGateways), so a gateway added by a reload never finds its
        // first reqid taken by a second selector set of another.
        if (next_reqid_ == 0) next_reqid_ = static_cast<std::uint32_t>(kMaxGateways + 1);
        reqid = next_reqid_++;
    }
    reqids_[key] = reqid;
    return reqid;
}

void GatewayDaemon::install_policies(const ike::ChildSaKeys& k, std::uint32_t reqid) {
    auto& installed = policies_[reqid];
    if (!installed.empty()) return;
    auto pols = to_policies(k, reqid);
    if (!pols) {
        spdlog::error("gateway {}: {}", k.ref.gateway, pols.error().message);
        return;
    }
    for (auto& p : *pols) {
        if (auto r = dp_->install_policy(p); !r) {
            spdlog::error("gateway {}: policy {} -> {}: {}", k.ref.gateway, p.selector.local.to_string(), p.selector.remote.to_string(),
                          r.error().message);
            continue;
        }
        installed.push_back(p);
    }
}

// The last child SA of a reqid is gone: its policies and the reqid go too.
void GatewayDaemon::release_reqid(std::uint32_t reqid) {
    for (auto& [k, c] : children_)
        if (c.reqid == reqid) return;
    if (auto it = policies_.find(reqid); it != policies_.end()) {
        for (auto& p : it->second) (void)dp_->remove_policy(p);
        policies_.erase(it);
    }
    std::erase_if(reqids_, [reqid](const auto& e) { return e.second == reqid; });
}

void GatewayDaemon::child_sa_up(const ike::ChildSaKeys& k) {
    const auto reqid = reqid_for(k);
    auto pair = to_sa_pair(k, SaConvertOptions{reqid, kernel_lifetimes_});
    if (!pair) {
        spdlog::error("gateway {}: child SA {}: {}", k.ref.gateway, spi_hex(k.ref.spi_in), pair.error().message);
        release_reqid(reqid);
        return;
    }
    Child c{k.ref.gateway, reqid, dp::SaId{dp::Direction::inbound, k.ref.spi_in, pair->in.outer_dst},
            dp::SaId{dp::Direction::outbound, k.ref.spi_out, pair->out.outer_dst}, std::nullopt, 0};
    if (auto r = dp_->install_sa(std::move(pair->in)); !r) {
        spdlog::error("gateway {}: inbound SA {}: {}", k.ref.gateway, spi_hex(k.ref.spi_in), r.error().message);
        release_reqid(reqid);
        return;
    }
    if (auto r = dp_->install_sa(std::move(pair->out)); !r) {
        spdlog::error("gateway {}: outbound SA {}: {}", k.ref.gateway, spi_hex(k.ref.spi_out), r.error().message);
        (void)dp_->remove_sa(c.in);
        release_reqid(reqid);
        return;
    }
    children_[k.ref.spi_in] = std::move(c);
    install_policies(k, reqid);
    spdlog::info("gateway {}: child SA up, SPIs {} in / {} out, {}", k.ref.gateway, spi_hex(k.ref.spi_in), spi_hex(k.ref.spi_out),
                 k.encap ? "ESP in UDP" : "ESP");
}

// Rekey without loss (RFC 7296 2.8). The new inbound SA is installed at once, so either end may
// start sending on the new SA. The new outbound SA is installed (and so takes over the traffic of
// the reqid) only when the old SA is deleted: the rekey initiator sends the DELETE after it has
// installed its own new inbound SA, so by then both ends can receive on the new pair. The old
// inbound SA lingers a little for packets still in flight. A missing DELETE does not stall the
// switch: it happens after kRekeySwitchTimeout anyway.
namespace {
constexpr std::chrono::seconds kRekeySwitchTimeout{5};
constexpr std::chrono::milliseconds kInboundLinger{2000};
}  // namespace

void GatewayDaemon::child_sa_rekeyed(const ike::ChildSaRef& old_sa, const ike::ChildSaKeys& k) {
    auto it = children_.find(old_sa.spi_in);
    if (it == children_.end()) {
        child_sa_up(k);
        return;
    }
    const auto reqid = it->second.reqid;  // the successor takes over the old SA's traffic
    auto pair = to_sa_pair(k, SaConvertOptions{reqid, kernel_lifetimes_});
    if (!pair) {
        spdlog::error("gateway {}: rekeyed child SA {}: {}", k.ref.gateway, spi_hex(k.ref.spi_in), pair.error().message);
        return;
    }
    Child c{k.ref.gateway, reqid, dp::SaId{dp::Direction::inbound, k.ref.spi_in, pair->in.outer_dst},
            dp::SaId{dp::Direction::outbound, k.ref.spi_out, pair->out.outer_dst}, std::nullopt, 0};
    if (auto r = dp_->install_sa(std::move(pair->in)); !r) {
        spdlog::error("gateway {}: rekey {} -> {}: inbound SA: {}", k.ref.gateway, spi_hex(old_sa.spi_in), spi_hex(k.ref.spi_in),
                      r.error().message);
        return;
    }
    it->second.successor_out = std::move(pair->out);
    it->second.successor_spi_in = k.ref.spi_in;
    children_[k.ref.spi_in] = std::move(c);
    spdlog::info("gateway {}: child SA rekeyed, SPIs {}/{} -> {}/{}", k.ref.gateway, spi_hex(old_sa.spi_in), spi_hex(old_sa.spi_out),
                 spi_hex(k.ref.spi_in), spi_hex(k.ref.spi_out));
    auto t = std::make_shared<asio::steady_timer>(io_, kRekeySwitchTimeout);
    const std::uint32_t old_in = old_sa.spi_in;
    t->async_wait([this, t, old_in](boost::system::error_code ec) {
        if (!ec) switch_to_successor(old_in);
    });
}

void GatewayDaemon::switch_to_successor(std::uint32_t old_spi_in) {
    auto it = children_.find(old_spi_in);
    if (it == children_.end() || !it->second.successor_out) return;
    auto out = std::move(*it->second.successor_out);
    it->second.successor_out.reset();
    const auto gw = it->second.gateway;
    const auto new_out = out.spi;
    if (auto r = dp_->install_sa(std::move(out)); !r)
        spdlog::error("gateway {}: rekey: outbound SA {}: {}", gw, spi_hex(new_out), r.error().message);
    (void)dp_->remove_sa(it->second.out);
}

void GatewayDaemon::remove_later(const dp::SaId& id, std::chrono::milliseconds after) {
    auto t = std::make_shared<asio::steady_timer>(io_, after);
    t->async_wait([this, t, id](boost::system::error_code ec) {
        if (!ec && dp_) (void)dp_->remove_sa(id);
    });
}

void GatewayDaemon::child_sa_down(const ike::ChildSaRef& ref) {
    auto it = children_.find(ref.spi_in);
    if (it == children_.end()) return;
    const bool rekeyed = it->second.successor_spi_in != 0;
    if (rekeyed) {
        switch_to_successor(ref.spi_in);  // no-op when the timeout already switched
        remove_later(it->second.in, kInboundLinger);
    } else {
        (void)dp_->remove_sa(it->second.out);
        (void)dp_->remove_sa(it->second.in);
    }
    auto gw = it->second.gateway;
    const auto reqid = it->second.reqid;
    children_.erase(it);
    release_reqid(reqid);
    spdlog::info("gateway {}: child SA {} / {} {}", gw, spi_hex(ref.spi_in), spi_hex(ref.spi_out), rekeyed ? "retired after rekey" : "down");
}

// Why the engine dropped a datagram, rate-limited (drop_log.hpp): the operator sees more than
// "peer did not answer".
void GatewayDaemon::datagram_dropped(const ike::Endpoint& remote, ike::DropReason reason, std::string_view detail) {
    if (auto line = drop_log_.note(std::chrono::steady_clock::now(), remote, reason, detail)) spdlog::info("{}", *line);
}

void GatewayDaemon::ike_sa_event(const ike::IkeSaInfo& sa, ike::IkeSaEvent ev, std::string_view reason) {
    keep_event(sa, ev, reason);
    const char* what = ev == ike::IkeSaEvent::Up ? "up" : ev == ike::IkeSaEvent::Rekeyed ? "rekeyed" : ev == ike::IkeSaEvent::Down ? "down" : "failed";
    auto lvl = ev == ike::IkeSaEvent::Failed ? spdlog::level::warn : spdlog::level::info;
    spdlog::log(lvl, "gateway {}: IKE SA {:016x}/{:016x} {} ({}, {}{}{}){}{}", sa.gateway, sa.spi_i, sa.spi_r, what, sa.remote.str(),
                sa.remote_id.empty() ? "" : sa.remote_id, sa.remote_id.empty() ? "" : ", ", sa.algorithm, reason.empty() ? "" : ": ",
                reason);
    auto w = waiters_.find(sa.id);
    if (w == waiters_.end()) return;
    w->second.reason = std::string(reason);
    if (ev == ike::IkeSaEvent::Up) {
        // The child SA of IKE_AUTH is handed over right after this event: answer once the
        // engine call has returned.
        if (!w->second.up) asio::post(io_, [this, id = sa.id] { finish_waiter(id); });
        w->second.up = true;
    } else if (ev == ike::IkeSaEvent::Failed || ev == ike::IkeSaEvent::Down) {
        auto reply = std::move(w->second.reply);
        waiters_.erase(w);
        reply(Fail{DaemonError{Errc::engine, "gateway " + sa.gateway + ": IKE SA " + what + ": " + std::string(reason)}});
    }
}

void GatewayDaemon::shutdown(std::chrono::milliseconds grace, std::function<void()> done) {
    if (control_) control_->stop();
    stopping_ = true;  // the DELETEs below are not answered by re-initiation
    for (auto& [name, k] : keeps_) k.timer->cancel();
    if (engine_) {
        std::set<std::string> gateways;  // terminate() deletes every IKE SA of a gateway
        for (auto& sa : engine_->list_ike_sas())
            if (sa.state != ike::IkeSaState::Closed && gateways.insert(sa.gateway).second) (void)engine_->terminate(sa.gateway);
        arm_timer();
    }
    shutdown_done_ = std::move(done);
    shutdown_deadline_ = std::chrono::steady_clock::now() + grace;
    shutdown_poll();
}

// Waits (polling every 50 ms) until every IKE SA is closed or the grace time is over.
void GatewayDaemon::shutdown_poll() {
    bool open = false;
    if (engine_)
        for (auto& sa : engine_->list_ike_sas()) open |= sa.state != ike::IkeSaState::Closed;
    if (!open || std::chrono::steady_clock::now() >= shutdown_deadline_) {
        if (shutdown_done_) asio::post(io_, std::exchange(shutdown_done_, nullptr));
        return;
    }
    shutdown_timer_.expires_after(std::chrono::milliseconds(50));
    shutdown_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) shutdown_poll();
    });
}

}  // namespace qkd::daemon
