#pragma once
// A Prometheus text endpoint for qkdgated: HTTP/1.1 on 127.0.0.1 only, its own port, off unless
// [daemon] metrics_port is set. `GET /metrics` answers the exposition format 0.0.4 made by
// `render` on the daemon's io_context thread; anything else gets 404 or 405. Bounded (STYLE.md
// habit 12): at most kMaxMetricsClients connections, 8 KiB of request header, no body, 5 s to read
// a request; the connection closes after each answer.
#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "qkd/common/result.hpp"
#include "qkd/daemon/error.hpp"

namespace qkd::daemon {

inline constexpr std::size_t kMaxMetricsClients = 8;
inline constexpr std::size_t kMaxMetricsHeaderBytes = 8 * 1024;
inline constexpr std::chrono::seconds kMetricsReadTimeout{5};

class MetricsServer {
public:
    // Listens on 127.0.0.1:port (port 0: any free port, see port()).
    static Result<std::unique_ptr<MetricsServer>, DaemonError> start(boost::asio::io_context& io, std::uint16_t port,
                                                                     std::function<std::string()> render);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;
    std::uint16_t port() const;
    void stop();

    struct Impl;

private:
    explicit MetricsServer(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

}  // namespace qkd::daemon
