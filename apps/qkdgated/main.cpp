// qkdgated -c FILE [--foreground] [--check]: the qkdgate IKEv2/IPsec gateway daemon.
// SIGTERM/SIGINT: DELETE every IKE SA and stop. SIGHUP: reload the config (as `qkdgate reload`).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange
#include <boost/asio.hpp>
#include <csignal>
#include <cstdio>
#include <functional>
#include <iostream>

#include "qkd/common/log.hpp"
#include "qkd/daemon/config.hpp"
#include "qkd/daemon/convert.hpp"
#include "qkd/daemon/gateway_daemon.hpp"

int main(int argc, char** argv) {
    CLI::App app{"qkdgated: IKEv2/IPsec gateway daemon of qkdgate"};
    std::string config_path{qkd::daemon::kDefaultConfigPath};
    std::string log_level, log_file, pid_file;
    bool foreground = false, check = false;
    app.add_option("-c,--config", config_path, "config file")->capture_default_str();
    app.add_flag("-f,--foreground", foreground, "stay in the foreground, log to stderr");
    app.add_flag("--check", check, "validate the config (and PSK files) and exit");
    app.add_option("--log-level", log_level, "override [daemon] log_level");
    app.add_option("--log-file", log_file, "log to this file when in the background");
    app.add_option("--pid-file", pid_file, "write the daemon's PID here");
    CLI11_PARSE(app, argc, argv);

    auto cfg = qkd::daemon::load_config(config_path);
    if (!cfg) {
        std::cerr << "qkdgated: " << cfg.error().message << "\n";
        return 1;
    }
    for (auto& g : cfg->gateways) {
        auto gc = qkd::daemon::to_gateway_config(g, cfg->daemon);
        if (!gc) {
            std::cerr << "qkdgated: " << config_path << ": " << gc.error().message << "\n";
            return 1;
        }
    }
    if (check) {
        std::cout << config_path << ": OK, " << cfg->gateways.size() << " gateway(s)\n";
        return 0;
    }
    if (!foreground) {
        if (::daemon(0, 0) != 0) {
            std::perror("qkdgated: daemon");
            return 1;
        }
        if (!log_file.empty()) {
            int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
            if (fd >= 0) {
                ::dup2(fd, 2);
                ::close(fd);
            }
        }
    }
    if (!pid_file.empty()) {
        if (FILE* f = std::fopen(pid_file.c_str(), "w")) {
            std::fprintf(f, "%d\n", static_cast<int>(::getpid()));
            std::fclose(f);
        }
    }
    qkd::log_init("qkdgated", log_level.empty() ? cfg->daemon.log_level : log_level);
    std::signal(SIGPIPE, SIG_IGN);

    boost::asio::io_context io;
    qkd::daemon::DaemonOptions opt;
    opt.engine.retransmit_base = std::chrono::milliseconds(static_cast<long>(cfg->daemon.retransmit_timeout * 1000));
    opt.engine.retransmit_backoff = cfg->daemon.retransmit_base;
    opt.engine.retransmit_tries = cfg->daemon.retransmit_tries;
    qkd::daemon::GatewayDaemon daemon(io, std::move(*cfg), opt);
    if (auto r = daemon.start(); !r) {
        spdlog::error("{}", r.error().message);
        return 1;
    }
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int sig) {
        if (ec) return;
        spdlog::info("signal {}: deleting IKE SAs and stopping", sig);
        daemon.shutdown(std::chrono::seconds(2), [&io] { io.stop(); });
    });
    boost::asio::signal_set hup(io, SIGHUP);
    std::function<void()> on_hup = [&] {
        hup.async_wait([&](boost::system::error_code ec, int) {
            if (ec) return;
            spdlog::info("SIGHUP: reloading the config");
            (void)daemon.reload();  // logs what changed, or why the new config was refused
            on_hup();
        });
    };
    on_hup();
    spdlog::info("qkdgated running (pid {})", ::getpid());
    io.run();
    spdlog::info("qkdgated stopped");
    if (!pid_file.empty()) ::unlink(pid_file.c_str());
    return 0;
}
