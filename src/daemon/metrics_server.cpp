// qkdgated's Prometheus endpoint: a loopback HTTP/1.1 listener that serves one page (see
// metrics_server.hpp for the bounds).
#include "qkd/daemon/metrics_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <optional>

#include "qkd/common/log.hpp"

namespace qkd::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

struct MetricsServer::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io, std::function<std::string()> r) : acceptor(io), render(std::move(r)) {}
    tcp::acceptor acceptor;
    std::function<std::string()> render;
    std::size_t clients = 0;
    bool stopped = false;

    struct Conn : std::enable_shared_from_this<Conn> {
        Conn(tcp::socket s, std::shared_ptr<Impl> o) : stream(std::move(s)), owner(std::move(o)) {}
        ~Conn() { --owner->clients; }
        beast::tcp_stream stream;
        std::shared_ptr<Impl> owner;
        beast::flat_buffer buffer{kMaxMetricsHeaderBytes};
        std::optional<http::request_parser<http::empty_body>> parser;
        http::response<http::string_body> res;

        void read() {
            parser.emplace();
            parser->header_limit(static_cast<std::uint32_t>(kMaxMetricsHeaderBytes));
            parser->body_limit(0);
            stream.expires_after(kMetricsReadTimeout);
            http::async_read(stream, buffer, *parser, [self = shared_from_this()](error_code ec, std::size_t) {
                if (ec) {
                    spdlog::debug("metrics: request dropped: {}", ec.message());
                    return;
                }
                self->answer();
            });
        }
        void answer() {
            const auto& req = parser->get();
            res.version(11);
            res.keep_alive(false);
            res.set(http::field::server, "qkdgated");
            if (req.method() != http::verb::get && req.method() != http::verb::head) {
                res.result(http::status::method_not_allowed);
                res.set(http::field::allow, "GET, HEAD");
                res.body() = "only GET /metrics\n";
            } else if (req.target() != "/metrics") {
                res.result(http::status::not_found);
                res.body() = "not found; the metrics are at /metrics\n";
            } else {
                res.result(http::status::ok);
                res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
                res.body() = owner->render();
            }
            res.prepare_payload();
            if (req.method() == http::verb::head) res.body().clear();
            http::async_write(stream, res, [self = shared_from_this()](error_code, std::size_t) {
                error_code ignored;
                self->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
            });
        }
    };

    void accept() {
        acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket s) {
            if (self->stopped) return;
            if (!ec) {
                if (self->clients >= kMaxMetricsClients) {
                    spdlog::warn("metrics: connection refused: {} clients already connected", kMaxMetricsClients);
                } else {
                    ++self->clients;
                    std::make_shared<Conn>(std::move(s), self)->read();
                }
            } else if (ec == asio::error::operation_aborted) {
                return;
            }
            self->accept();
        });
    }
};

MetricsServer::MetricsServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsServer::~MetricsServer() { stop(); }

Result<std::unique_ptr<MetricsServer>, DaemonError> MetricsServer::start(asio::io_context& io, std::uint16_t port,
                                                                         std::function<std::string()> render) {
    auto impl = std::make_shared<Impl>(io, std::move(render));
    error_code ec;
    // Loopback only: the page names gateways, SAE IDs and key counts, nothing an outsider needs.
    const tcp::endpoint ep(asio::ip::make_address_v4("127.0.0.1"), port);
    impl->acceptor.open(ep.protocol(), ec);
    if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) impl->acceptor.bind(ep, ec);
    if (!ec) impl->acceptor.listen(static_cast<int>(kMaxMetricsClients), ec);
    if (ec)
        return Err{DaemonError{Errc::socket, "metrics endpoint 127.0.0.1:" + std::to_string(port) +
                                                  ": cannot listen: " + ec.message() +
                                                  "; expected a free port ([daemon] metrics_port)"}};
    impl->accept();
    spdlog::info("metrics: Prometheus text on http://127.0.0.1:{}/metrics", impl->acceptor.local_endpoint().port());
    return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

std::uint16_t MetricsServer::port() const {
    error_code ec;
    auto ep = impl_->acceptor.local_endpoint(ec);
    return ec ? 0 : ep.port();
}

void MetricsServer::stop() {
    if (!impl_ || impl_->stopped) return;
    impl_->stopped = true;
    error_code ignored;
    impl_->acceptor.close(ignored);
}

}  // namespace qkd::daemon
