#include <utility>

#include "qkd/kme/peer_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <deque>
#include <mutex>

#include "qkd/kme/identity.hpp"
#include "qkd/kme/sync_codec.hpp"

namespace qkd::kme {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// A request queued while every connection is busy goes out with the next batch of the first one
// to finish, so under load batches grow and one round trip serves many keys. When even the newest
// batch in flight has been out longer than kSlowBatch (a long-distance link), another connection
// starts, up to kMaxInFlight, so a request waits for about one round trip, not two. On a LAN a
// second connection only cost CPU: more, smaller batches and more commits on the peer.
constexpr std::size_t kMaxInFlight = 4;
constexpr auto kSlowBatch = std::chrono::milliseconds(2);

class HttpsPeerClient final : public PeerClient, public std::enable_shared_from_this<HttpsPeerClient> {
public:
    HttpsPeerClient(asio::io_context& io, asio::ssl::context& ctx, const PeerConfig& p)
        : ctx_(ctx), peer_(p), strand_(asio::make_strand(io)) {
        // https://HOST:PORT[/]
        std::string rest = p.url.substr(8);
        if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
        auto colon = rest.rfind(':');
        host_ = colon == std::string::npos ? rest : rest.substr(0, colon);
        port_ = colon == std::string::npos ? "443" : rest.substr(colon + 1);
        if (host_.size() > 2 && host_.front() == '[') host_ = host_.substr(1, host_.size() - 2);
    }

    void reserve(SyncRequest req, std::function<void(std::string)> done) override {
        bool start = false;
        {
            std::lock_guard lk(mu_);
            // sync_timeout bounds the whole reservation: time in the queue, connecting and the
            // exchange together, so a slow peer costs a request at most that long.
            queue_.push_back({std::move(req), std::move(done), std::chrono::steady_clock::now() + peer_.sync_timeout});
            // A new sender when none runs, or when every running one is busy with a slow batch.
            if (senders_ == 0 || (senders_ < kMaxInFlight && senders_ == busy_ &&
                                  std::chrono::steady_clock::now() - newest_send_ > kSlowBatch)) {
                ++senders_;
                start = true;
            }
        }
        if (start) asio::co_spawn(strand_, run(shared_from_this()), asio::detached);
    }

private:
    struct Pending {
        SyncRequest req;
        std::function<void(std::string)> done;
        std::chrono::steady_clock::time_point deadline;
    };
    using Stream = beast::ssl_stream<beast::tcp_stream>;
    struct Conn {
        std::unique_ptr<Stream> stream;
        beast::flat_buffer buf;
    };

    asio::awaitable<std::string> connect(Conn& c, std::chrono::steady_clock::time_point deadline) {
        boost::system::error_code ec;
        // Name resolution has no timeout of its own in Asio: a timer cancels it at the deadline.
        auto resolver = std::make_shared<tcp::resolver>(strand_);
        asio::steady_timer limit(strand_);
        limit.expires_at(deadline);
        limit.async_wait([w = std::weak_ptr<tcp::resolver>(resolver)](boost::system::error_code e) {
            if (auto r = w.lock(); r && !e) r->cancel();
        });
        auto results = co_await resolver->async_resolve(host_, port_, asio::redirect_error(asio::use_awaitable, ec));
        limit.cancel();
        if (ec == asio::error::operation_aborted) co_return fmt::format("cannot resolve {} within sync_timeout ({} ms)", host_, peer_.sync_timeout.count());
        if (ec) co_return fmt::format("cannot resolve {}: {}", host_, ec.message());
        c.stream = std::make_unique<Stream>(strand_, ctx_);
        c.buf.clear();
        SSL_set_tlsext_host_name(c.stream->native_handle(), host_.c_str());
        beast::get_lowest_layer(*c.stream).expires_at(deadline);  // connect and TLS handshake
        co_await beast::get_lowest_layer(*c.stream).async_connect(results, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == beast::error::timeout) co_return fmt::format("cannot connect to {} within sync_timeout ({} ms)", peer_.url, peer_.sync_timeout.count());
        if (ec) co_return fmt::format("cannot connect to {}: {}", peer_.url, ec.message());
        beast::get_lowest_layer(*c.stream).socket().set_option(tcp::no_delay(true), ec);
        co_await c.stream->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == beast::error::timeout) co_return fmt::format("no TLS handshake with {} within sync_timeout ({} ms)", peer_.url, peer_.sync_timeout.count());
        if (ec) co_return fmt::format("TLS handshake with {} failed: {}", peer_.url, ec.message());
        // The peer must prove it is the KME we expect, not merely any holder of a CA certificate.
        X509* cert = SSL_get1_peer_certificate(c.stream->native_handle());
        auto names = cert_names(cert);
        X509_free(cert);
        if (names.cn != peer_.kme_id) co_return fmt::format("peer certificate names \"{}\", expected KME ID \"{}\"", names.cn, peer_.kme_id);
        co_return "";
    }

    asio::awaitable<std::string> exchange(Conn& c, const std::vector<SyncRequest>& batch, std::vector<std::string>& results,
                                          std::chrono::steady_clock::time_point deadline) {
        boost::system::error_code ec;
        if (!c.stream) {
            auto e = co_await connect(c, deadline);
            if (!e.empty()) {
                c.stream.reset();
                co_return e;
            }
        }
        http::request<http::string_body> req{http::verb::post, "/kme/v1/reserve", 11};
        req.set(http::field::host, host_);
        req.set(http::field::content_type, "application/json");
        req.keep_alive(true);
        req.body() = encode_sync_batch(batch);
        req.prepare_payload();
        beast::get_lowest_layer(*c.stream).expires_at(deadline);
        co_await http::async_write(*c.stream, req, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == beast::error::timeout) co_return fmt::format("no answer from {} within sync_timeout ({} ms)", peer_.url, peer_.sync_timeout.count());
        if (ec) co_return fmt::format("sending to {} failed: {}", peer_.url, ec.message());
        http::response_parser<http::string_body> parser;
        parser.body_limit(1 << 20);
        co_await http::async_read(*c.stream, c.buf, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == beast::error::timeout) co_return fmt::format("no answer from {} within sync_timeout ({} ms)", peer_.url, peer_.sync_timeout.count());
        if (ec) co_return fmt::format("reading the answer of {} failed: {}", peer_.url, ec.message());
        auto res = parser.release();
        if (res.result() != http::status::ok) co_return fmt::format("{} answered HTTP {}: {}", peer_.url, res.result_int(), res.body().substr(0, 200));
        auto r = decode_sync_results(res.body(), batch.size());
        if (!r) co_return r.error();
        results = std::move(*r);
        if (!res.keep_alive()) c.stream.reset();
        co_return "";
    }

    // An idle keep-alive connection whose peer has closed it (or reset it) reads as EOF or an error
    // without blocking; one with nothing to read is still open.
    static bool still_open(Conn& c) {
        char b;
        const auto fd = beast::get_lowest_layer(*c.stream).socket().native_handle();
        const auto n = ::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }

    // One sender: takes batches from the queue until it is empty, on a connection of its own
    // (reused from the idle list when there is one, returned to it at the end).
    static asio::awaitable<void> run(std::shared_ptr<HttpsPeerClient> self) {
        Conn conn;
        {
            std::lock_guard lk(self->mu_);
            while (!self->idle_.empty() && !conn.stream) {
                conn = std::move(self->idle_.back());
                self->idle_.pop_back();
                if (!still_open(conn)) conn.stream.reset();  // the peer closed it (restart, idle timeout)
            }
        }
        for (;;) {
            std::vector<Pending> batch, late;
            auto deadline = std::chrono::steady_clock::time_point::max();
            {
                std::lock_guard lk(self->mu_);
                const auto now = std::chrono::steady_clock::now();
                while (!self->queue_.empty() && batch.size() < kMaxSyncBatch) {
                    auto& p = self->queue_.front();
                    // Out of time while it waited for a connection (every sender busy with a slow peer).
                    if (p.deadline <= now) late.push_back(std::move(p));
                    else {
                        deadline = std::min(deadline, p.deadline);
                        batch.push_back(std::move(p));
                    }
                    self->queue_.pop_front();
                }
                if (batch.empty()) {
                    --self->senders_;
                    if (conn.stream) self->idle_.push_back(std::move(conn));
                }
                if (!batch.empty()) {
                    ++self->busy_;
                    self->newest_send_ = now;
                }
            }
            for (auto& p : late)
                p.done(fmt::format("no connection to {} became free within sync_timeout ({} ms)", self->peer_.url, self->peer_.sync_timeout.count()));
            if (batch.empty()) co_return;
            std::vector<SyncRequest> reqs;
            reqs.reserve(batch.size());
            for (auto& p : batch) reqs.push_back(p.req);
            std::vector<std::string> results;
            std::string err = co_await self->exchange(conn, reqs, results, deadline);
            {
                std::lock_guard lk(self->mu_);
                --self->busy_;
                if (!err.empty()) {
                    // A broken or late connection is never reused, nor are its idle siblings: they
                    // most likely share its fate (peer restarted or unreachable).
                    conn.stream.reset();
                    self->idle_.clear();
                }
            }
            for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(err.empty() ? results[i] : err);
        }
    }

    asio::ssl::context& ctx_;
    const PeerConfig& peer_;
    asio::strand<asio::io_context::executor_type> strand_;
    std::string host_, port_;
    std::mutex mu_;
    std::deque<Pending> queue_;
    std::vector<Conn> idle_;     // connected, keep-alive, not in use
    std::size_t senders_ = 0;    // running senders
    std::size_t busy_ = 0;       // senders with a batch in flight
    std::chrono::steady_clock::time_point newest_send_{};  // when the newest batch in flight left
};

}  // namespace

std::shared_ptr<PeerClient> make_https_peer_client(asio::io_context& io, asio::ssl::context& ctx, const PeerConfig& peer) {
    return std::make_shared<HttpsPeerClient>(io, ctx, peer);
}

}  // namespace qkd::kme
