// ETSI 014 client over Boost.Beast + OpenSSL: connection pool, deadlines, retries, identity checks.
#include "qkd/sae/client.hpp"

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <vector>

#include "qkd/common/encoding.hpp"
#include "qkd/common/secret.hpp"
#include "qkd/etsi014/model.hpp"
#include "qkd/sae/answer.hpp"

namespace qkd::sae {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

namespace {

enum class Kind { status, enc_keys, dec_keys };

std::chrono::microseconds since(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t);
}

struct Connection {
    Connection(const net::any_io_executor& ex, net::ssl::context& ctx) : stream(ex, ctx) {}
    beast::ssl_stream<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    TlsInfo tls;
    Clock::time_point idle_since{};
};

// One attempt's outcome.
struct Attempt {
    HttpAnswer answer;
    TlsInfo tls;
    std::chrono::microseconds connect_time{0};
    std::chrono::microseconds round_trip{0};
    bool reused = false;
};
struct AttemptFail {
    Error err;
    bool sent = false;  // some of the request was written
};

// Wipes the whole flat_buffer storage (it may have held a Base64 key).
void wipe_buffer(beast::flat_buffer& b) {
    b.consume(b.size());
    auto mb = b.prepare(b.capacity());
    qkd::secure_zero(mb.data(), mb.size());
}

bool still_open(Connection& c) {
    auto& sock = beast::get_lowest_layer(c.stream).socket();
    if (!sock.is_open() || c.buffer.size() != 0 || SSL_pending(c.stream.native_handle()) > 0) return false;
    if (Clock::now() - c.idle_since > kMaxIdleTime) return false;
    char b;
    const ssize_t n = ::recv(sock.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    // 0: the KME closed; >0: unsolicited bytes on an idle HTTP connection (an alert or
    // close_notify): either way do not send a request on it.
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::string ec_text(const error_code& ec) { return ec.message() + " [" + std::string(ec.category().name()) + ":" + std::to_string(ec.value()) + "]"; }

}  // namespace

struct Client::Impl {
    net::any_io_executor ex;
    Profile profile;
    net::ssl::context ssl_ctx;
    std::vector<unsigned char> pin_der;
    std::vector<std::unique_ptr<Connection>> idle;
    std::size_t in_flight = 0;

    Impl(net::any_io_executor e, Profile p, SslCtxPtr ctx, std::vector<unsigned char> pin)
        : ex(std::move(e)), profile(std::move(p)), ssl_ctx(ctx.release()), pin_der(std::move(pin)) {}

    std::unique_ptr<Connection> take_idle() {
        while (!idle.empty()) {
            auto c = std::move(idle.back());
            idle.pop_back();
            if (still_open(*c)) return c;
            error_code ignored;
            beast::get_lowest_layer(c->stream).socket().close(ignored);
        }
        return nullptr;
    }

    void put_idle(std::unique_ptr<Connection> c) {
        c->idle_since = Clock::now();
        if (idle.size() >= kMaxIdleConnections) {
            error_code ignored;
            beast::get_lowest_layer(idle.front()->stream).socket().close(ignored);
            idle.erase(idle.begin());
        }
        idle.push_back(std::move(c));
    }

    AttemptFail fail(Errc code, std::string msg, bool sent) { return AttemptFail{Error(code, std::move(msg)), sent}; }

    AttemptFail io_fail(const error_code& ec, Clock::time_point deadline, std::string_view step, bool sent) {
        if (ec == beast::error::timeout || Clock::now() >= deadline)
            return fail(Errc::timeout,
                        "no answer from " + profile.kme_url.text + " within the timeout of " +
                            std::to_string(profile.timeout.count()) + " ms (during " + std::string(step) + ")",
                        sent);
        return fail(Errc::transport, std::string(step) + " with " + profile.kme_url.text + " failed: " + ec_text(ec), sent);
    }

    net::awaitable<qkd::Result<std::unique_ptr<Connection>, AttemptFail>> connect(Clock::time_point deadline) {
        auto c = std::make_unique<Connection>(ex, ssl_ctx);
        auto& tcp_stream = beast::get_lowest_layer(c->stream);
        error_code ec;
        const auto& url = profile.kme_url;
        std::vector<tcp::endpoint> endpoints;
        if (url.host_is_ip) {
            endpoints.emplace_back(net::ip::make_address(url.host), url.port);
        } else {
            auto resolver = std::make_shared<tcp::resolver>(ex);
            auto timer = std::make_shared<net::steady_timer>(ex, deadline);
            timer->async_wait([resolver](const error_code& e) {
                if (!e) resolver->cancel();
            });
            auto results = co_await resolver->async_resolve(url.host, std::to_string(url.port),
                                                            net::redirect_error(net::use_awaitable, ec));
            timer->cancel();
            if (ec) {
                if (Clock::now() >= deadline) co_return qkd::Err{io_fail(ec, deadline, "name resolution", false)};
                co_return qkd::Err{fail(Errc::resolve, "cannot resolve KME host \"" + url.host + "\": " + ec_text(ec), false)};
            }
            for (const auto& r : results) endpoints.push_back(r.endpoint());
        }
        tcp_stream.expires_at(deadline);
        if (!profile.source_address) {
            co_await tcp_stream.async_connect(endpoints, net::redirect_error(net::use_awaitable, ec));
        } else {
            // Bound to the profile's source address: each endpoint of the same family gets a fresh
            // socket bound before connect (the range form of async_connect reopens unbound sockets).
            const auto src = net::ip::make_address(*profile.source_address);
            ec = net::error::address_family_not_supported;
            for (const auto& ep : endpoints) {
                if (ep.address().is_v4() != src.is_v4()) continue;
                auto& sock = tcp_stream.socket();
                error_code ignored;
                sock.close(ignored);
                sock.open(ep.protocol(), ec);
                if (!ec) sock.bind(tcp::endpoint(src, 0), ec);
                if (ec) {
                    co_return qkd::Err{fail(Errc::connect, "cannot bind the connection to " + url.host_header() +
                                                               " to source_address " + *profile.source_address +
                                                               ": " + ec_text(ec), false)};
                }
                co_await tcp_stream.async_connect(ep, net::redirect_error(net::use_awaitable, ec));
                if (!ec || ec == beast::error::timeout || Clock::now() >= deadline) break;
            }
        }
        if (ec) {
            if (ec == beast::error::timeout || Clock::now() >= deadline)
                co_return qkd::Err{io_fail(ec, deadline, "TCP connect", false)};
            co_return qkd::Err{fail(Errc::connect, "cannot connect to " + url.host_header() + ": " + ec_text(ec), false)};
        }
        auto host = set_expected_host(c->stream.native_handle(), profile);
        if (!host) co_return qkd::Err{AttemptFail{host.error(), false}};
        ERR_clear_error();
        co_await c->stream.async_handshake(net::ssl::stream_base::client, net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            if (ec == beast::error::timeout || Clock::now() >= deadline)
                co_return qkd::Err{io_fail(ec, deadline, "TLS handshake", false)};
            co_return qkd::Err{fail(Errc::tls,
                                    "TLS handshake with " + url.host_header() + " failed: " +
                                        handshake_failure_text(c->stream.native_handle(), ec_text(ec)),
                                    false)};
        }
        auto peer = check_peer(c->stream.native_handle(), profile, pin_der);
        if (!peer) co_return qkd::Err{AttemptFail{peer.error(), false}};
        c->tls = std::move(*peer);
        co_return c;
    }

    net::awaitable<qkd::Result<Attempt, AttemptFail>> attempt(const HttpRequest& req, Clock::time_point deadline,
                                                               bool fresh) {
        Attempt out;
        std::unique_ptr<Connection> c = fresh ? nullptr : take_idle();
        out.reused = c != nullptr;
        if (!c) {
            const auto t0 = Clock::now();
            auto made = co_await connect(deadline);
            if (!made) co_return qkd::Err{std::move(made.error())};
            c = std::move(*made);
            out.connect_time = since(t0);
        }
        out.tls = c->tls;

        http::request<http::string_body> r{req.post ? http::verb::post : http::verb::get, req.target, 11};
        r.set(http::field::host, profile.kme_url.host_header());
        r.set(http::field::user_agent, "qkdgate-sae/0.1");
        r.set(http::field::accept, "application/json");
        if (req.post) {
            r.set(http::field::content_type, "application/json");
            r.body() = req.body;
        }
        r.keep_alive(true);
        r.prepare_payload();

        error_code ec;
        auto& tcp_stream = beast::get_lowest_layer(c->stream);
        tcp_stream.expires_at(deadline);
        const auto t1 = Clock::now();
        co_await http::async_write(c->stream, r, net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return qkd::Err{io_fail(ec, deadline, "sending the request", true)};

        http::response_parser<http::string_body> parser;
        parser.body_limit(qkd::etsi014::kMaxBodyBytes);
        parser.header_limit(kMaxHeaderBytes);
        co_await http::async_read(c->stream, c->buffer, parser, net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            wipe_buffer(c->buffer);
            qkd::wipe_string(parser.get().body());
            if (ec == http::error::body_limit || ec == http::error::header_limit)
                co_return qkd::Err{fail(Errc::bad_answer,
                                        "the KME answer exceeds the limit (" + ec.message() + "); expected at most " +
                                            std::to_string(qkd::etsi014::kMaxBodyBytes) + " body bytes",
                                        true)};
            if (ec.category() == make_error_code(http::error::bad_target).category() && ec != http::error::end_of_stream &&
                ec != http::error::partial_message)
                co_return qkd::Err{fail(Errc::bad_answer, "the KME answer is not valid HTTP/1.1: " + ec.message(), true)};
            co_return qkd::Err{io_fail(ec, deadline, "reading the answer", true)};
        }
        out.round_trip = since(t1);
        auto& res = parser.get();
        out.answer.status = static_cast<int>(res.result_int());
        out.answer.content_type = std::string(res[http::field::content_type]);
        out.answer.body = std::move(res.body());
        const bool reusable = res.keep_alive() && c->buffer.size() == 0;
        wipe_buffer(c->buffer);
        if (reusable) {
            tcp_stream.expires_never();
            put_idle(std::move(c));
        } else {
            error_code ignored;
            tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
            tcp_stream.socket().close(ignored);
        }
        co_return out;
    }

    // Runs attempts until one answers or the retry policy (see client.hpp) says stop.
    net::awaitable<qkd::Result<Attempt, Error>> call(const HttpRequest& req, Kind kind, bool fresh, int& attempts) {
        const auto deadline = Clock::now() + profile.timeout;
        auto backoff = kBackoffInitial;
        for (attempts = 1;; ++attempts) {
            auto a = co_await attempt(req, deadline, fresh || attempts > 1);
            bool retry = false;
            std::optional<Error> err;
            if (a) {
                // ETSI 014 503 "Error on server side": transient by nature; safe to repeat for status
                // and enc_keys (nothing was delivered), but a dec_keys is never sent twice.
                if (a->answer.status == 503 && kind != Kind::dec_keys && attempts < kMaxAttempts) {
                    retry = true;
                    err = http_error(a->answer);
                } else {
                    co_return std::move(*a);
                }
            } else {
                AttemptFail& f = a.error();
                err = std::move(f.err);
                const bool transient = err->code == Errc::transport || err->code == Errc::connect || err->code == Errc::resolve;
                if (kind == Kind::dec_keys && f.sent) {
                    // ETSI 014 5.4: the KME removes delivered keys. The request reached the KME, the
                    // answer did not reach us: report it, the caller decides.
                    err->key_may_be_consumed = true;
                    if (err->code == Errc::transport) err->code = Errc::answer_lost;
                    err->message += "; the dec_keys request was sent and its answer lost: the key may be "
                                    "consumed on the KME (not retried)";
                } else {
                    // status, enc_keys, or a dec_keys that never left: repeating cannot lose a key (an
                    // enc_keys whose answer was lost merely wastes the key the KME reserved for it).
                    retry = transient && attempts < kMaxAttempts;
                }
            }
            if (retry) {
                const auto wake = Clock::now() + backoff;
                if (wake < deadline) {
                    net::steady_timer t(ex, wake);
                    error_code ignored;
                    co_await t.async_wait(net::redirect_error(net::use_awaitable, ignored));
                    backoff = std::min(backoff * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffCap));
                    continue;
                }
            }
            if (!a) {
                err->attempts = attempts;
                co_return qkd::Err{std::move(*err)};
            }
            co_return std::move(*a);  // a 503 we stopped retrying: reported by the processor
        }
    }

    template <class T, class Process>
    net::awaitable<CallResult<T>> run(qkd::Result<HttpRequest, Error> req, Kind kind, bool fresh, Process process) {
        if (!req) co_return qkd::Err{std::move(req.error())};
        if (in_flight >= kMaxInFlight)
            co_return qkd::Err{Error(Errc::busy, std::to_string(in_flight) + " calls already in flight on profile \"" +
                                                     profile.name + "\"; expected at most " + std::to_string(kMaxInFlight))};
        ++in_flight;
        const auto t0 = Clock::now();
        int attempts = 1;
        auto a = co_await call(*req, kind, fresh, attempts);
        --in_flight;
        if (!a) co_return qkd::Err{std::move(a.error())};
        auto value = process(a->answer);
        if (!value) {
            Error e = std::move(value.error());
            e.attempts = attempts;
            co_return qkd::Err{std::move(e)};
        }
        Answer<T> out{std::move(*value), std::move(a->tls), a->connect_time, a->round_trip, since(t0), a->reused, attempts};
        co_return out;
    }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

qkd::Result<std::shared_ptr<Client>, Error> Client::create(net::any_io_executor ex, Profile profile) {
    auto ctx = make_client_context(profile);
    if (!ctx) return qkd::Err{std::move(ctx.error())};
    auto pin = load_pin(profile);
    if (!pin) return qkd::Err{std::move(pin.error())};
    auto impl = std::make_unique<Impl>(std::move(ex), std::move(profile), std::move(*ctx), std::move(*pin));
    return std::shared_ptr<Client>(new Client(std::move(impl)));
}

const Profile& Client::profile() const { return impl_->profile; }
std::size_t Client::idle_connections() const { return impl_->idle.size(); }

void Client::close_idle() {
    for (auto& c : impl_->idle) {
        error_code ignored;
        beast::get_lowest_layer(c->stream).socket().close(ignored);
    }
    impl_->idle.clear();
}

net::awaitable<StatusResult> Client::get_status(std::string slave_SAE_ID, bool fresh_connection) {
    auto self = shared_from_this();  // keeps the client alive across suspensions
    auto& p = impl_->profile;
    StatusExpect expect{p.local_sae_id, slave_SAE_ID, p.kme_id};
    co_return co_await impl_->run<qkd::etsi014::Status>(
        build_status_request(p.kme_url.base_path, slave_SAE_ID), Kind::status, fresh_connection,
        [&](HttpAnswer& a) { return process_status_answer(a, expect); });
}

net::awaitable<KeysResult> Client::get_key(GetKeyParams params) {
    auto self = shared_from_this();
    auto& p = impl_->profile;
    const int bits = params.size_bits.value_or(p.key_size);
    KeysExpect expect{static_cast<std::size_t>(std::max(params.number, 0)), static_cast<std::size_t>(std::max(bits, 0)), {}};
    co_return co_await impl_->run<qkd::etsi014::KeyContainer>(
        build_get_key_request(p.kme_url.base_path, params, bits), Kind::enc_keys, false,
        [&](HttpAnswer& a) { return process_keys_answer(a, expect); });
}

net::awaitable<KeysResult> Client::get_key_with_ids(GetKeyWithIdsParams params) {
    auto self = shared_from_this();
    auto& p = impl_->profile;
    const int bits = params.size_bits.value_or(p.key_size);
    if (bits <= 0 || bits % 8 != 0)
        co_return qkd::Err{Error(Errc::config, "expected key size " + std::to_string(bits) +
                                                   " bits is invalid; expected a positive multiple of 8")};
    KeysExpect expect{params.key_IDs.size(), static_cast<std::size_t>(bits), params.key_IDs};
    co_return co_await impl_->run<qkd::etsi014::KeyContainer>(
        build_get_key_with_ids_request(p.kme_url.base_path, params), Kind::dec_keys, false,
        [&](HttpAnswer& a) { return process_keys_answer(a, expect); });
}

void Client::async_get_status(std::string slave_SAE_ID, std::function<void(StatusResult)> done) {
    net::co_spawn(
        impl_->ex,
        [self = shared_from_this(), id = std::move(slave_SAE_ID), done = std::move(done)]() -> net::awaitable<void> {
            done(co_await self->get_status(id));
        },
        net::detached);
}

void Client::async_get_key(GetKeyParams params, std::function<void(KeysResult)> done) {
    net::co_spawn(
        impl_->ex,
        [self = shared_from_this(), params = std::move(params), done = std::move(done)]() -> net::awaitable<void> {
            done(co_await self->get_key(params));
        },
        net::detached);
}

void Client::async_get_key_with_ids(GetKeyWithIdsParams params, std::function<void(KeysResult)> done) {
    net::co_spawn(
        impl_->ex,
        [self = shared_from_this(), params = std::move(params), done = std::move(done)]() -> net::awaitable<void> {
            done(co_await self->get_key_with_ids(params));
        },
        net::detached);
}

}  // namespace qkd::sae
