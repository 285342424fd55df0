#include <utility>

#include "qkd/kme/server.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <sys/resource.h>

#include <array>
#include <atomic>
#include <iterator>
#include <limits>
#include <mutex>
#include <unordered_map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "qkd/common/encoding.hpp"
#include "qkd/kme/identity.hpp"
#include "qkd/common/openssl_error.hpp"
#include "qkd/etsi014/codec.hpp"
#include "qkd/kme/http_reader.hpp"
#include "qkd/kme/router.hpp"
#include "qkd/kme/tls.hpp"

namespace qkd::kme {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Server::Impl {
    // What connections need; they may outlive the server by a moment (handlers still queued on
    // the event loop when it shuts down), so they share it rather than point into Impl.
    struct Conn;
    struct Shared {
        Shared(const Config& c, KeyManager& k, Metrics& m, asio::ssl::context ctx) : cfg(c), km(k), metrics(m), ssl_ctx(std::move(ctx)) {}
        const Config& cfg;
        KeyManager& km;
        Metrics& metrics;
        asio::ssl::context ssl_ctx;
        std::mutex mu;
        std::unordered_map<Conn*, std::weak_ptr<Conn>> conns;  // open connections, for the sweeper
    };
    asio::io_context& io;
    const Config& cfg;
    KeyManager& km;
    Metrics& metrics;
    std::shared_ptr<Shared> shared;
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
        : io(i), cfg(c), km(k), metrics(m), shared(std::make_shared<Shared>(c, k, m, make_server_context(c))), api(i), sweeper(i) {}

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

    // ---- API connections. TLS runs over memory BIOs: the socket is read with Asio's reactor
    // (which reads at once when data may be there and otherwise waits for epoll, without re-arming
    // it), OpenSSL decrypts from and encrypts into memory, and whole flights go out in one write.
    // Each connection runs on its own strand; a sweeper closes connections past their deadline.
    struct Conn : std::enable_shared_from_this<Conn> {
        using Step = void (Conn::*)();
        std::shared_ptr<Shared> sh;
        tcp::socket sock;
        SSL* ssl = nullptr;
        BIO* rbio = nullptr;  // ciphertext from the socket, owned by ssl
        BIO* wbio = nullptr;  // ciphertext for the socket, owned by ssl
        std::array<char, 17 * 1024> net{};  // one TLS record and its header
        RequestReader reader;
        Caller caller;
        std::string out;
        enum class After { NextRequest, Read, Close } after = After::NextRequest;
        bool closed = false, fatal = false;
        bool peer_done = false;
        std::uint64_t request_no = 0;  // an answer for an earlier request number is dropped  // the client sent close_notify: answer what came before it, then close
        std::chrono::steady_clock::time_point t0{};
        std::atomic<std::int64_t> deadline_ns{std::numeric_limits<std::int64_t>::max()};

        Conn(std::shared_ptr<Shared> s, tcp::socket so) : sh(std::move(s)), sock(std::move(so)), reader(8192, sh->cfg.max_body_bytes) {}
        ~Conn() {
            if (ssl) SSL_free(ssl);
            wipe_string(out);
            std::lock_guard lk(sh->mu);
            sh->conns.erase(this);
        }

        static std::int64_t now_ns() { return std::chrono::steady_clock::now().time_since_epoch().count(); }
        void arm(std::chrono::nanoseconds d) { deadline_ns.store(now_ns() + d.count(), std::memory_order_relaxed); }
        void disarm() { deadline_ns.store(std::numeric_limits<std::int64_t>::max(), std::memory_order_relaxed); }

        void start() {
            boost::system::error_code ec;
            sock.set_option(tcp::no_delay(true), ec);
            sock.non_blocking(true, ec);
            ssl = SSL_new(sh->ssl_ctx.native_handle());
            rbio = BIO_new(BIO_s_mem());
            wbio = BIO_new(BIO_s_mem());
            if (ec || !ssl || !rbio || !wbio) {
                BIO_free(rbio);
                BIO_free(wbio);
                return close();
            }
            BIO_set_mem_eof_return(rbio, -1);  // empty means "more to come", not end of stream
            SSL_set_bio(ssl, rbio, wbio);
            SSL_set_accept_state(ssl);
            {
                std::lock_guard lk(sh->mu);
                sh->conns.emplace(this, weak_from_this());
            }
            arm(sh->cfg.request_timeout);
            handshake();
        }

        // Sends what OpenSSL wrote to wbio, then runs `next`. Usually one non-blocking send; a
        // full socket buffer waits for the reactor.
        void flush(Step next) {
            char* p = nullptr;
            const long n = BIO_get_mem_data(wbio, &p);
            if (n <= 0) return ((*this).*next)();
            boost::system::error_code ec;
            const std::size_t sent = sock.write_some(asio::buffer(p, static_cast<std::size_t>(n)), ec);
            if (!ec && sent == static_cast<std::size_t>(n)) {
                (void)BIO_reset(wbio);
                return ((*this).*next)();
            }
            if (ec && ec != asio::error::would_block) return close_now();
            // The rest stays in wbio until written: nothing else touches the TLS state meanwhile.
            asio::async_write(sock, asio::buffer(p + sent, static_cast<std::size_t>(n) - sent),
                              [self = shared_from_this(), next](boost::system::error_code ec2, std::size_t) {
                                  if (ec2 || self->closed) return self->close_now();
                                  (void)BIO_reset(self->wbio);
                                  ((*self).*next)();
                              });
        }

        // More ciphertext from the socket into rbio, then `next`.
        void need_input(Step next) {
            sock.async_read_some(asio::buffer(net), [self = shared_from_this(), next](boost::system::error_code ec, std::size_t n) {
                if (ec || self->closed) return self->close_now();
                if (BIO_write(self->rbio, self->net.data(), static_cast<int>(n)) != static_cast<int>(n)) return self->close_now();
                ((*self).*next)();
            });
        }

        // After an SSL call that returned r <= 0: wait for input, or give up on the connection.
        void on_ssl_wait(int r, Step retry) {
            const int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ) return flush(retry == &Conn::handshake ? &Conn::input_then_handshake : &Conn::input_then_read);
            fatal = e != SSL_ERROR_ZERO_RETURN;  // no close_notify after a fatal error
            ERR_clear_error();
            close();
        }
        void input_then_handshake() { need_input(&Conn::handshake); }
        void input_then_read() { need_input(&Conn::read_more); }

        void handshake() {
            ERR_clear_error();  // SSL_get_error reads this thread's queue: nothing stale in it
            const int r = SSL_do_handshake(ssl);
            if (r == 1) {
                sh->metrics.tls_handshake(true);
                X509* cert = SSL_get1_peer_certificate(ssl);
                auto names = cert_names(cert);
                X509_free(cert);
                caller.cert_cn = names.cn;
                caller.sae_id = sae_id_from_cert(sh->cfg, names).value_or("");
                return flush(&Conn::next_request);  // the server's last flight (session tickets)
            }
            if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) {
                sh->metrics.tls_handshake(false);
                spdlog::debug("TLS handshake failed: {}", qkd::openssl_errors());
                return flush(&Conn::close);  // the alert, if any
            }
            on_ssl_wait(r, &Conn::handshake);
        }

        void next_request() {
            arm(sh->cfg.request_timeout);  // idle keep-alive and the request's arrival
            parse();
        }

        void parse() {
            auto o = reader.parse();
            if (o.state == RequestReader::State::Done) return dispatch();
            if (o.state == RequestReader::State::Error) return fail(o.status, o.message);
            if (reader.continue_due()) {
                out = "HTTP/1.1 100 Continue\r\n\r\n";
                after = After::Read;
                return write_out();
            }
            read_more();
        }

        void read_more() {
            if (peer_done) return close();
            bool got = false;
            int r = 0;
            for (;;) {
                auto room = reader.prepare();
                ERR_clear_error();
                r = SSL_read(ssl, room.data(), static_cast<int>(std::min<std::size_t>(room.size(), 1 << 30)));
                if (r <= 0) break;
                reader.commit(static_cast<std::size_t>(r));
                got = true;
            }
            if (got) {
                const int e = SSL_get_error(ssl, r);
                if (e == SSL_ERROR_WANT_READ) return parse();
                if (e == SSL_ERROR_ZERO_RETURN) {  // a request and close_notify in one flight
                    peer_done = true;
                    return parse();
                }
            }
            on_ssl_wait(r, &Conn::read_more);
        }

        void fail(unsigned status, const std::string& message) {
            Response res;
            res.status = status;
            res.keep_alive = false;
            res.body = etsi014::encode(etsi014::ErrorBody{message, {}});
            sh->metrics.record(Endpoint::Other, static_cast<int>(status), {});
            respond(std::move(res));
        }

        void dispatch() {
            disarm();  // the key manager bounds its own work (peer timeout)
            t0 = std::chrono::steady_clock::now();
            // The router and the key manager answer problems with a response; anything thrown
            // (out of memory, a bug) costs this request a 500, never the process.
            try {
                dispatch_route();
            } catch (const std::exception& e) {
                spdlog::error("request failed: {}", e.what());
                ++request_no;  // should the key manager still answer it: ignored
                fail(500, "internal error; see the KME's log");
            }
        }

        void dispatch_route() {
            const std::uint64_t no = ++request_no;
            route(reader.take(), caller, sh->km, [self = shared_from_this(), no](Routed r) {
                auto ex = self->sock.get_executor();
                asio::post(ex, [self = std::move(self), r = std::move(r), no]() mutable {
                    if (self->closed || self->request_no != no) return wipe_string(r.response.body);
                    self->sh->metrics.record(r.endpoint, static_cast<int>(r.response.status), std::chrono::steady_clock::now() - self->t0);
                    self->respond(std::move(r.response));
                });
            });
        }

        void respond(Response res) {
            if (closed) return wipe_string(res.body);
            const auto reason = http::obsolete_reason(static_cast<http::status>(res.status));
            out.clear();
            fmt::format_to(std::back_inserter(out), "HTTP/1.{} {} {}\r\nServer: qkd-kme\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                           res.version == 10 ? 0 : 1, res.status, std::string_view(reason.data(), reason.size()), res.body.size());
            if (res.allow) fmt::format_to(std::back_inserter(out), "Allow: {}\r\n", res.allow);
            if (!res.keep_alive && res.version != 10) out += "Connection: close\r\n";
            if (res.keep_alive && res.version == 10) out += "Connection: keep-alive\r\n";
            out += "\r\n";
            out += res.body;
            wipe_string(res.body);  // may hold Base64 key material
            after = res.keep_alive ? After::NextRequest : After::Close;
            arm(sh->cfg.request_timeout);
            write_out();
        }

        void write_out() {
            // Into wbio in one go (a memory BIO takes everything), then out to the socket.
            ERR_clear_error();
            const int r = SSL_write(ssl, out.data(), static_cast<int>(out.size()));
            wipe_string(out);
            if (r <= 0) {
                fatal = true;
                ERR_clear_error();
                return close();
            }
            switch (after) {
                case After::NextRequest: return flush(&Conn::next_request);
                case After::Read: return flush(&Conn::read_more);
                case After::Close: return flush(&Conn::close);
            }
        }

        // Closes after a last close_notify (best effort, never waits).
        void close() {
            if (closed) return;
            ERR_clear_error();
            if (ssl && !fatal && SSL_is_init_finished(ssl) && SSL_shutdown(ssl) >= 0) {
                char* p = nullptr;
                const long n = BIO_get_mem_data(wbio, &p);
                boost::system::error_code ec;
                if (n > 0) sock.write_some(asio::buffer(p, static_cast<std::size_t>(n)), ec);
            }
            close_now();
        }

        void close_now() {
            if (closed) return;
            closed = true;
            disarm();
            ERR_clear_error();
            boost::system::error_code ec;
            sock.shutdown(tcp::socket::shutdown_both, ec);
            sock.close(ec);
            wipe_string(out);
            std::lock_guard lk(sh->mu);
            sh->conns.erase(this);
        }

        void expire() {
            if (!closed && now_ns() >= deadline_ns.load(std::memory_order_relaxed)) close_now();  // no close_notify for a peer that timed out
        }
    };

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
        const auto now = Conn::now_ns();
        auto last = last_ns.load(std::memory_order_relaxed);
        return now - last >= std::chrono::nanoseconds(std::chrono::seconds(10)).count() &&
               last_ns.compare_exchange_strong(last, now, std::memory_order_relaxed);
    }

    // The sweeper accepts again once `wait` has passed and fewer than max_connections are open;
    // meanwhile new connections wait in the kernel's listen backlog.
    void pause_accepting(std::chrono::milliseconds wait) {
        accept_resume_ns.store(Conn::now_ns() + std::chrono::nanoseconds(wait).count(), std::memory_order_relaxed);
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
            std::make_shared<Conn>(shared, std::move(sock))->start();
            if (const auto n = open_connections(); n >= max_conns) {
                if (warn_now(last_cap_warning_ns))
                    spdlog::warn("{} connections open ({}); new connections wait in the listen backlog until one closes", n, max_conns_why);
                return pause_accepting(std::chrono::milliseconds(0));
            }
            accept_next();
        });
    }

    void resume_accepting_if_due() {
        if (!accept_paused.load() || Conn::now_ns() < accept_resume_ns.load(std::memory_order_relaxed)) return;
        if (open_connections() >= max_conns) return;
        if (accept_paused.exchange(false)) accept_next();
    }

    void sweep() {
        sweeper.expires_after(std::chrono::milliseconds(100));
        sweeper.async_wait([this](boost::system::error_code ec) {
            if (ec) return;
            const auto now = Conn::now_ns();
            std::vector<std::shared_ptr<Conn>> due;
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
