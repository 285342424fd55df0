// In-process OpenSSL provider for X25519MLKEM768 (work in progress: classical fallback until the
// ML-KEM-backed KEM is wired in).
#include "provider.hpp"

namespace qkd::pqtls {

qkd::Result<void, std::string> load_hybrid_provider() {
    return qkd::Err{std::string("the X25519MLKEM768 provider is not built yet")};
}

}  // namespace qkd::pqtls
