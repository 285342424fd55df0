// Constant-time check: runs ML-KEM keygen / encaps / decaps with the secret inputs (d, z, m,
// dk_pke, z in dk) marked undefined for valgrind memcheck, which then reports any branch or memory
// index that depends on them ("Conditional jump or move depends on uninitialised value",
// "Use of uninitialised value"). Run by ct_check.sh under valgrind; built without sanitizers.
//   mlkem_ct_check            the real check (expects no memcheck errors)
//   mlkem_ct_check --canary   a deliberate secret-dependent branch (expects an error), proving
//                             the harness can fail
#include <valgrind/memcheck.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "qkd/crypto/mlkem.hpp"

namespace {

using qkd::mlkem::ParamSet;

void secret(const void* p, std::size_t n) { (void)VALGRIND_MAKE_MEM_UNDEFINED(p, n); }
void publish(const void* p, std::size_t n) { (void)VALGRIND_MAKE_MEM_DEFINED(p, n); }

int run(ParamSet ps) {
    std::vector<std::uint8_t> d(32, 0x11), z(32, 0x22), m(32, 0x33);
    for (std::size_t i = 0; i < 32; ++i) {
        d[i] = static_cast<std::uint8_t>(i * 7 + static_cast<int>(ps));
        z[i] = static_cast<std::uint8_t>(i * 13 + 1);
        m[i] = static_cast<std::uint8_t>(i * 29 + 5);
    }
    secret(d.data(), 32);
    secret(z.data(), 32);
    auto kp = qkd::mlkem::keygen_internal(ps, d, z);
    if (!kp) return 1;
    publish(kp->ek.data(), kp->ek.size());  // ek is public

    secret(m.data(), 32);
    auto enc = qkd::mlkem::encaps_internal(ps, kp->ek, m);
    if (!enc) return 1;
    publish(enc->ciphertext.data(), enc->ciphertext.size());  // c is public

    // dk = dk_pke || ek || H(ek) || z: dk_pke and z are secret, the rest is public.
    const std::size_t k384 = kp->ek.size() - 32;
    publish(kp->dk.data(), kp->dk.size());
    secret(kp->dk.data(), k384);
    secret(kp->dk.data() + kp->dk.size() - 32, 32);
    auto k = qkd::mlkem::decaps(ps, kp->dk.view(), enc->ciphertext);
    if (!k) return 1;
    // Implicit rejection path: a modified ciphertext.
    auto bad = enc->ciphertext;
    bad[3] ^= 0x40;
    auto k_rej = qkd::mlkem::decaps(ps, kp->dk.view(), bad);
    if (!k_rej) return 1;

    publish(k->data(), k->size());
    publish(k_rej->data(), k_rej->size());
    publish(enc->shared_secret.data(), 32);
    if (std::memcmp(k->data(), enc->shared_secret.data(), 32) != 0) return 2;
    if (std::memcmp(k_rej->data(), enc->shared_secret.data(), 32) == 0) return 2;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--canary") == 0) {
        volatile unsigned char s = 7;
        secret(const_cast<unsigned char*>(&s), 1);
        if (s == 7) std::puts("canary branch taken");  // secret-dependent branch on purpose
        return 0;
    }
    if (!RUNNING_ON_VALGRIND) std::puts("note: not running under valgrind, nothing is checked");
    for (auto ps : {ParamSet::MlKem512, ParamSet::MlKem768, ParamSet::MlKem1024}) {
        const int rc = run(ps);
        if (rc != 0) {
            std::printf("%s: functional failure %d\n", std::string(qkd::mlkem::name(ps)).c_str(), rc);
            return rc;
        }
        std::printf("%s: keygen/encaps/decaps ran with secret inputs undefined\n",
                    std::string(qkd::mlkem::name(ps)).c_str());
    }
    return 0;
}
