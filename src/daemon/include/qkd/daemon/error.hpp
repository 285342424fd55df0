#pragma once
// Errors of the daemon layer (config, PSK files, control socket, sockets). One enum, one table.
#include <string_view>

#include "qkd/common/error.hpp"

namespace qkd::daemon {

enum class Errc {
    config_syntax,      // the TOML file does not parse
    config_value,       // a key has a wrong type or an out-of-range value
    psk_file,           // PSK file missing, unreadable, too permissive or malformed
    control_request,    // a control-socket request is malformed or too long
    control_io,         // the control socket could not be opened / read / written
    socket,             // IKE/NAT-T UDP sockets
    engine,             // the IKE engine refused an operation
    dataplane,          // the data plane refused an operation
};

std::string_view errc_text(Errc c);

using DaemonError = qkd::Error<Errc>;

}  // namespace qkd::daemon
