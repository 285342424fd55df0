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
#include "bench_util.hpp"

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
