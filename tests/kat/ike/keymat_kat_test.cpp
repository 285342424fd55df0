// Known-answer checks of our IKEv2 key schedule (src/ike/keymat) against strongSwan 6.1: every
// value in strongswan61_addke.json was logged by a strongSwan 6.1 initiator talking to another
// strongSwan 6.1 (charon ike/chd log level 4, see capture-strongswan61.sh and the provenance in
// the file). Our functions must reproduce them byte for byte:
//   IKE_SA_INIT   SKEYSEED = prf(Ni | Nr, g^ir), {SK_d|SK_ei|SK_er|SK_pi|SK_pr} = prf+(SKEYSEED,
//                 Ni | Nr | SPIi | SPIr)                                         (RFC 7296 2.14)
//   round n       SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr), keys re-derived  (RFC 9370 2.2.2)
//   IntAuth       IntAuth_N = prf(SK_p, IntAuth_(N-1) | A | P)                    (RFC 9242 3.3.2)
//   AUTH (PSK)    prf(prf(PSK, pad), message | nonce | prf(SK_p, ID') | IntAuth_i | IntAuth_r | MID)
//   child SA      KEYMAT = prf+(SK_d, [SK(0) |] Ni | Nr [| SK(1) | ... | SK(n)]) (RFC 7296 2.17, 9370 2.2.4)
//   IKE rekey     SKEYSEED = prf(SK_d(old), SK(0) | Ni | Nr [| SK(1) | ... | SK(n)]) (RFC 7296 2.18, 9370 2.2.4)
// keymat::int_auth, psk_auth with the IntAuth tail, and the RFC 9370 forms of skeyseed_rekey and
// derive_child_keys are what the engine calls; int_auth_octets (tasks/) rebuilds strongSwan's A | P.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "keymat/keymat.hpp"
#include "tasks/task.hpp"
#include "wire/message.hpp"

using namespace qkd;
using namespace qkd::ike::keymat;
using crypto::Prf;
using crypto::PrfAlg;
using Json = nlohmann::json;
using Vec = std::vector<std::uint8_t>;

namespace {

const Json& vectors() {
    static const Json j = [] {
        std::ifstream f(IKE_KAT_FILE);
        if (!f) throw std::runtime_error("cannot open " IKE_KAT_FILE);
        return Json::parse(f);
    }();
    return j;
}

Vec hex(const Json& v) {
    const std::string s = v.get<std::string>();
    if (s.size() % 2) throw std::runtime_error("odd-length hex string in the vectors");
    Vec out(s.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>(std::stoul(s.substr(2 * i, 2), nullptr, 16));
    return out;
}
SecretBytes secret(const Json& v) { return SecretBytes(hex(v)); }
std::uint64_t spi(const Json& v) {
    const Vec b = hex(v);
    if (b.size() != 8) throw std::runtime_error("an SPI has 8 octets");
    std::uint64_t x = 0;
    for (auto c : b) x = (x << 8) | c;
    return x;
}
Vec cat(std::initializer_list<std::span<const std::uint8_t>> parts) {
    Vec out;
    for (auto p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}
Vec to_vec(std::span<const std::uint8_t> s) { return Vec(s.begin(), s.end()); }
// Hex of a value, for the failure message only (these are test vectors, not live secrets).
std::string hexs(std::span<const std::uint8_t> b) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (auto c : b) s += {d[c >> 4], d[c & 15]};
    return s;
}
#define EXPECT_BYTES(actual, expected_json, what)                                                   \
    do {                                                                                           \
        const Vec exp_ = hex(expected_json);                                                       \
        const Vec act_ = to_vec(actual); /* copied before a temporary behind it dies */            \
        EXPECT_TRUE(ct_equal(act_, exp_))                                                          \
            << (what) << "\n  ours:       " << hexs(act_) << "\n  strongSwan: " << hexs(exp_); \
    } while (0)

// Our IKE SA keys for SKEYSEED with the handshake's IKE_SA_INIT nonces and the given SPIs vs the log.
void expect_ike_keys(Prf& prf, const SecretBytes& skeyseed, const Vec& ni, const Vec& nr, const Json& spis,
                     const Json& logged, const std::string& what) {
    auto k = derive_ike_keys(prf, skeyseed, ni, nr, spi(spis["spi_i"]), spi(spis["spi_r"]), 36);
    ASSERT_TRUE(k.ok()) << what;
    EXPECT_BYTES(k->sk_d.view(), logged["sk_d"], what + ": SK_d");
    EXPECT_BYTES(k->sk_ei.view(), logged["sk_ei"], what + ": SK_ei");
    EXPECT_BYTES(k->sk_er.view(), logged["sk_er"], what + ": SK_er");
    EXPECT_BYTES(k->sk_pi.view(), logged["sk_pi"], what + ": SK_pi");
    EXPECT_BYTES(k->sk_pr.view(), logged["sk_pr"], what + ": SK_pr");
}

class StrongSwan61 : public ::testing::TestWithParam<std::size_t> {
protected:
    const Json& hs() const { return vectors()["handshakes"].at(GetParam()); }
    std::string name() const { return hs()["proposal"].get<std::string>(); }
};

// RFC 7296 2.14 after IKE_SA_INIT (ECP-521 or X25519).
TEST_P(StrongSwan61, IkeSaInitSkeyseedAndKeys) {
    Prf prf(PrfAlg::HmacSha512);
    const Json& i = hs()["ike_sa_init"];
    const Vec ni = hex(i["ni"]), nr = hex(i["nr"]);
    auto skeyseed = skeyseed_initial(prf, ni, nr, secret(i["sk0"]));
    EXPECT_BYTES(skeyseed.view(), i["skeyseed"], name() + ": SKEYSEED(0)");
    expect_ike_keys(prf, secret(i["skeyseed"]), ni, nr, i, i, name() + " IKE_SA_INIT");
}

// RFC 9370 2.2.2: each IKE_INTERMEDIATE's ML-KEM secret updates SKEYSEED from the previous SK_d;
// nonces and SPIs stay those of IKE_SA_INIT. Chained from our own output, not the logged one.
TEST_P(StrongSwan61, IntermediateRoundsChainSkeyseed) {
    Prf prf(PrfAlg::HmacSha512);
    const Json& i = hs()["ike_sa_init"];
    const Vec ni = hex(i["ni"]), nr = hex(i["nr"]);
    ASSERT_FALSE(hs()["ike_intermediate"].empty());
    auto k = derive_ike_keys(prf, skeyseed_initial(prf, ni, nr, secret(i["sk0"])), ni, nr, spi(i["spi_i"]),
                             spi(i["spi_r"]), 36);
    ASSERT_TRUE(k.ok());
    SecretBytes sk_d = std::move(k->sk_d);
    for (const Json& r : hs()["ike_intermediate"]) {
        const std::string what = name() + " round " + std::to_string(r["round"].get<int>()) + " (" +
                                 r["ke_method"].get<std::string>() + ")";
        auto skeyseed = skeyseed_addke(prf, sk_d, secret(r["sk_n"]), ni, nr);
        EXPECT_BYTES(skeyseed.view(), r["skeyseed"], what + ": SKEYSEED(n)");
        expect_ike_keys(prf, skeyseed, ni, nr, i, r, what);
        auto kn = derive_ike_keys(prf, skeyseed, ni, nr, spi(i["spi_i"]), spi(i["spi_r"]), 36);
        ASSERT_TRUE(kn.ok());
        sk_d = std::move(kn->sk_d);
    }
}

// RFC 9242 3.3.2: IntAuth_iN / IntAuth_rN over each IKE_INTERMEDIATE request / response, chained
// from our own previous value, keyed with SK_pi / SK_pr of the keys protecting that exchange.
TEST_P(StrongSwan61, IntAuthChain) {
    Prf prf(PrfAlg::HmacSha512);
    Vec prev_i, prev_r;
    SecretBytes sk_pi = secret(hs()["ike_sa_init"]["sk_pi"]), sk_pr = secret(hs()["ike_sa_init"]["sk_pr"]);
    for (const Json& r : hs()["ike_intermediate"]) {
        for (const char* side : {"intauth_i", "intauth_r"}) {
            const Json& ia = r[side];
            const bool ini = side[8] == 'i';
            Vec& prev = ini ? prev_i : prev_r;
            EXPECT_BYTES(hex(ia["prev"]), Json(hexs(prev)), name() + ": " + side + " chains from the previous round");
            EXPECT_BYTES(hex(ia["sk_p"]), Json(hexs((ini ? sk_pi : sk_pr).view())), name() + ": " + side + " key");
            auto v = int_auth(prf, ini ? sk_pi : sk_pr, prev, hex(ia["a_p"]));
            EXPECT_BYTES(v.view(), ia["intauth"], name() + ": " + side);
            // Our octet builder (tasks/ike_intermediate.cpp) gives strongSwan's A | P from the
            // header, the first inner payload type and the inner payloads.
            const Vec ap = hex(ia["a_p"]);
            auto h = qkd::ike::wire::Header::decode(ap);
            ASSERT_TRUE(h.ok()) << name() << ": " << side;
            EXPECT_EQ(qkd::ike::int_auth_octets(*h, static_cast<qkd::ike::wire::PayloadType>(ap[28]), std::span(ap).subspan(32)), ap)
                << name() << ": " << side << " A | P";
            prev.assign(v.view().begin(), v.view().end());
        }
        sk_pi = secret(r["sk_pi"]);
        sk_pr = secret(r["sk_pr"]);
    }
}

// RFC 7296 2.15 + RFC 9242 3.3.3: the PSK AUTH of both sides, signed octets
// RealMessage | Nonce | prf(SK_p, ID') | IntAuth_iN | IntAuth_rN | IKE_AUTH message ID.
TEST_P(StrongSwan61, PskAuthWithIntAuth) {
    Prf prf(PrfAlg::HmacSha512);
    const SecretBytes psk = secret(hs()["ike_auth"]["psk"]);
    for (const char* side : {"initiator", "responder"}) {
        const Json& a = hs()["ike_auth"][side];
        const Vec msg = hex(a["real_message"]), nonce = hex(a["nonce_peer"]), id = hex(a["id_body"]);
        const SecretBytes sk_p = secret(a["sk_p"]);
        const Vec tail = cat({hex(a["intauth_i"]), hex(a["intauth_r"]), hex(a["mid"])});
        EXPECT_EQ(hex(a["octets"]), cat({msg, nonce, prf.compute(sk_p.view(), {id}).view(), tail})) << name() << " " << side;
        EXPECT_BYTES(psk_auth(prf, psk, msg, nonce, sk_p, id, tail).view(), a["auth"], name() + " " + side + ": AUTH");
        // Without the IntAuth tail the AUTH differs: the binding is real.
        EXPECT_FALSE(ct_equal(psk_auth(prf, psk, msg, nonce, sk_p, id).view(), hex(a["auth"]))) << name() << " " << side;
        // A wrong IntAuth (one bit of IntAuth_i) gives another AUTH: the peer answers
        // AUTHENTICATION_FAILED (RFC 9242 3.3.3 binds every IKE_INTERMEDIATE into AUTH).
        Vec bad = tail;
        bad[0] ^= 1;
        EXPECT_FALSE(ct_equal(psk_auth(prf, psk, msg, nonce, sk_p, id, bad).view(), hex(a["auth"]))) << name() << " " << side;
    }
}

// RFC 7296 2.17: the CHILD SA of IKE_AUTH, from the final SK_d (after all IKE_INTERMEDIATE rounds).
TEST_P(StrongSwan61, ChildSaOfIkeAuth) {
    Prf prf(PrfAlg::HmacSha512);
    const Json& c = hs()["child_ike_auth"];
    auto k = derive_child_keys(prf, secret(c["sk_d"]), nullptr, hex(c["ni"]), hex(c["nr"]), 32);
    ASSERT_TRUE(k.ok());
    EXPECT_BYTES(cat({k->i_to_r.key.view(), k->i_to_r.salt.view()}), c["keymat_i_to_r"], name() + ": child i->r key|salt");
    EXPECT_BYTES(cat({k->r_to_i.key.view(), k->r_to_i.salt.view()}), c["keymat_r_to_i"], name() + ": child r->i key|salt");
}

// RFC 9370 2.2.4: CHILD SA rekey with PFS, CREATE_CHILD_SA (SK(0)) + IKE_FOLLOWUP_KE (SK(1..n)):
// KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)).
TEST_P(StrongSwan61, ChildRekeyWithAddke) {
    Prf prf(PrfAlg::HmacSha512);
    const Json& c = hs()["child_rekey_pfs"];
    std::vector<SecretBytes> adds;
    for (const Json& x : c["sk_add"]) adds.push_back(secret(x));
    std::vector<const SecretBytes*> add_ptrs;
    for (auto& a : adds) add_ptrs.push_back(&a);
    const SecretBytes sk_d = secret(c["sk_d"]), sk0 = secret(c["sk0"]);
    auto k = derive_child_keys(prf, sk_d, &sk0, hex(c["ni"]), hex(c["nr"]), 32, add_ptrs);
    ASSERT_TRUE(k.ok());
    EXPECT_BYTES(cat({k->i_to_r.key.view(), k->i_to_r.salt.view()}), c["keymat_i_to_r"], name() + ": rekeyed child i->r");
    EXPECT_BYTES(cat({k->r_to_i.key.view(), k->r_to_i.salt.view()}), c["keymat_r_to_i"], name() + ": rekeyed child r->i");
    // The classical part alone gives other keys.
    auto classic = derive_child_keys(prf, sk_d, &sk0, hex(c["ni"]), hex(c["nr"]), 32);
    ASSERT_TRUE(classic.ok());
    EXPECT_FALSE(ct_equal(classic->i_to_r.key.view(), k->i_to_r.key.view()));
}

// RFC 9370 2.2.4: IKE SA rekey, CREATE_CHILD_SA + IKE_FOLLOWUP_KE:
// SKEYSEED = prf(SK_d(old), SK(0) | Ni | Nr | SK(1) | ... | SK(n)), then prf+ with the new nonces
// and SPIs.
TEST_P(StrongSwan61, IkeRekeyWithFollowupKe) {
    Prf prf(PrfAlg::HmacSha512);
    const Json& r = hs()["ike_rekey"];
    std::vector<SecretBytes> adds;
    for (const Json& x : r["sk_add"]) adds.push_back(secret(x));
    std::vector<const SecretBytes*> add_ptrs;
    for (auto& a : adds) add_ptrs.push_back(&a);
    const Vec ni = hex(r["ni"]), nr = hex(r["nr"]);
    const SecretBytes sk_d_old = secret(r["sk_d_old"]), sk0 = secret(r["sk0"]);
    auto skeyseed = skeyseed_rekey(prf, sk_d_old, sk0, ni, nr, add_ptrs);
    EXPECT_BYTES(skeyseed.view(), r["skeyseed"], name() + ": rekey SKEYSEED");
    // Without the additional secrets the SKEYSEED differs.
    EXPECT_FALSE(ct_equal(skeyseed_rekey(prf, sk_d_old, sk0, ni, nr).view(), hex(r["skeyseed"])));
    expect_ike_keys(prf, skeyseed, ni, nr, r, r, name() + " rekeyed IKE SA");
}

// The SK_d the rekeys start from is the one our chain produced after the last IKE_INTERMEDIATE.
TEST_P(StrongSwan61, RekeysStartFromTheFinalSkD) {
    const Json& rounds = hs()["ike_intermediate"];
    const Json& last = rounds.empty() ? hs()["ike_sa_init"] : rounds.back();
    EXPECT_EQ(hs()["ike_rekey"]["sk_d_old"], last["sk_d"]);
    EXPECT_EQ(hs()["child_rekey_pfs"]["sk_d"], last["sk_d"]);
    EXPECT_EQ(hs()["child_ike_auth"]["sk_d"], last["sk_d"]);
}

std::string param_name(const ::testing::TestParamInfo<std::size_t>& p) {
    std::string s = vectors()["handshakes"].at(p.param)["proposal"].get<std::string>();
    for (auto& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

INSTANTIATE_TEST_SUITE_P(Vectors, StrongSwan61, ::testing::Range<std::size_t>(0, 2), param_name);

TEST(StrongSwan61Vectors, FileHasProvenanceAndTwoHandshakes) {
    const Json& v = vectors();
    ASSERT_EQ(v["handshakes"].size(), 2u);
    for (const Json& h : v["handshakes"]) {
        bool has_version = false;
        for (const Json& l : h["provenance"]) has_version |= l.get<std::string>().rfind("charon-systemd 6.1", 0) == 0;
        EXPECT_TRUE(has_version) << h["proposal"];
    }
}

}  // namespace
