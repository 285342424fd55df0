// ML-KEM.KeyGen and ML-KEM.Encaps with fresh randomness (FIPS 203 Alg. 19, 20).
#include "qkd/common/rng.hpp"
#include "qkd/crypto/mlkem.hpp"

namespace qkd::mlkem {

KeyPair keygen(ParamSet p) {
    qkd::SecretBytes d(kSeedSize), z(kSeedSize);
    qkd::random_bytes(d.mut_view());
    qkd::random_bytes(z.mut_view());
    return std::move(keygen_internal(p, d.view(), z.view()).value());  // sizes are right by construction
}

qkd::Result<Encapsulation, Error> encaps(ParamSet p, std::span<const std::uint8_t> ek) {
    qkd::SecretBytes m(kSeedSize);
    qkd::random_bytes(m.mut_view());
    return encaps_internal(p, ek, m.view());
}

Encapsulation EncapsulationKey::encaps() const {
    qkd::SecretBytes m(kSeedSize);
    qkd::random_bytes(m.mut_view());
    return std::move(encaps_internal(m.view()).value());  // m has the right size by construction
}

}  // namespace qkd::mlkem
