// qkd-kme: ETSI GS QKD 014 key management entity emulating a pair of QKD devices.
#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <thread>

#include "qkd/common/log.hpp"
#include "qkd/kme/affinity.hpp"
#include "qkd/kme/demo.hpp"
#include "qkd/kme/instance.hpp"
#include "qkd/kme/secrets_at_rest.hpp"

// Each SAE and peer connection holds a descriptor: the soft limit of open files (often 1024) goes
// up to what max_connections needs, as far as the hard limit allows; the server lowers its
// connection cap (and says so) if that is still too few.
static void raise_open_files_limit(std::size_t max_connections) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
    const rlim_t want = static_cast<rlim_t>(max_connections) + 256;
    if (rl.rlim_cur >= want) return;
    rlimit up = rl;
    up.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
    if (up.rlim_cur > rl.rlim_cur) (void)setrlimit(RLIMIT_NOFILE, &up);
}

int main(int argc, char** argv) {
    CLI::App app{"qkd-kme: ETSI GS QKD 014 key server emulating a pair of QKD devices"};
    app.require_subcommand(1);

    std::string config;
    auto* serve = app.add_subcommand("serve", "run one KME from its TOML config");
    serve->add_option("-c,--config", config, "KME config file")->required();
    auto* check = app.add_subcommand("check-config", "validate a KME config file and exit");
    check->add_option("-c,--config", config, "KME config file")->required();

    qkd::kme::DemoOptions demo;
    auto* d = app.add_subcommand("demo", "create a test PKI and configs in DIR and run KME_A and KME_B on loopback");
    d->add_option("DIR", demo.dir, "demo folder (reused when it exists)")->required();
    d->add_option("--port-a", demo.port_a, "API port of KME_A (default: a free port)");
    d->add_option("--port-b", demo.port_b, "API port of KME_B (default: a free port)");
    d->add_option("--log-level", demo.log_level, "trace, debug, info, warn, error")->capture_default_str();
    d->add_flag("--quiet", demo.quiet, "do not print the curl examples");
    bool relay = false;
    d->add_flag("--relay", relay, "a chain KME_A - KME_R - KME_C with trusted-node relay instead of the pair (SAE_A on KME_A, SAE_C on KME_C)");
    d->add_option("--relays", demo.relays, "relay KMEs in the --relay chain (1-4; more than one: KME_R1 .. KME_RN)")->capture_default_str();
    bool prepare_only = false;
    d->add_flag("--prepare-only", prepare_only, "write the PKI and configs, then exit (run each KME with `serve`)");
    CLI11_PARSE(app, argc, argv);

    try {
        if (*d) {
            qkd::log_init("qkd-kme", demo.log_level);
            if (relay && prepare_only) {
                for (const auto& f : qkd::kme::prepare_relay_demo(demo)) std::cout << f << "\n";
                return 0;
            }
            if (relay) {
                raise_open_files_limit(30000);
                return qkd::kme::run_relay_demo(demo);
            }
            if (prepare_only) {
                auto [a, b] = qkd::kme::prepare_demo(demo);
                std::cout << a << "\n" << b << "\n";
                return 0;
            }
            raise_open_files_limit(20000);  // two KMEs in one process
            return qkd::kme::run_demo(demo);
        }
        auto cfg = qkd::kme::load_config(config);
        qkd::kme::check_cpu_affinity(cfg);
        if (*check) {
            qkd::kme::check_secrets_at_rest(cfg);
            std::cout << config << ": OK (" << cfg.kme_id << ", " << cfg.saes.size() << " local SAEs, " << cfg.peers.size() << " peers)\n";
            return 0;
        }
        qkd::log_init("qkd-kme", cfg.log_level);
        raise_open_files_limit(cfg.max_connections);
        boost::asio::io_context io;
        qkd::kme::Instance kme(io, cfg);
        kme.start();
        boost::asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](auto, int) { io.stop(); });
        const int n = cfg.threads > 0 ? cfg.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        // Event-loop threads are pinned ([kme] cpu_affinity) once the state database's checkpointer
        // exists, so it keeps floating; threads the event loop starts later (Asio's resolver, for
        // peer URLs with a host name) inherit the pin of the thread that starts them.
        std::atomic<bool> pin_failed{false};
        auto loop = [&](int i) {
            try {
                qkd::kme::pin_event_loop_thread(cfg, i);
            } catch (const std::exception& e) {
                spdlog::error("{}", e.what());
                pin_failed = true;
                io.stop();
                return;
            }
            io.run();
        };
        std::vector<std::thread> threads;
        for (int i = 1; i < n; ++i) threads.emplace_back(loop, i);
        if (!cfg.cpu_affinity.empty()) {
            std::string cpus;
            for (int i = 0; i < n; ++i)
                cpus += fmt::format("{}{}", i ? ", " : "", cfg.cpu_affinity[static_cast<std::size_t>(i) % cfg.cpu_affinity.size()]);
            spdlog::info("{}: {} event-loop threads, on CPU {}", cfg.kme_id, n, cpus);
        }
        loop(0);
        for (auto& t : threads) t.join();
        if (pin_failed) return 2;
        spdlog::info("{} stopped", cfg.kme_id);
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "qkd-kme: " << e.what() << "\n";
        return 2;
    }
}
