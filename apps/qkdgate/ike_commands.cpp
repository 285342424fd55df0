// Scaffolding: the IKE commands (show ike-sa, initiate, ...) are registered here (issue 5).
#include "commands.hpp"

namespace qkdgate {
void register_ike_commands(CLI::App&, GlobalOptions&) {}
}  // namespace qkdgate
