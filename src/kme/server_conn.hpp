#pragma once
// Internal to Server (qkd/kme/server.hpp): one API connection (server_conn.cpp) and what the
// server shares with its connections (server.cpp accepts them and sweeps those past their deadline).
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "qkd/kme/config.hpp"
#include "qkd/kme/http_reader.hpp"
#include "qkd/kme/key_manager.hpp"
#include "qkd/kme/metrics.hpp"
#include "qkd/kme/router.hpp"

namespace qkd::kme::detail {

struct ApiConn;

// What connections need; they may outlive the server by a moment (handlers still queued on the
// event loop when it shuts down), so they share it rather than point into the server.
struct ServerShared {
    ServerShared(const Config& c, KeyManager& k, Metrics& m, boost::asio::ssl::context ctx)
        : cfg(c), km(k), metrics(m), ssl_ctx(std::move(ctx)) {}
    const Config& cfg;
    KeyManager& km;
    Metrics& metrics;
    boost::asio::ssl::context ssl_ctx;
    std::mutex mu;
    std::unordered_map<ApiConn*, std::weak_ptr<ApiConn>> conns;  // open connections, for the sweeper
};

inline std::int64_t steady_now_ns() { return std::chrono::steady_clock::now().time_since_epoch().count(); }

// An API connection. TLS runs over memory BIOs: the socket is read with Asio's reactor (which reads
// at once when data may be there and otherwise waits for epoll, without re-arming it), OpenSSL
// decrypts from and encrypts into memory, and whole flights go out in one write. Each connection
// runs on its own strand; the server's sweeper calls expire() once deadline_ns has passed.
struct ApiConn : std::enable_shared_from_this<ApiConn> {
    using tcp = boost::asio::ip::tcp;
    using Step = void (ApiConn::*)();

    ApiConn(std::shared_ptr<ServerShared> s, tcp::socket so) : sh(std::move(s)), sock(std::move(so)), reader(8192, sh->cfg.max_body_bytes) {}
    ApiConn(const ApiConn&) = delete;
    ApiConn& operator=(const ApiConn&) = delete;
    ~ApiConn();

    void start();   // registers with the server and begins the TLS handshake
    void expire();  // closes the connection if its deadline has passed (no close_notify)

    std::shared_ptr<ServerShared> sh;
    tcp::socket sock;
    std::atomic<std::int64_t> deadline_ns{std::numeric_limits<std::int64_t>::max()};

private:
    void arm(std::chrono::nanoseconds d) { deadline_ns.store(steady_now_ns() + d.count(), std::memory_order_relaxed); }
    void disarm() { deadline_ns.store(std::numeric_limits<std::int64_t>::max(), std::memory_order_relaxed); }

    void flush(Step next);
    void need_input(Step next);
    void on_ssl_wait(int r, Step retry);
    void input_then_handshake() { need_input(&ApiConn::handshake); }
    void input_then_read() { need_input(&ApiConn::read_more); }
    void handshake();
    void next_request();
    void parse();
    void read_more();
    void fail(unsigned status, const std::string& message);
    void dispatch();
    void dispatch_route();
    void respond(Response res);
    void write_out();
    void close();
    void close_now();

    SSL* ssl = nullptr;
    BIO* rbio = nullptr;  // ciphertext from the socket, owned by ssl
    BIO* wbio = nullptr;  // ciphertext for the socket, owned by ssl
    std::array<char, 17 * 1024> net{};  // one TLS record and its header
    RequestReader reader;
    Caller caller;
    std::string out;
    enum class After { NextRequest, Read, Close } after = After::NextRequest;
    bool closed = false, fatal = false;
    bool peer_done = false;         // the client sent close_notify: answer what came before it, then close
    std::uint64_t request_no = 0;   // an answer for an earlier request number is dropped
    std::chrono::steady_clock::time_point t0{};
};

}  // namespace qkd::kme::detail
