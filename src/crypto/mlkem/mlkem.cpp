// ML-KEM key generation, encapsulation and decapsulation (FIPS 203 6, 7).
#include "qkd/crypto/mlkem.hpp"

#include "ct.hpp"
#include "kpke.hpp"
#include "params.hpp"
#include "poly.hpp"
#include "symmetric.hpp"
#include "qkd/common/secret.hpp"

namespace qkd::mlkem {

using detail::params;

std::size_t ek_size(ParamSet p) { return params(p).ek_bytes(); }
std::size_t dk_size(ParamSet p) { return params(p).dk_bytes(); }
std::size_t ct_size(ParamSet p) { return params(p).ct_bytes(); }

std::string_view name(ParamSet p) {
    switch (p) {
        case ParamSet::MlKem512: return "ML-KEM-512";
        case ParamSet::MlKem768: return "ML-KEM-768";
        case ParamSet::MlKem1024: return "ML-KEM-1024";
    }
    return "ML-KEM-?";
}

std::string_view to_string(Error e) {
    switch (e) {
        case Error::BadSeedLength: return "ML-KEM seed (d, z or m) must be 32 bytes";
        case Error::BadEncapsulationKey:
            return "ML-KEM encapsulation key invalid: expected 384k+32 bytes with every coefficient < 3329";
        case Error::BadDecapsulationKey:
            return "ML-KEM decapsulation key invalid: expected 768k+96 bytes with H(ek) matching the embedded hash";
        case Error::BadCiphertextLength: return "ML-KEM ciphertext has the wrong length for the parameter set";
    }
    return "ML-KEM: unknown error";
}

// FIPS 203 7.2: length check and modulus check ByteEncode12(ByteDecode12(ek)) == ek.
bool check_ek(ParamSet ps, std::span<const std::uint8_t> ek) {
    const auto p = params(ps);
    if (ek.size() != p.ek_bytes()) return false;
    bool ok = true;
    for (int i = 0; i < p.k; ++i) ok = detail::encoding12_reduced(ek.data() + 384 * i) && ok;
    return ok;
}

// FIPS 203 7.3: length check and hash check H(dk[384k : 768k+32]) == dk[768k+32 : 768k+64].
bool check_dk(ParamSet ps, std::span<const std::uint8_t> dk) {
    const auto p = params(ps);
    if (dk.size() != p.dk_bytes()) return false;
    std::uint8_t h[32];
    detail::hash_h(h, dk.subspan(p.dk_pke_bytes(), p.ek_bytes()));
    return detail::ct_eq_mask(h, dk.data() + p.dk_pke_bytes() + p.ek_bytes(), 32) == 0xFF;
}

// Alg. 16 ML-KEM.KeyGen_internal: dk = dk_pke || ek || H(ek) || z.
qkd::Result<KeyPair, Error> keygen_internal(ParamSet ps, std::span<const std::uint8_t> d,
                                            std::span<const std::uint8_t> z) {
    if (d.size() != kSeedSize || z.size() != kSeedSize) return qkd::Err{Error::BadSeedLength};
    const auto p = params(ps);
    KeyPair kp{std::vector<std::uint8_t>(p.ek_bytes()), qkd::SecretBytes(p.dk_bytes())};
    std::uint8_t* dk = kp.dk.data();
    detail::kpke_keygen(p, d.data(), kp.ek.data(), dk);
    std::uint8_t* dk_ek = dk + p.dk_pke_bytes();
    for (std::size_t i = 0; i < p.ek_bytes(); ++i) dk_ek[i] = kp.ek[i];
    detail::hash_h(dk_ek + p.ek_bytes(), kp.ek);
    std::uint8_t* dk_z = dk_ek + p.ek_bytes() + 32;
    for (std::size_t i = 0; i < kSeedSize; ++i) dk_z[i] = z[i];
    return kp;
}

}  // namespace qkd::mlkem

namespace qkd::mlkem::detail {
struct ExpandedDk {
    ExpandedEk ek;
    Poly s_hat[kMaxK];  // secret
    std::uint8_t z[32];  // secret
    ~ExpandedDk() {
        qkd::secure_zero(s_hat, sizeof s_hat);
        qkd::secure_zero(z, sizeof z);
    }
};
}  // namespace qkd::mlkem::detail

namespace qkd::mlkem {

qkd::Result<EncapsulationKey, Error> EncapsulationKey::parse(ParamSet ps, std::span<const std::uint8_t> ek) {
    if (!check_ek(ps, ek)) return qkd::Err{Error::BadEncapsulationKey};
    auto x = std::make_shared<detail::ExpandedEk>();
    detail::expand_ek(params(ps), ek.data(), nullptr, *x);
    return EncapsulationKey(ps, std::move(x));
}

// Alg. 17 ML-KEM.Encaps_internal: (K, r) = G(m || H(ek)); c = K-PKE.Encrypt(ek, m, r).
qkd::Result<Encapsulation, Error> EncapsulationKey::encaps_internal(std::span<const std::uint8_t> m) const {
    if (m.size() != kSeedSize) return qkd::Err{Error::BadSeedLength};
    qkd::SecretBytes k_r(64);
    detail::hash_g(k_r.data(), m, {x_->h, 32});
    Encapsulation out{qkd::SecretBytes(k_r.view().first(32)), std::vector<std::uint8_t>(x_->p.ct_bytes())};
    detail::kpke_encrypt(*x_, m.data(), k_r.data() + 32, out.ciphertext.data());
    return out;
}

qkd::Result<Encapsulation, Error> encaps_internal(ParamSet ps, std::span<const std::uint8_t> ek,
                                                  std::span<const std::uint8_t> m) {
    if (m.size() != kSeedSize) return qkd::Err{Error::BadSeedLength};
    auto key = EncapsulationKey::parse(ps, ek);
    if (!key) return qkd::Err{key.error()};
    return key->encaps_internal(m);
}

DecapsulationKey::DecapsulationKey(ParamSet p, std::unique_ptr<detail::ExpandedDk> x) : p_(p), x_(std::move(x)) {}
DecapsulationKey::DecapsulationKey(DecapsulationKey&&) noexcept = default;
DecapsulationKey& DecapsulationKey::operator=(DecapsulationKey&&) noexcept = default;
DecapsulationKey::~DecapsulationKey() = default;

qkd::Result<DecapsulationKey, Error> DecapsulationKey::parse(ParamSet ps, std::span<const std::uint8_t> dk) {
    if (!check_dk(ps, dk)) return qkd::Err{Error::BadDecapsulationKey};
    const auto p = params(ps);
    const std::uint8_t* ek_pke = dk.data() + p.dk_pke_bytes();
    const std::uint8_t* h = ek_pke + p.ek_bytes();
    auto x = std::make_unique<detail::ExpandedDk>();
    detail::expand_ek(p, ek_pke, h, x->ek);
    for (int i = 0; i < p.k; ++i) detail::decode12(x->s_hat[i], dk.data() + 384 * i);
    for (int i = 0; i < 32; ++i) x->z[i] = h[32 + i];
    return DecapsulationKey(ps, std::move(x));
}

// Alg. 18 ML-KEM.Decaps_internal with implicit rejection.
qkd::Result<qkd::SecretBytes, Error> DecapsulationKey::decaps(std::span<const std::uint8_t> c) const {
    const auto& p = x_->ek.p;
    if (c.size() != p.ct_bytes()) return qkd::Err{Error::BadCiphertextLength};
    qkd::SecretBytes m(32), k_r(64), k_bar(32), c_prime(p.ct_bytes());
    detail::kpke_decrypt(p, x_->s_hat, c.data(), m.data());
    detail::hash_g(k_r.data(), m.view(), {x_->ek.h, 32});  // (K', r') = G(m' || h)
    detail::hash_j(k_bar.data(), {x_->z, 32}, c);          // K_bar = J(z || c)
    detail::kpke_encrypt(x_->ek, m.data(), k_r.data() + 32, c_prime.data());
    // if c != c' then K' = K_bar, selected without a branch on the comparison.
    const std::uint8_t same = detail::ct_eq_mask(c.data(), c_prime.data(), c.size());
    qkd::SecretBytes key(32);
    detail::ct_select(key.data(), k_r.data(), k_bar.data(), 32, same);
    return key;
}

qkd::Result<qkd::SecretBytes, Error> decaps(ParamSet ps, std::span<const std::uint8_t> dk,
                                            std::span<const std::uint8_t> c) {
    if (c.size() != params(ps).ct_bytes()) return qkd::Err{Error::BadCiphertextLength};
    auto key = DecapsulationKey::parse(ps, dk);
    if (!key) return qkd::Err{key.error()};
    return key->decaps(c);
}

}  // namespace qkd::mlkem
