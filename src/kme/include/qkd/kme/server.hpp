#pragma once
// The KME's HTTPS server (Boost.Beast over OpenSSL): ETSI 014 API under /api/v1/keys/, KME-to-KME
// reservations under /kme/v1/, and a plain-HTTP Prometheus endpoint on its own loopback port.
// Every read has a timeout and a body limit; connections are kept alive.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http.hpp>

#include <memory>

#include "qkd/kme/config.hpp"
#include "qkd/kme/key_manager.hpp"
#include "qkd/kme/metrics.hpp"

namespace qkd::kme {

// Who called, from the verified client certificate of the connection.
struct Caller {
    std::string sae_id;   // by the configured identity rule; empty if none
    std::string cert_cn;  // for peer KME identification
};

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

class Server {
public:
    Server(boost::asio::io_context& io, const Config& cfg, KeyManager& km, Metrics& metrics);
    ~Server();
    // Binds the API (and metrics) listeners; throws std::runtime_error naming the address on failure.
    void start();
    std::uint16_t api_port() const;
    std::uint16_t metrics_port() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace qkd::kme
