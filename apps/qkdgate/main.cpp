#include <CLI/CLI.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
    CLI::App app{"qkdgate: operator CLI for the qkdgated quantum-safe IPsec gateway"};
    qkdgate::GlobalOptions opts;
    app.add_option("-c,--config", opts.config_path, "gateway config file")->capture_default_str();
    app.add_option("-s,--socket", opts.socket_path, "qkdgated control socket")->capture_default_str();
    app.add_flag("--json", opts.json, "machine-readable JSON output");
    app.require_subcommand(1);
    qkdgate::register_qkd_commands(app, opts);
    qkdgate::register_ike_commands(app, opts);
    CLI11_PARSE(app, argc, argv);
    return opts.exit_code;
}
