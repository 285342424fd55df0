// qkd-kme: ETSI GS QKD 014 key management entity emulating a pair of QKD devices.
#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "qkd/common/log.hpp"
#include "qkd/kme/affinity.hpp"
#include "qkd/kme/demo.hpp"
#include "qkd/kme/instance.hpp"

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
    bool prepare_only = false;
    d->add_flag("--prepare-only", prepare_only, "write the PKI and configs, then exit (run each KME with `serve`)");
    CLI11_PARSE(app, argc, argv);

    try {
        if (*d) {
            qkd::log_init("qkd-kme", demo.log_level);
            if (prepare_only) {
                auto [a, b] = qkd::kme::prepare_demo(demo);
                std::cout << a << "\n" << b << "\n";
                return 0;
            }
            return qkd::kme::run_demo(demo);
        }
        auto cfg = qkd::kme::load_config(config);
        qkd::kme::check_cpu_affinity(cfg);
        if (*check) {
            std::cout << config << ": OK (" << cfg.kme_id << ", " << cfg.saes.size() << " local SAEs, " << cfg.peers.size() << " peers)\n";
            return 0;
        }
        qkd::log_init("qkd-kme", cfg.log_level);
        // Each SAE and peer connection holds a descriptor: the soft limit (often 1024) goes up to
        // the hard one, and an operator learns at start-up if max_connections cannot be reached.
        if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            if (rl.rlim_cur < rl.rlim_max) {
                rlimit up = rl;
                up.rlim_cur = rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &up) == 0) rl = up;
            }
            if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < cfg.max_connections + 64)
                spdlog::warn("{}: at most {} file descriptors may be open (ulimit -n), fewer than kme.max_connections = {} needs; "
                             "beyond that new connections wait",
                             cfg.kme_id, rl.rlim_cur, cfg.max_connections);
        }
        boost::asio::io_context io;
        qkd::kme::Instance kme(io, cfg);
        kme.start();
        boost::asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](auto, int) { io.stop(); });
        const int n = cfg.threads > 0 ? cfg.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        // Event-loop threads are pinned ([kme] cpu_affinity) once the helper threads (the state
        // database's checkpointer) exist, so those keep floating.
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
        if (!cfg.cpu_affinity.empty())
            spdlog::info("{}: {} event-loop threads on CPUs {}", cfg.kme_id, n, qkd::kme::cpu_list_text(cfg.cpu_affinity));
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
