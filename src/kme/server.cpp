#include <utility>

#include "qkd/kme/server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "qkd/common/encoding.hpp"
#include "qkd/kme/identity.hpp"
#include "qkd/kme/router.hpp"
#include "qkd/kme/tls.hpp"

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
    asio::ssl::context ssl_ctx;
    tcp::acceptor api;
    std::optional<tcp::acceptor> metrics_acc;

    Impl(asio::io_context& i, const Config& c, KeyManager& k, Metrics& m)
        : io(i), cfg(c), km(k), metrics(m), ssl_ctx(make_server_context(c)), api(i) {}

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

    asio::awaitable<void> accept_loop() {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket sock = co_await api.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                if (ec == asio::error::operation_aborted) co_return;
                spdlog::warn("accept: {}", ec.message());
                continue;
            }
            sock.set_option(tcp::no_delay(true), ec);
            asio::co_spawn(sock.get_executor(), session(std::move(sock)), asio::detached);
        }
    }

    asio::awaitable<void> session(tcp::socket sock) {
        boost::system::error_code ec;
        const auto peer = sock.remote_endpoint(ec);
        beast::ssl_stream<beast::tcp_stream> stream(std::move(sock), ssl_ctx);
        beast::get_lowest_layer(stream).expires_after(cfg.request_timeout);
        co_await stream.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
        metrics.tls_handshake(!ec);
        if (ec) {
            spdlog::debug("TLS handshake with {} failed: {}", peer.address().to_string(), ec.message());
            co_return;
        }
        Caller caller;
        {
            X509* cert = SSL_get1_peer_certificate(stream.native_handle());
            auto names = cert_names(cert);
            X509_free(cert);
            caller.cert_cn = names.cn;
            caller.sae_id = sae_id_from_cert(cfg, names).value_or("");
        }
        beast::flat_buffer buf;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(cfg.max_body_bytes);
            parser.header_limit(8192);
            beast::get_lowest_layer(stream).expires_after(cfg.request_timeout);
            co_await http::async_read(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
            if (ec == http::error::body_limit) {
                HttpResponse res{http::status::payload_too_large, 11};
                res.set(http::field::content_type, "application/json");
                res.body() = fmt::format(R"({{"message":"request body exceeds {} bytes"}})", cfg.max_body_bytes);
                res.keep_alive(false);
                res.prepare_payload();
                metrics.record(Endpoint::Other, 413, {});
                co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
                break;
            }
            if (ec) break;  // closed, timed out or malformed: drop the connection
            const auto t0 = std::chrono::steady_clock::now();
            HttpRequest req = parser.release();
            auto routed = co_await route(std::move(req), caller, km);
            metrics.record(routed.endpoint, static_cast<int>(routed.response.result_int()), std::chrono::steady_clock::now() - t0);
            const bool keep = routed.response.keep_alive();
            co_await http::async_write(stream, routed.response, asio::redirect_error(asio::use_awaitable, ec));
            wipe_string(routed.response.body());  // may hold Base64 key material
            if (ec || !keep) break;
        }
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(1));
        co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
    }

    asio::awaitable<void> metrics_loop() {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket sock = co_await metrics_acc->async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::operation_aborted) co_return;
            if (ec) continue;
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
    asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
    if (impl_->cfg.metrics_host) {
        impl_->metrics_acc.emplace(impl_->io);
        Impl::bind(*impl_->metrics_acc, Impl::endpoint(*impl_->cfg.metrics_host, impl_->cfg.metrics_port));
        asio::co_spawn(impl_->io, impl_->metrics_loop(), asio::detached);
    }
}

std::uint16_t Server::api_port() const { return impl_->api.local_endpoint().port(); }
std::uint16_t Server::metrics_port() const { return impl_->metrics_acc ? impl_->metrics_acc->local_endpoint().port() : 0; }

}  // namespace qkd::kme
