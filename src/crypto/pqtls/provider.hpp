#pragma once
// Internal: the in-process OpenSSL provider supplying X25519MLKEM768 on OpenSSL < 3.5.
#include <string>

#include "qkd/common/result.hpp"

namespace qkd::pqtls {

// Registers and loads the provider into the default library context (next to "default").
// Not thread-safe by itself; ensure_hybrid_group() serialises calls.
qkd::Result<void, std::string> load_hybrid_provider();

}  // namespace qkd::pqtls
