// libFuzzer harness for ML-KEM input handling: arbitrary bytes as an encapsulation key (7.2
// checks, then encapsulation), as a ciphertext to a fixed decapsulation key (implicit rejection),
// and as a decapsulation key (7.3 checks). First byte selects the parameter set.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "qkd/crypto/mlkem.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace qkd::mlkem;
    if (size < 1) return 0;
    const ParamSet p = data[0] % 3 == 0 ? ParamSet::MlKem512 : data[0] % 3 == 1 ? ParamSet::MlKem768 : ParamSet::MlKem1024;
    std::span<const std::uint8_t> in(data + 1, size - 1);
    static const std::vector<std::uint8_t> seed(32, 0x42);
    const auto kp = std::move(keygen_internal(p, seed, seed).value());
    if (auto ek = EncapsulationKey::parse(p, in); ek.ok()) {
        auto enc = ek->encaps_internal(seed);
        if (!enc.ok() || enc->ciphertext.size() != ct_size(p)) __builtin_trap();
    }
    auto k = decaps(p, kp.dk.view(), in);
    if (k.ok() != (in.size() == ct_size(p))) __builtin_trap();  // only the length may fail
    (void)check_dk(p, in);
    return 0;
}
