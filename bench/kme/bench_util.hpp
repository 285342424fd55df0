#pragma once
// Shared by the KME load generators (kme_bench.cpp: the pair against nginx; relay_bench.cpp: the
// pair through a relay against the direct pair): mTLS keep-alive connections driven by coroutines,
// and run(), which measures an operation on N connections for a given time.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <cstdlib>
#include <sstream>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>


namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

struct Identity {
    std::string cert, key;
};

// One TLS client context per identity, shared by the connections of all threads (an SSL_CTX may
// be used from several threads). Session resumption is off, so every connect is a full handshake.
struct ClientCtx {
    asio::ssl::context ctx{asio::ssl::context::tls_client};
    ClientCtx(const std::string& ca, const Identity& id) {
        ctx.load_verify_file(ca);
        ctx.use_certificate_chain_file(id.cert);
        ctx.use_private_key_file(id.key, asio::ssl::context::pem);
        ctx.set_verify_mode(asio::ssl::verify_peer);
        SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_OFF);
    }
};

// A keep-alive mTLS connection driven by a coroutine on its thread's event loop.
struct Conn {
    asio::io_context& io;
    ClientCtx& cc;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> s;
    beast::flat_buffer buf;
    std::uint16_t port;

    Conn(asio::io_context& i, ClientCtx& c, std::uint16_t p) : io(i), cc(c), port(p) {}
    asio::awaitable<void> connect() {
        s = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io, cc.ctx);
        co_await beast::get_lowest_layer(*s).async_connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                                           asio::use_awaitable);
        beast::get_lowest_layer(*s).socket().set_option(asio::ip::tcp::no_delay(true));
        co_await s->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        buf.clear();
    }
    asio::awaitable<std::string> request(http::verb v, std::string target, std::string body = {}) {
        if (!s) co_await connect();
        http::request<http::string_body> req{v, target, 11};
        req.set(http::field::host, "127.0.0.1");
        if (!body.empty()) {
            req.set(http::field::content_type, "application/json");
            req.body() = std::move(body);
        }
        req.keep_alive(true);
        req.prepare_payload();
        co_await http::async_write(*s, req, asio::use_awaitable);
        http::response<http::string_body> res;
        co_await http::async_read(*s, buf, res, asio::use_awaitable);
        if (res.result() != http::status::ok) throw std::runtime_error(fmt::format("HTTP {} for {}: {}", res.result_int(), target, res.body()));
        if (!res.keep_alive()) s.reset();
        co_return std::move(res.body());
    }
};

struct Stats {
    std::vector<double> lat_us;
    std::uint64_t ops = 0, errors = 0;
    double seconds = 0;
    double server_cpu = 0, client_cpu = 0;  // CPU seconds during the phase
    std::vector<double> per_server;         // CPU seconds of each server process
    double rate() const { return static_cast<double>(ops) / seconds; }
    double pct(double p) const {
        if (lat_us.empty()) return 0;
        auto v = lat_us;
        auto k = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1));
        std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
        return v[k];
    }
};

// CPU seconds (user + system) used so far by the given processes, from /proc/PID/stat.
inline double cpu_seconds(const std::vector<int>& pids) {
    double total = 0;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    for (int pid : pids) {
        std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        if (!std::getline(f, line)) continue;
        auto close = line.rfind(')');  // the command name may contain spaces
        std::istringstream rest(line.substr(close + 2));
        std::string field;
        // fields after the name start at 3 (state); utime and stime are fields 14 and 15
        for (int i = 3; i <= 13; ++i) rest >> field;
        double ut = 0, st = 0;
        rest >> ut >> st;
        total += (ut + st) / tick;
    }
    return total;
}

inline double self_cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

inline std::vector<int> parse_pids(const char* s) {
    std::vector<int> out;
    if (!s) return out;
    std::istringstream in(s);
    std::string tok;
    while (std::getline(in, tok, ',')) if (!tok.empty()) out.push_back(std::stoi(tok));
    return out;
}

// Generator threads (QKD_BENCH_THREADS, default 2): each runs an event loop with its share of the
// connections, as wrk and h2load do; a thread per connection would make the generator itself the
// main source of context switches on a 2-core machine.
inline int generator_threads(int conns) {
    const char* t = std::getenv("QKD_BENCH_THREADS");
    return std::clamp(t ? std::atoi(t) : 2, 1, std::max(1, conns));
}

// Runs `op(state)` in a loop on each of `conns` connections for `seconds`; `interval` > 0 paces
// each connection (one operation per interval, start times spread evenly). `setup(i, io)` makes
// connection i's state on its thread's io_context. Every connection first runs `op` once untimed
// (TLS handshakes, first allocations), and the measured window starts when all have: the figures
// describe the steady state of keep-alive connections, not their set-up (the handshake phase
// measures that). Latency is timed from the start of each operation to its end.
template <class Setup, class Op>
Stats run(int conns, double seconds, Setup setup, Op op, std::chrono::microseconds interval = {}, const std::vector<int>& server_pids = {}) {
    Stats total;
    std::mutex mu;
    std::atomic<bool> stop{false}, go{false};
    std::atomic<int> ready{0};
    const int nthreads = generator_threads(conns);
    std::vector<std::thread> th;
    Clock::time_point t0;
    for (int t = 0; t < nthreads; ++t)
        th.emplace_back([&, t] {
            asio::io_context io(1);
            Stats st;
            for (int i = t; i < conns; i += nthreads) {
                asio::co_spawn(
                    io,
                    [&, i]() -> asio::awaitable<void> {
                        auto state = setup(i, io);
                        asio::steady_timer timer(io);
                        try {
                            co_await op(*state);  // untimed warm-up
                        } catch (const std::exception& e) {
                            std::cerr << "bench: warm-up: " << e.what() << "\n";
                            ++st.errors;
                        }
                        ++ready;
                        while (!go) {
                            timer.expires_after(std::chrono::microseconds(200));
                            co_await timer.async_wait(asio::use_awaitable);
                        }
                        auto next = t0 + std::chrono::microseconds(interval.count() * i / std::max(1, conns));
                        while (!stop) {
                            if (interval.count()) {
                                timer.expires_at(next);
                                co_await timer.async_wait(asio::use_awaitable);
                                next += interval;
                            }
                            auto a = Clock::now();
                            try {
                                co_await op(*state);
                                st.lat_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
                                ++st.ops;
                            } catch (const std::exception& e) {
                                if (++st.errors < 3) std::cerr << "bench: " << e.what() << "\n";
                                state = setup(i, io);  // a fresh connection after an error
                            }
                        }
                    },
                    asio::detached);
            }
            io.run();
            std::lock_guard lk(mu);
            total.ops += st.ops;
            total.errors += st.errors;
            total.lat_us.insert(total.lat_us.end(), st.lat_us.begin(), st.lat_us.end());
        });
    while (ready < conns) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const double s0 = cpu_seconds(server_pids), c0 = self_cpu_seconds();
    std::vector<double> each0;
    for (int pid : server_pids) each0.push_back(cpu_seconds({pid}));
    t0 = Clock::now();
    go = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : th) t.join();  // each connection finishes the operation it is in
    total.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    total.server_cpu = cpu_seconds(server_pids) - s0;
    total.client_cpu = self_cpu_seconds() - c0;
    for (std::size_t i = 0; i < server_pids.size(); ++i) total.per_server.push_back(cpu_seconds({server_pids[i]}) - each0[i]);
    return total;
}

