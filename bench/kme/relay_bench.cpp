// Load generator for bench/kme/relay.sh (issue 17): key pairs through one trusted relay
// (SAE_A @ KME_A -> KME_R -> KME_C, Get key with key IDs as SAE_C @ KME_C) beside the direct pair
// (SAE_A @ KME_A -> KME_B, Get key with key IDs as SAE_B @ KME_B), both with prefetch off so every
// Get key crosses its path, in alternating rounds of the same run:
//   max    : pairs per second on N connections (the target: relay >= 0.5x direct)
//   light  : one connection, paced at 200 pairs/s: the latency of Get key on each path, and of Get
//            status (no KME-to-KME call) on the direct path; Get key minus Get status is one KME
//            round trip (the reservation), the target: a relay costs at most one more.
#include "bench_util.hpp"

namespace {

struct Path {
    std::string name, dir, master_kme, slave_kme, master_sae, slave_sae;
    std::uint16_t pm = 0, ps = 0;
    std::unique_ptr<ClientCtx> cm{}, cs{};
    void load() {
        auto info = nlohmann::json::parse(std::ifstream(dir + "/demo.json"));
        auto port_of = [&](const std::string& kme) -> std::uint16_t {
            for (auto& k : info["kmes"])
                if (k["kme_id"] == kme) {
                    const auto url = k["url"].get<std::string>();
                    return static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
                }
            throw std::runtime_error("no " + kme + " in " + dir);
        };
        pm = port_of(master_kme);
        ps = port_of(slave_kme);
        auto lower = [](std::string s) {
            for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            return s;
        };
        cm = std::make_unique<ClientCtx>(dir + "/pki/ca.pem", Identity{dir + "/pki/" + lower(master_sae) + ".pem", dir + "/pki/" + lower(master_sae) + ".key"});
        cs = std::make_unique<ClientCtx>(dir + "/pki/ca.pem", Identity{dir + "/pki/" + lower(slave_sae) + ".pem", dir + "/pki/" + lower(slave_sae) + ".key"});
    }
};

struct PairConns {
    std::unique_ptr<Conn> m, s;
    std::vector<double> enc_us;  // Get key latency of each timed pair
    std::vector<double>* out = nullptr;
    std::mutex* mu = nullptr;
    bool warm = false;
    ~PairConns() {
        std::lock_guard lk(*mu);
        out->insert(out->end(), enc_us.begin(), enc_us.end());
    }
};

double pct(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    auto k = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: relay_bench DIRECT_DEMO_DIR RELAY_DEMO_DIR [CONNS] [SECONDS]\n";
        return 2;
    }
    const int conns = argc > 3 ? std::stoi(argv[3]) : 16;
    const double secs = argc > 4 ? std::stod(argv[4]) : 4;
    Path direct{"direct", argv[1], "KME_A", "KME_B", "SAE_A", "SAE_B"}, relay{"relay", argv[2], "KME_A", "KME_C", "SAE_A", "SAE_C"};
    direct.load();
    relay.load();
    std::mutex mu;
    std::vector<double> enc;
    auto setup_for = [&](Path& p) {
        return [&](int, asio::io_context& io) {
            auto c = std::make_unique<PairConns>();
            c->m = std::make_unique<Conn>(io, *p.cm, p.pm);
            c->s = std::make_unique<Conn>(io, *p.cs, p.ps);
            c->out = &enc;
            c->mu = &mu;
            return c;
        };
    };
    auto op_for = [](Path& p) {
        return [&p](PairConns& c) -> asio::awaitable<void> {
            const auto t0 = Clock::now();
            auto m = nlohmann::json::parse(co_await c.m->request(http::verb::post, "/api/v1/keys/" + p.slave_sae + "/enc_keys", R"({"number":1})"));
            const auto t1 = Clock::now();
            const auto id = m["keys"][0]["key_ID"].get<std::string>();
            co_await c.s->request(http::verb::post, "/api/v1/keys/" + p.master_sae + "/dec_keys", R"({"key_IDs":[{"key_ID":")" + id + "\"}]}");
            if (std::exchange(c.warm, true)) c.enc_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        };
    };
    auto status_setup = [&](int, asio::io_context& io) { return std::make_unique<Conn>(io, *direct.cm, direct.pm); };
    auto status_op = [&](Conn& c) -> asio::awaitable<void> { co_await c.request(http::verb::get, "/api/v1/keys/SAE_B/status"); };

    const int rounds = std::getenv("QKD_BENCH_ROUNDS") ? std::max(1, std::atoi(std::getenv("QKD_BENCH_ROUNDS"))) : 3;
    std::cout << fmt::format("KME relay benchmark: {} connections, {:.0f} s per phase, {} alternating rounds, prefetch off\n", conns, secs, rounds);
    run(conns, 1.0, setup_for(direct), op_for(direct));  // warm-up
    run(conns, 1.0, setup_for(relay), op_for(relay));
    std::vector<double> rate_d, rate_r, ratio, lat_d, lat_r, lat_s;
    std::uint64_t errors = 0;
    const auto light = std::chrono::microseconds(5000);  // one connection, 200 per second
    for (int r = 0; r < rounds; ++r) {
        auto d = run(conns, secs, setup_for(direct), op_for(direct));
        auto x = run(conns, secs, setup_for(relay), op_for(relay));
        errors += d.errors + x.errors;
        rate_d.push_back(d.rate());
        rate_r.push_back(x.rate());
        ratio.push_back(x.rate() / d.rate());
        enc.clear();
        errors += run(1, secs, setup_for(direct), op_for(direct), light).errors;
        lat_d.push_back(pct(enc, 50));
        enc.clear();
        errors += run(1, secs, setup_for(relay), op_for(relay), light).errors;
        lat_r.push_back(pct(enc, 50));
        auto st = run(1, secs, status_setup, status_op, light);
        errors += st.errors;
        lat_s.push_back(st.pct(50));
        std::cout << fmt::format("  round {}: direct {:.0f} pairs/s, through one relay {:.0f} pairs/s, ratio {:.2f}; light load p50: Get key "
                                 "direct {:.0f} us, relay {:.0f} us, Get status {:.0f} us\n",
                                 r + 1, d.rate(), x.rate(), ratio.back(), lat_d.back(), lat_r.back(), lat_s.back());
    }
    const double rt = median(lat_d) - median(lat_s);  // one KME round trip: the direct reservation
    const double extra = median(lat_r) - median(lat_d);
    std::cout << fmt::format("RATIO relay pairs/s / direct pairs/s = {:.2f} (direct {:.0f}, relay {:.0f} pairs/s; medians of {} rounds; target >= 0.5)\n",
                             median(ratio), median(rate_d), median(rate_r), rounds);
    std::cout << fmt::format("LATENCY Get key p50 at light load: direct {:.0f} us, relay {:.0f} us: the relay adds {:.0f} us = {:.2f} KME round trips "
                             "(one round trip = direct Get key - Get status = {:.0f} us; target <= 1)\n",
                             median(lat_d), median(lat_r), extra, rt > 0 ? extra / rt : 0.0, rt);
    return errors ? 1 : 0;
}
