#pragma once
#include <CLI/CLI.hpp>

#include <string>

namespace qkdgate {

// Options shared by every subcommand.
struct GlobalOptions {
    std::string config_path = "/etc/qkdgate/qkdgate.toml";
    std::string socket_path = "/run/qkdgate/qkdgated.sock";
    bool json = false;
    int exit_code = 0;  // set by the subcommand that ran
};

// Each registers its subcommands under `app`; callbacks set opts.exit_code.
void register_qkd_commands(CLI::App& app, GlobalOptions& opts);  // qkd_commands.cpp
void register_ike_commands(CLI::App& app, GlobalOptions& opts);  // ike_commands.cpp

}  // namespace qkdgate
