// Scaffolding: the QKD commands (show qkd, test qkd ...) are registered here (issue 3).
#include "commands.hpp"

namespace qkdgate {
void register_qkd_commands(CLI::App&, GlobalOptions&) {}
}  // namespace qkdgate
