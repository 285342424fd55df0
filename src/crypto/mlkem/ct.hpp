#pragma once
// Constant-time helpers and the valgrind "declassify" hook used by the constant-time test:
// values that are derived from secrets but published anyway (rho, which is part of ek) are
// marked defined so memcheck only reports real secret-dependent branches and indexes.
#include <cstddef>
#include <cstdint>

#if defined(QKD_HAVE_VALGRIND)
#include <valgrind/memcheck.h>
#endif

namespace qkd::mlkem::detail {

inline void declassify(const void* p, std::size_t n) {
#if defined(QKD_HAVE_VALGRIND)
    (void)VALGRIND_MAKE_MEM_DEFINED(p, n);  // a no-op when not running under valgrind
#else
    (void)p;
    (void)n;
#endif
}

// Hides a value from the optimiser so that mask arithmetic is not turned into a branch.
inline std::uint8_t value_barrier(std::uint8_t x) {
    __asm__ volatile("" : "+r"(x));
    return x;
}

// 0xFF if a == b (same length), else 0x00; no early exit.
inline std::uint8_t ct_eq_mask(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) {
    std::uint8_t diff = 0;
    for (std::size_t i = 0; i < n; ++i) diff = static_cast<std::uint8_t>(diff | (a[i] ^ b[i]));
    const std::uint32_t wide = value_barrier(diff);
    return static_cast<std::uint8_t>((wide - 1) >> 8);
}

// dst = mask ? a : b, byte-wise, mask in {0x00, 0xFF}.
inline void ct_select(std::uint8_t* dst, const std::uint8_t* a, const std::uint8_t* b, std::size_t n,
                      std::uint8_t mask) {
    mask = value_barrier(mask);
    for (std::size_t i = 0; i < n; ++i)
        dst[i] = static_cast<std::uint8_t>(b[i] ^ (mask & (a[i] ^ b[i])));
}

}  // namespace qkd::mlkem::detail
