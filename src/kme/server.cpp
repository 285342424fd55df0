// The KME's listeners: the API acceptor (connections in server_conn.cpp), the sweeper that closes
// connections past their deadline and resumes accepting, and the Prometheus metrics endpoint.
#include "qkd/kme/server.hpp"

#include <sys/resource.h>

#include <atomic>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "qkd/kme/tls.hpp"
#include "server_conn.hpp"

namespace qkd::kme {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Server::Impl {
    asio::io_context& io;
    const Config& cfg;
    KeyManager& km;
    Metrics& metrics;
    std::shared_ptr<detail::ServerShared> shared;
    tcp::acceptor api;
    asio::steady_timer sweeper;
    std::optional<tcp::acceptor> metrics_acc;
    std::atomic<bool> accept_paused{false};  // by max_connections or a lack of descriptors; the sweeper resumes
    std::atomic<std::int64_t> accept_resume_ns{0};
    std::atomic<std::int64_t> last_fd_warning_ns{std::numeric_limits<std::int64_t>::min() / 2};
    std::atomic<std::int64_t> last_cap_warning_ns{std::numeric_limits<std::int64_t>::min() / 2};
    std::atomic<std::int64_t> last_error_warning_ns{std::numeric_limits<std::int64_t>::min() / 2};
    int accept_errors_in_row = 0;  // only the accept handler touches it, and one accept is in flight at a time
    // Connections open at once: kme.max_connections, or fewer if the open-files limit would be
    // reached first (some descriptors stay for the state database, peer links and metrics).
    std::size_t max_conns = 0;
    std::string max_conns_why;

    void set_connection_cap() {
        constexpr std::size_t kKeptFds = 32;
        max_conns = cfg.max_connections;
        max_conns_why = "kme.max_connections";
        rlimit rl{};
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
            const std::size_t by_fds = rl.rlim_cur > kKeptFds + 1 ? static_cast<std::size_t>(rl.rlim_cur) - kKeptFds : 1;
            if (by_fds < max_conns) {
                max_conns = by_fds;
                max_conns_why = fmt::format("the open-files limit {} less {} kept for the state database and peer links", rl.rlim_cur, kKeptFds);
                spdlog::warn("{}: at most {} connections at once ({}); kme.max_connections is {}; raise the limit (ulimit -n, LimitNOFILE=) "
                             "to serve more",
                             cfg.kme_id, max_conns, max_conns_why, cfg.max_connections);
            }
        }
    }

    Impl(asio::io_context& i, const Config& c, KeyManager& k, Metrics& m)
        : io(i), cfg(c), km(k), metrics(m), shared(std::make_shared<detail::ServerShared>(c, k, m, make_server_context(c))), api(i), sweeper(i) {}

    static tcp::endpoint endpoint(const std::string& host, std::uint16_t port) {
        boost::system::error_code ec;
        auto addr = asio::ip::make_address(host, ec);
        if (ec) throw std::runtime_error(fmt::format("listen address \"{}\" is not an IP address", host));
        return {addr, port};
    }

    static void bind(tcp::acceptor& a, const tcp::endpoint& ep) {
        boost::system::error_code ec;
        a.open(ep.protocol(), ec);
        if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) a.bind(ep, ec);
        if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", ep.address().to_string(), ep.port(), ec.message()));
    }

    // Out of file descriptors (or kernel memory), accept fails while the connection stays in the
    // backlog and the listening socket stays readable: accepting again at once would spin.
    static bool out_of_resources(const boost::system::error_code& ec) {
        return ec == asio::error::no_descriptors || ec == boost::system::error_code(ENFILE, boost::system::system_category()) ||
               ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
    }

    std::size_t open_connections() {
        std::lock_guard lk(shared->mu);
        return shared->conns.size();
    }

    // At most one warning of a kind every 10 s: a server out of descriptors would otherwise log one
    // per try.
    static bool warn_now(std::atomic<std::int64_t>& last_ns) {
        const auto now = detail::steady_now_ns();
        auto last = last_ns.load(std::memory_order_relaxed);
        return now - last >= std::chrono::nanoseconds(std::chrono::seconds(10)).count() &&
               last_ns.compare_exchange_strong(last, now, std::memory_order_relaxed);
    }

    // The sweeper accepts again once `wait` has passed and fewer than max_connections are open;
    // meanwhile new connections wait in the kernel's listen backlog.
    void pause_accepting(std::chrono::milliseconds wait) {
        accept_resume_ns.store(detail::steady_now_ns() + std::chrono::nanoseconds(wait).count(), std::memory_order_relaxed);
        accept_paused.store(true);
    }

    void accept_next() {
        api.async_accept(asio::make_strand(io), [this](boost::system::error_code ec, tcp::socket sock) {
            if (ec == asio::error::operation_aborted) return;
            if (ec) {
                if (out_of_resources(ec)) {
                    if (warn_now(last_fd_warning_ns))
                        spdlog::warn("accept: {} ({} connections open); pausing new connections for 100 ms at a time", ec.message(),
                                     open_connections());
                    return pause_accepting(std::chrono::milliseconds(100));
                }
                // One connection failed (the client gave up before it was taken): the next one may
                // be fine. Errors in a row point at the listening socket itself: pause instead of spinning.
                if (++accept_errors_in_row >= 8) {
                    accept_errors_in_row = 0;
                    if (warn_now(last_error_warning_ns)) spdlog::warn("accept: {}, repeatedly; pausing new connections for 100 ms", ec.message());
                    return pause_accepting(std::chrono::milliseconds(100));
                }
                spdlog::debug("accept: {}", ec.message());
                return accept_next();
            }
            accept_errors_in_row = 0;
            std::make_shared<detail::ApiConn>(shared, std::move(sock))->start();
            if (const auto n = open_connections(); n >= max_conns) {
                if (warn_now(last_cap_warning_ns))
                    spdlog::warn("{} connections open ({}); new connections wait in the listen backlog until one closes", n, max_conns_why);
                return pause_accepting(std::chrono::milliseconds(0));
            }
            accept_next();
        });
    }

    void resume_accepting_if_due() {
        if (!accept_paused.load() || detail::steady_now_ns() < accept_resume_ns.load(std::memory_order_relaxed)) return;
        if (open_connections() >= max_conns) return;
        if (accept_paused.exchange(false)) accept_next();
    }

    void sweep() {
        sweeper.expires_after(std::chrono::milliseconds(100));
        sweeper.async_wait([this](boost::system::error_code ec) {
            if (ec) return;
            const auto now = detail::steady_now_ns();
            std::vector<std::shared_ptr<detail::ApiConn>> due;
            {
                std::lock_guard lk(shared->mu);
                for (auto& [c, w] : shared->conns)
                    if (c->deadline_ns.load(std::memory_order_relaxed) <= now)
                        if (auto sp = w.lock()) due.push_back(std::move(sp));
            }
            for (auto& c : due) asio::post(c->sock.get_executor(), [c] { c->expire(); });
            resume_accepting_if_due();
            sweep();
        });
    }

    asio::awaitable<void> metrics_loop() {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket sock = co_await metrics_acc->async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::operation_aborted) co_return;
            if (ec) {
                if (out_of_resources(ec)) {  // as for the API: wait instead of spinning
                    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
                    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                }
                continue;
            }
            asio::co_spawn(sock.get_executor(), metrics_session(std::move(sock)), asio::detached);
        }
    }

    asio::awaitable<void> metrics_session(tcp::socket sock) {
        beast::tcp_stream stream(std::move(sock));
        beast::flat_buffer buf;
        boost::system::error_code ec;
        for (;;) {
            http::request_parser<http::empty_body> parser;
            stream.expires_after(std::chrono::seconds(10));
            co_await http::async_read(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
            auto req = parser.release();
            http::response<http::string_body> res{http::status::ok, req.version()};
            if (req.target() != "/metrics" && req.target() != "/") {
                res.result(http::status::not_found);
                res.body() = "see /metrics\n";
            } else {
                res.set(http::field::content_type, "text/plain; version=0.0.4");
                res.body() = metrics.render(km);
            }
            res.keep_alive(req.keep_alive());
            res.prepare_payload();
            co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
            if (ec || !req.keep_alive()) break;
        }
        stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    }
};

Server::Server(asio::io_context& io, const Config& cfg, KeyManager& km, Metrics& metrics)
    : impl_(std::make_unique<Impl>(io, cfg, km, metrics)) {}
Server::~Server() = default;

void Server::start() {
    Impl::bind(impl_->api, Impl::endpoint(impl_->cfg.listen_host, impl_->cfg.listen_port));
    impl_->set_connection_cap();
    impl_->accept_next();
    impl_->sweep();
    if (impl_->cfg.metrics_host) {
        impl_->metrics_acc.emplace(impl_->io);
        Impl::bind(*impl_->metrics_acc, Impl::endpoint(*impl_->cfg.metrics_host, impl_->cfg.metrics_port));
        asio::co_spawn(impl_->io, impl_->metrics_loop(), asio::detached);
    }
}

std::uint16_t Server::api_port() const { return impl_->api.local_endpoint().port(); }
std::uint16_t Server::metrics_port() const { return impl_->metrics_acc ? impl_->metrics_acc->local_endpoint().port() : 0; }

}  // namespace qkd::kme
