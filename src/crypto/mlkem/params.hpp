#pragma once
// FIPS 203 Table 2 parameter sets and derived sizes (internal).
#include <cstddef>

#include "qkd/crypto/mlkem.hpp"

namespace qkd::mlkem::detail {

inline constexpr int kN = 256;
inline constexpr int kQ = 3329;
inline constexpr int kMaxK = 4;

struct Params {
    int k;
    int eta1;
    int eta2;
    int du;
    int dv;
    std::size_t poly_bytes() const { return 384; }
    std::size_t ek_bytes() const { return 384u * k + 32; }
    std::size_t dk_pke_bytes() const { return 384u * k; }
    std::size_t dk_bytes() const { return 768u * k + 96; }
    std::size_t c1_bytes() const { return 32u * du * k; }
    std::size_t c2_bytes() const { return 32u * dv; }
    std::size_t ct_bytes() const { return c1_bytes() + c2_bytes(); }
};

inline Params params(ParamSet p) {
    switch (p) {
        case ParamSet::MlKem512: return {2, 3, 2, 10, 4};
        case ParamSet::MlKem768: return {3, 2, 2, 10, 4};
        case ParamSet::MlKem1024: return {4, 2, 2, 11, 5};
    }
    return {3, 2, 2, 10, 4};
}

}  // namespace qkd::mlkem::detail
