// Load generator for the KME benchmark (bench/kme/run.sh). Over mTLS keep-alive connections it
// measures, in one run:
//   kme     : Get key (SAE_A @ KME_A) + Get key with key IDs (SAE_B @ KME_B) pairs per second
//   static  : GET of a static JSON body of the same size from nginx, same mTLS set-up, same load
//   paced   : the KME pairs at half the measured maximum rate, for the p99 latency target
//   target  : the KME pairs at half of 0.7x nginx's measured request rate (the target's "half that
//             load" read literally: half of the throughput target), the same p99 at a load that
//             does not grow with the KME's own speed
//   handshake: new TLS handshakes per second (fresh connection + Get status each time)
// and prints the ratios. Each phase uses the same client code so only the server differs.
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
double cpu_seconds(const std::vector<int>& pids) {
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

double self_cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

std::vector<int> parse_pids(const char* s) {
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
int generator_threads(int conns) {
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

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: kme_bench DEMO_DIR NGINX_PORT [CONNS] [SECONDS]\n";
        return 2;
    }
    const std::string dir = argv[1];
    const auto nginx_port = static_cast<std::uint16_t>(std::stoi(argv[2]));
    const int conns = argc > 3 ? std::stoi(argv[3]) : 16;
    const double secs = argc > 4 ? std::stod(argv[4]) : 5;
    auto info = nlohmann::json::parse(std::ifstream(dir + "/demo.json"));
    auto port_of = [&](const std::string& kme) -> std::uint16_t {
        for (auto& k : info["kmes"])
            if (k["kme_id"] == kme) return static_cast<std::uint16_t>(std::stoi(k["url"].get<std::string>().substr(k["url"].get<std::string>().rfind(':') + 1)));
        throw std::runtime_error("no " + kme);
    };
    const std::string ca = dir + "/pki/ca.pem";
    const Identity sae_a{dir + "/pki/sae_a.pem", dir + "/pki/sae_a.key"}, sae_b{dir + "/pki/sae_b.pem", dir + "/pki/sae_b.key"};
    const auto pa = port_of("KME_A"), pb = port_of("KME_B");

    // Latency of each half of a pair (Get key at KME_A, Get key with key IDs at KME_B), per phase.
    std::mutex split_mu;
    std::vector<double> enc_us, dec_us, start_s;
    struct Pair {
        std::unique_ptr<Conn> a, b;
        std::vector<double> enc_us, dec_us, start_s;
        std::vector<double>* start_out = nullptr;
        bool warm = false;  // the first operation (run's untimed warm-up) is not recorded
        std::mutex* mu = nullptr;
        std::vector<double>* enc_out = nullptr;
        std::vector<double>* dec_out = nullptr;
        ~Pair() {
            std::lock_guard lk(*mu);
            enc_out->insert(enc_out->end(), enc_us.begin(), enc_us.end());
            dec_out->insert(dec_out->end(), dec_us.begin(), dec_us.end());
            start_out->insert(start_out->end(), start_s.begin(), start_s.end());
        }
    };
    ClientCtx ctx_a(ca, sae_a), ctx_b(ca, sae_b);
    auto pair_setup = [&](int, asio::io_context& io) {
        auto p = std::make_unique<Pair>();
        p->a = std::make_unique<Conn>(io, ctx_a, pa);
        p->b = std::make_unique<Conn>(io, ctx_b, pb);
        p->mu = &split_mu;
        p->enc_out = &enc_us;
        p->dec_out = &dec_us;
        p->start_out = &start_s;
        return p;
    };
    auto pair_op = [](Pair& p) -> asio::awaitable<void> {
        const auto t0 = Clock::now();
        auto enc = nlohmann::json::parse(co_await p.a->request(http::verb::post, "/api/v1/keys/SAE_B/enc_keys", R"({"number":1,"size":256})"));
        auto id = enc["keys"][0]["key_ID"].get<std::string>();
        const auto t1 = Clock::now();
        co_await p.b->request(http::verb::post, "/api/v1/keys/SAE_A/dec_keys", R"({"key_IDs":[{"key_ID":")" + id + "\"}]}");
        if (!std::exchange(p.warm, true)) co_return;
        p.enc_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        p.dec_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t1).count());
        p.start_s.push_back(std::chrono::duration<double>(t0.time_since_epoch()).count());
    };
    // The static body has the size of a one-key container.
    std::string sample;
    {
        asio::io_context io;
        Conn c(io, ctx_a, pa);
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            sample = co_await c.request(http::verb::post, "/api/v1/keys/SAE_B/enc_keys", R"({"number":1,"size":256})");
        }, asio::detached);
        io.run();
    }
    std::ofstream(dir + "/static.json") << sample;  // run.sh serves this file with nginx

    const int rounds = std::getenv("QKD_BENCH_ROUNDS") ? std::max(1, std::atoi(std::getenv("QKD_BENCH_ROUNDS"))) : 3;
    std::cout << fmt::format("KME benchmark: {} connections, {:.0f} s per phase, {} rounds of KME / nginx / paced KME / paced nginx "
                             "(medians below), 2-core machine, persistence on\n",
                             conns, secs, rounds);
    // Server processes whose CPU time is reported (run.sh sets these): both KMEs, nginx workers.
    const auto kme_pids = parse_pids(std::getenv("QKD_BENCH_KME_PIDS"));
    const auto nginx_pids = parse_pids(std::getenv("QKD_BENCH_NGINX_PIDS"));
    auto static_setup = [&](int, asio::io_context& io) { return std::make_unique<Conn>(io, ctx_a, nginx_port); };
    auto static_op = [](Conn& c) -> asio::awaitable<void> { co_await c.request(http::verb::get, "/static.json"); };
    // QKD_BENCH_PACED_ONLY=PAIRS_PER_S: only the paced KME phase at that rate (for profiling the
    // latency tail: the KMEs' metrics then describe that phase alone).
    if (const char* only = std::getenv("QKD_BENCH_PACED_ONLY")) {
        const auto every = std::chrono::microseconds(static_cast<long>(1e6 * conns / std::max(1.0, std::atof(only))));
        auto p = run(conns, secs, pair_setup, pair_op, every, kme_pids);
        Stats e, d;
        e.lat_us = enc_us;
        d.lat_us = dec_us;
        std::cout << fmt::format("  paced: {:.0f} pairs/s p50 {:.0f} us p99 {:.0f} us per pair; p99 Get key at KME_A {:.0f} us, Get key with key IDs at KME_B {:.0f} us; "
                                 "server CPU {:.2f} cores (KME_A {:.0f} us, KME_B {:.0f} us per pair), generator {:.2f}\n",
                                 p.rate(), p.pct(50), p.pct(99), e.pct(99), d.pct(99), p.server_cpu / p.seconds,
                                 p.per_server.size() > 1 ? 1e6 * p.per_server[0] / static_cast<double>(p.ops) : 0.0,
                                 p.per_server.size() > 1 ? 1e6 * p.per_server[1] / static_cast<double>(p.ops) : 0.0, p.client_cpu / p.seconds);
        if (const char* dump = std::getenv("QKD_BENCH_DUMP")) {  // start time (s), Get key us, Get key with key IDs us
            std::ofstream out(dump);
            for (std::size_t i = 0; i < start_s.size(); ++i) out << fmt::format("{:.6f} {:.0f} {:.0f}\n", start_s[i], enc_us[i], dec_us[i]);
        }
        return p.errors ? 1 : 0;
    }
    run(conns, 1.0, pair_setup, pair_op);  // warm-up
    run(conns, 1.0, static_setup, static_op);

    // Alternating rounds: this machine's speed drifts by tens of percent over seconds (shared
    // host), so each ratio compares phases measured a few seconds apart, and the medians are kept.
    std::vector<Stats> kmes, ngxs, paceds, paced_ngxs;
    std::vector<double> ratios, enc_p99s, dec_p99s;  // per round: p99 of each request of the paced pairs
    std::vector<Stats> targets;                      // per round: the pairs at half of 0.7x nginx's rate
    std::vector<double> target_enc_p99s, target_dec_p99s;
    for (int r = 0; r < rounds; ++r) {
        kmes.push_back(run(conns, secs, pair_setup, pair_op, {}, kme_pids));
        ngxs.push_back(run(conns, secs, static_setup, static_op, {}, nginx_pids));
        ratios.push_back(2 * kmes.back().rate() / ngxs.back().rate());
        // Latency at half the measured KME maximum; nginx paced at the same request rate is the
        // reference for what this machine's scheduling alone adds to the tail.
        const double half = kmes.back().rate() / 2;
        const auto every = std::chrono::microseconds(static_cast<long>(1e6 * conns / std::max(1.0, half)));
        enc_us.clear();
        dec_us.clear();
        paceds.push_back(run(conns, secs, pair_setup, pair_op, every));
        Stats e, d;
        e.lat_us = enc_us;
        d.lat_us = dec_us;
        std::cout << fmt::format("  round {}: half load p99 of Get key at KME_A {:.2f} ms, of Get key with key IDs at KME_B {:.2f} ms\n", r + 1,
                                 e.pct(99) / 1000, d.pct(99) / 1000);
        enc_p99s.push_back(e.pct(99));
        dec_p99s.push_back(d.pct(99));
        paced_ngxs.push_back(run(conns, secs, static_setup, static_op, every / 2));
        std::cout << fmt::format("  round {}: KME {:.0f} requests/s, nginx {:.0f} requests/s, ratio {:.2f}; half load p99 {:.2f} ms "
                                 "per pair (nginx same request rate: p99 {:.2f} ms per request)\n",
                                 r + 1, 2 * kmes.back().rate(), ngxs.back().rate(), ratios.back(), paceds.back().pct(99) / 1000,
                                 paced_ngxs.back().pct(99) / 1000);
        // The target's load read literally: half of 0.7x nginx's request rate, in pairs of two requests.
        const double target_pairs = 0.35 * ngxs.back().rate() / 2;
        enc_us.clear();
        dec_us.clear();
        targets.push_back(run(conns, secs, pair_setup, pair_op,
                              std::chrono::microseconds(static_cast<long>(1e6 * conns / std::max(1.0, target_pairs)))));
        Stats te, td;
        te.lat_us = enc_us;
        td.lat_us = dec_us;
        target_enc_p99s.push_back(te.pct(99));
        target_dec_p99s.push_back(td.pct(99));
        std::cout << fmt::format("  round {}: at half of 0.7x nginx's request rate ({:.0f} pairs/s): p99 {:.2f} ms per pair; per request "
                                 "{:.2f} ms at KME_A, {:.2f} ms at KME_B\n",
                                 r + 1, targets.back().rate(), targets.back().pct(99) / 1000, te.pct(99) / 1000, td.pct(99) / 1000);
    }
    auto median_by = [](std::vector<Stats>& v, auto key) -> Stats& {
        std::vector<std::size_t> idx(v.size());
        for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
        std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return key(v[a]) < key(v[b]); });
        return v[idx[idx.size() / 2]];
    };
    Stats& kme = median_by(kmes, [](const Stats& x) { return x.rate(); });
    Stats& ngx = median_by(ngxs, [](const Stats& x) { return x.rate(); });
    Stats& paced = median_by(paceds, [](const Stats& x) { return x.pct(99); });
    Stats& paced_ngx = median_by(paced_ngxs, [](const Stats& x) { return x.pct(99); });
    Stats& target = median_by(targets, [](const Stats& x) { return x.pct(99); });
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    const double ratio = median(ratios);

    auto hs_setup = [&](int, asio::io_context& io) { return std::make_unique<Conn>(io, ctx_a, pa); };
    auto hs_op = [](Conn& c) -> asio::awaitable<void> {
        co_await c.connect();
        co_await c.request(http::verb::get, "/api/v1/keys/SAE_B/status");
        c.s.reset();
    };
    auto hs = run(std::min(conns, 4), secs / 2, hs_setup, hs_op);

    std::cout << fmt::format("  KME  Get key + Get key with key IDs: {:8.0f} pairs/s = {:8.0f} requests/s  p50 {:6.0f} us  p99 {:6.0f} us  errors {}\n",
                             kme.rate(), 2 * kme.rate(), kme.pct(50), kme.pct(99), kme.errors);
    std::cout << fmt::format("  nginx static JSON ({} bytes):      {:8.0f} requests/s                p50 {:6.0f} us  p99 {:6.0f} us  errors {}\n",
                             sample.size(), ngx.rate(), ngx.pct(50), ngx.pct(99), ngx.errors);
    std::cout << fmt::format("  KME at half load:  achieved {:8.0f} pairs/s  p50 {:6.0f} us  p99 {:6.0f} us (per pair)\n", paced.rate(),
                             paced.pct(50), paced.pct(99));
    std::cout << fmt::format("  nginx at the same request rate:  {:8.0f} requests/s  p50 {:6.0f} us  p99 {:6.0f} us (per request)\n",
                             paced_ngx.rate(), paced_ngx.pct(50), paced_ngx.pct(99));
    std::cout << fmt::format("  new TLS handshakes (+ Get status):  {:8.0f} per second\n", hs.rate());
    if (!kme_pids.empty() && !nginx_pids.empty()) {
        // Where the time goes: CPU per request of the servers and of this generator (same code for both).
        const double kreq = 2.0 * static_cast<double>(kme.ops), nreq = static_cast<double>(ngx.ops);
        std::cout << fmt::format("  CPU per request: KME servers {:.1f} us (generator {:.1f} us); nginx {:.1f} us (generator {:.1f} us); "
                                 "server CPU ratio {:.2f}\n",
                                 1e6 * kme.server_cpu / kreq, 1e6 * kme.client_cpu / kreq, 1e6 * ngx.server_cpu / nreq,
                                 1e6 * ngx.client_cpu / nreq, (kme.server_cpu / kreq) / (ngx.server_cpu / nreq));
        std::cout << fmt::format("  CPU use (cores busy): KME phase: KME_A {:.2f}, KME_B {:.2f}, generator {:.2f}; nginx phase: nginx {:.2f}, generator {:.2f}\n",
                                 kme.per_server.at(0) / kme.seconds, kme.per_server.at(1) / kme.seconds, kme.client_cpu / kme.seconds,
                                 ngx.server_cpu / ngx.seconds, ngx.client_cpu / ngx.seconds);
    }
    std::cout << fmt::format("RATIO KME requests/s / nginx requests/s = {:.2f} (median of {} rounds; target >= 0.70)\n", ratio, rounds);
    std::cout << fmt::format("P99 at half load = {:.2f} ms per pair (median of {} rounds; target < 2 ms); nginx at the same request rate: {:.2f} ms\n",
                             paced.pct(99) / 1000, rounds, paced_ngx.pct(99) / 1000);
    // The same phase per request: each of the pair's two calls on its own (what nginx's figure is).
    std::cout << fmt::format("P99 at half load per request = {:.2f} ms Get key at KME_A, {:.2f} ms Get key with key IDs at KME_B (median of {} rounds; "
                             "target < 2 ms)\n",
                             median(enc_p99s) / 1000, median(dec_p99s) / 1000, rounds);
    std::uint64_t errors = 0;
    std::cout << fmt::format("P99 at half of 0.7x nginx's request rate = {:.2f} ms per pair, {:.2f} / {:.2f} ms per request at KME_A / KME_B "
                             "({:.0f} pairs/s; medians of {} rounds; target < 2 ms)\n",
                             target.pct(99) / 1000, median(target_enc_p99s) / 1000, median(target_dec_p99s) / 1000, target.rate(), rounds);
    for (auto* v : {&kmes, &ngxs, &paceds, &paced_ngxs, &targets})
        for (auto& x : *v) errors += x.errors;
    return errors ? 1 : 0;
}
