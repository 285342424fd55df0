// K-PKE (FIPS 203 Alg. 13-15).
#include "kpke.hpp"

#include <memory>

#include "ct.hpp"
#include "poly.hpp"
#include "qkd/common/secret.hpp"
#include "sampling.hpp"
#include "symmetric.hpp"

namespace qkd::mlkem::detail {
namespace {

struct PolyVec {
    Poly v[kMaxK];
};

// Every stack polynomial holding secret-derived values is wiped when it goes out of scope.
template <class T>
struct Wiped {
    T x{};
    ~Wiped() { qkd::secure_zero(&x, sizeof x); }
};

}  // namespace

void kpke_keygen(const Params& p, const std::uint8_t d[32], std::uint8_t* ek, std::uint8_t* dk_pke) {
    // (rho, sigma) <- G(d || k)   (final FIPS 203 domain separation by k)
    Wiped<std::uint8_t[64]> rho_sigma;
    const std::uint8_t kbyte = static_cast<std::uint8_t>(p.k);
    hash_g(rho_sigma.x, {d, 32}, {&kbyte, 1});
    const std::uint8_t* rho = rho_sigma.x;
    const std::uint8_t* sigma = rho_sigma.x + 32;
    declassify(rho, 32);  // rho is published in ek

    Wiped<PolyVec> s, e;
    std::uint8_t n = 0;
    for (int i = 0; i < p.k; ++i) sample_cbd(s.x.v[i], sigma, n++, p.eta1);
    for (int i = 0; i < p.k; ++i) sample_cbd(e.x.v[i], sigma, n++, p.eta1);
    for (int i = 0; i < p.k; ++i) {
        ntt(s.x.v[i]);
        poly_reduce(s.x.v[i]);
        ntt(e.x.v[i]);
    }
    // t_hat = A_hat o s_hat + e_hat, with A_hat[i][j] = SampleNTT(rho || j || i).
    Wiped<Poly> t;
    Poly a;
    for (int i = 0; i < p.k; ++i) {
        for (auto& c : t.x.c) c = 0;
        for (int j = 0; j < p.k; ++j) {
            sample_ntt(a, rho, static_cast<std::uint8_t>(j), static_cast<std::uint8_t>(i));
            basemul_acc_montgomery(t.x, a, s.x.v[j]);
        }
        poly_tomont(t.x);  // cancels the 2^-16 of the Montgomery base multiplications
        poly_add(t.x, e.x.v[i]);
        poly_reduce(t.x);
        encode12(ek + 384 * i, t.x);
        encode12(dk_pke + 384 * i, s.x.v[i]);
    }
    for (int i = 0; i < 32; ++i) ek[384 * p.k + i] = rho[i];
}

void expand_ek(const Params& p, const std::uint8_t* ek, const std::uint8_t* h, ExpandedEk& out) {
    out.p = p;
    const std::uint8_t* rho = ek + 384 * p.k;
    for (int i = 0; i < p.k; ++i) {
        decode12(out.t_hat[i], ek + 384 * i);
        for (int j = 0; j < p.k; ++j)
            sample_ntt(out.a_hat_t[i][j], rho, static_cast<std::uint8_t>(i), static_cast<std::uint8_t>(j));
    }
    if (h != nullptr) {
        for (int i = 0; i < 32; ++i) out.h[i] = h[i];
    } else {
        hash_h(out.h, {ek, p.ek_bytes()});
    }
}

void kpke_encrypt(const ExpandedEk& ek, const std::uint8_t m[32], const std::uint8_t r[32], std::uint8_t* c) {
    const Params& p = ek.p;
    Wiped<PolyVec> y, e1;
    Wiped<Poly> e2, u, v, mu;
    std::uint8_t n = 0;
    for (int i = 0; i < p.k; ++i) sample_cbd(y.x.v[i], r, n++, p.eta1);
    for (int i = 0; i < p.k; ++i) sample_cbd(e1.x.v[i], r, n++, p.eta2);
    sample_cbd(e2.x, r, n, p.eta2);
    for (int i = 0; i < p.k; ++i) {
        ntt(y.x.v[i]);
        poly_reduce(y.x.v[i]);
    }
    // u = NTT^-1(A_hat^T o y_hat) + e1
    for (int i = 0; i < p.k; ++i) {
        for (auto& x : u.x.c) x = 0;
        for (int j = 0; j < p.k; ++j) basemul_acc_montgomery(u.x, ek.a_hat_t[i][j], y.x.v[j]);
        poly_reduce(u.x);
        inv_ntt(u.x);
        poly_add(u.x, e1.x.v[i]);
        compress_encode(c + 32 * p.du * i, u.x, p.du);
    }
    // v = NTT^-1(t_hat^T o y_hat) + e2 + Decompress_1(ByteDecode_1(m))
    for (auto& x : v.x.c) x = 0;
    for (int j = 0; j < p.k; ++j) basemul_acc_montgomery(v.x, ek.t_hat[j], y.x.v[j]);
    poly_reduce(v.x);
    inv_ntt(v.x);
    poly_add(v.x, e2.x);
    from_message(mu.x, m);
    poly_add(v.x, mu.x);
    compress_encode(c + 32 * p.du * p.k, v.x, p.dv);
}

void kpke_decrypt(const Params& p, const Poly* s_hat, const std::uint8_t* c, std::uint8_t m[32]) {
    // w = v' - NTT^-1(s_hat^T o NTT(u'))
    Wiped<Poly> w, v;
    Poly u;
    for (auto& x : w.x.c) x = 0;
    for (int i = 0; i < p.k; ++i) {
        decode_decompress(u, c + 32 * p.du * i, p.du);
        ntt(u);
        poly_reduce(u);
        basemul_acc_montgomery(w.x, s_hat[i], u);
    }
    poly_reduce(w.x);
    inv_ntt(w.x);
    decode_decompress(v.x, c + 32 * p.du * p.k, p.dv);
    poly_sub(v.x, w.x);
    to_message(m, v.x);
}

}  // namespace qkd::mlkem::detail
