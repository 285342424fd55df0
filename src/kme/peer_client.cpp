#include <utility>

#include "qkd/kme/peer_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

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
            queue_.push_back({std::move(req), std::move(done)});
            if (!running_) running_ = start = true;
        }
        if (start) asio::co_spawn(strand_, run(shared_from_this()), asio::detached);
    }

private:
    struct Pending {
        SyncRequest req;
        std::function<void(std::string)> done;
    };
    using Stream = beast::ssl_stream<beast::tcp_stream>;

    asio::awaitable<std::string> connect() {
        boost::system::error_code ec;
        tcp::resolver resolver(strand_);
        auto results = co_await resolver.async_resolve(host_, port_, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return fmt::format("cannot resolve {}: {}", host_, ec.message());
        stream_ = std::make_unique<Stream>(strand_, ctx_);
        SSL_set_tlsext_host_name(stream_->native_handle(), host_.c_str());
        beast::get_lowest_layer(*stream_).expires_after(peer_.sync_timeout);
        co_await beast::get_lowest_layer(*stream_).async_connect(results, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return fmt::format("cannot connect to {}: {}", peer_.url, ec.message());
        beast::get_lowest_layer(*stream_).socket().set_option(tcp::no_delay(true), ec);
        co_await stream_->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return fmt::format("TLS handshake with {} failed: {}", peer_.url, ec.message());
        // The peer must prove it is the KME we expect, not merely any holder of a CA certificate.
        X509* cert = SSL_get1_peer_certificate(stream_->native_handle());
        auto names = cert_names(cert);
        X509_free(cert);
        if (names.cn != peer_.kme_id) co_return fmt::format("peer certificate names \"{}\", expected KME ID \"{}\"", names.cn, peer_.kme_id);
        co_return "";
    }

    asio::awaitable<std::string> exchange(const std::vector<SyncRequest>& batch, std::vector<std::string>& results) {
        boost::system::error_code ec;
        if (!stream_) {
            auto e = co_await connect();
            if (!e.empty()) {
                stream_.reset();
                co_return e;
            }
        }
        http::request<http::string_body> req{http::verb::post, "/kme/v1/reserve", 11};
        req.set(http::field::host, host_);
        req.set(http::field::content_type, "application/json");
        req.keep_alive(true);
        req.body() = encode_sync_batch(batch);
        req.prepare_payload();
        beast::get_lowest_layer(*stream_).expires_after(peer_.sync_timeout);
        co_await http::async_write(*stream_, req, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return fmt::format("sending to {} failed: {}", peer_.url, ec.message());
        http::response_parser<http::string_body> parser;
        parser.body_limit(1 << 20);
        co_await http::async_read(*stream_, buf_, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == beast::error::timeout) co_return fmt::format("no answer from {} within {} ms", peer_.url, peer_.sync_timeout.count());
        if (ec) co_return fmt::format("reading the answer of {} failed: {}", peer_.url, ec.message());
        auto res = parser.release();
        if (res.result() != http::status::ok) co_return fmt::format("{} answered HTTP {}: {}", peer_.url, res.result_int(), res.body().substr(0, 200));
        auto r = decode_sync_results(res.body(), batch.size());
        if (!r) co_return r.error();
        results = std::move(*r);
        if (!res.keep_alive()) stream_.reset();
        co_return "";
    }

    static asio::awaitable<void> run(std::shared_ptr<HttpsPeerClient> self) {
        for (;;) {
            std::vector<Pending> batch;
            {
                std::lock_guard lk(self->mu_);
                while (!self->queue_.empty() && batch.size() < kMaxSyncBatch) {
                    batch.push_back(std::move(self->queue_.front()));
                    self->queue_.pop_front();
                }
                if (batch.empty()) {
                    self->running_ = false;
                    co_return;
                }
            }
            std::vector<SyncRequest> reqs;
            reqs.reserve(batch.size());
            for (auto& p : batch) reqs.push_back(p.req);
            std::vector<std::string> results;
            std::string err = co_await self->exchange(reqs, results);
            if (!err.empty()) self->stream_.reset();  // a broken or late connection is never reused
            for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(err.empty() ? results[i] : err);
        }
    }

    asio::ssl::context& ctx_;
    const PeerConfig& peer_;
    asio::strand<asio::io_context::executor_type> strand_;
    std::string host_, port_;
    std::unique_ptr<Stream> stream_;
    beast::flat_buffer buf_;
    std::mutex mu_;
    std::deque<Pending> queue_;
    bool running_ = false;
};

}  // namespace

std::shared_ptr<PeerClient> make_https_peer_client(asio::io_context& io, asio::ssl::context& ctx, const PeerConfig& peer) {
    return std::make_shared<HttpsPeerClient>(io, ctx, peer);
}

}  // namespace qkd::kme
