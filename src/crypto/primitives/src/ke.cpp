#include "qkd/crypto/ke.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dh.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "qkd/crypto/mlkem.hpp"

namespace qkd::crypto {
namespace {

struct GroupInfo {
    KeGroup group;
    const char* algorithm;   // EVP_PKEY type
    const char* group_name;  // OSSL_PKEY_PARAM_GROUP_NAME, nullptr for X25519
    std::size_t field;       // octets of one coordinate / of the prime
};

constexpr GroupInfo kGroups[] = {
    {KeGroup::Modp2048, "DH", "modp_2048", 256},
    {KeGroup::Ecp256, "EC", "P-256", 32},
    {KeGroup::Ecp384, "EC", "P-384", 48},
    {KeGroup::Ecp521, "EC", "P-521", 66},
    {KeGroup::Curve25519, "X25519", nullptr, 32},
};

const GroupInfo* info(KeGroup g) {
    for (const auto& i : kGroups)
        if (i.group == g) return &i;
    return nullptr;
}

struct KemInfo {
    KeGroup group;
    mlkem::ParamSet set;
};
constexpr KemInfo kKems[] = {
    {KeGroup::MlKem512, mlkem::ParamSet::MlKem512},
    {KeGroup::MlKem768, mlkem::ParamSet::MlKem768},
    {KeGroup::MlKem1024, mlkem::ParamSet::MlKem1024},
};

std::optional<mlkem::ParamSet> kem(KeGroup g) {
    for (const auto& k : kKems)
        if (k.group == g) return k.set;
    return std::nullopt;
}

std::string method_name(KeGroup g) {
    if (auto k = kem(g)) return std::string(mlkem::name(*k));
    if (const GroupInfo* i = info(g); i && i->group_name) return i->group_name;
    if (g == KeGroup::Curve25519) return "X25519";
    return "key exchange method " + std::to_string(static_cast<unsigned>(g));
}

CryptoError unsupported(KeGroup g) {
    return CryptoError{CryptoErrc::Unsupported, "key exchange method " + std::to_string(static_cast<unsigned>(g)) +
                                                    " not supported, expected 14, 19, 20, 21, 31, 35, 36 or 37"};
}

CryptoError invalid(std::string what) { return CryptoError{CryptoErrc::InvalidPeerValue, std::move(what)}; }

CryptoError backend(const char* what) { return CryptoError{CryptoErrc::Backend, std::string("OpenSSL: ") + what}; }

struct PkeyCtx {
    EVP_PKEY_CTX* p = nullptr;
    ~PkeyCtx() { EVP_PKEY_CTX_free(p); }
};
struct Pkey {
    EVP_PKEY* p = nullptr;
    Pkey() = default;
    Pkey(Pkey&& o) noexcept : p(std::exchange(o.p, nullptr)) {}
    Pkey& operator=(Pkey&& o) noexcept {
        std::swap(p, o.p);
        return *this;
    }
    Pkey(const Pkey&) = delete;
    Pkey& operator=(const Pkey&) = delete;
    ~Pkey() { EVP_PKEY_free(p); }
};

}  // namespace

bool ke_supported(std::uint16_t id) {
    const auto g = static_cast<KeGroup>(id);
    return info(g) != nullptr || kem(g).has_value();
}

bool ke_is_kem(KeGroup g) { return kem(g).has_value(); }

std::size_t ke_data_size(KeGroup g, bool from_initiator) {
    if (auto k = kem(g)) return from_initiator ? mlkem::ek_size(*k) : mlkem::ct_size(*k);
    const GroupInfo* i = info(g);
    if (!i) return 0;
    return std::strcmp(i->algorithm, "EC") == 0 ? 2 * i->field : i->field;
}

std::size_t ke_public_size(KeGroup g) { return ke_data_size(g, true); }

namespace {

// The peer's DH public value as an EVP_PKEY, checked: point on the curve and not at infinity /
// 1 < y < p-1 (RFC 7296 5.12). No key generation, so this is the cheap part of a DH.
Result<Pkey, CryptoError> peer_dh_key(const GroupInfo* gi, std::span<const std::uint8_t> peer) {
    const std::string alg = gi->algorithm;
    Pkey peer_key;
    if (alg == "X25519") {
        peer_key.p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer.data(), peer.size());
        if (!peer_key.p) return Err{invalid("X25519 public value rejected")};
        return peer_key;
    }
    PkeyCtx fctx{EVP_PKEY_CTX_new_from_name(nullptr, gi->algorithm, nullptr)};
    if (!fctx.p || EVP_PKEY_fromdata_init(fctx.p) != 1) return Err{backend("fromdata init")};
    std::uint8_t point[1 + 2 * 66];
    BIGNUM* y = nullptr;
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(gi->group_name), 0);
    OSSL_PARAM_BLD* bld = nullptr;
    OSSL_PARAM* built = nullptr;
    if (alg == "EC") {
        point[0] = 0x04;
        std::memcpy(point + 1, peer.data(), peer.size());
        params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, peer.size() + 1);
        params[2] = OSSL_PARAM_construct_end();
    } else {
        y = BN_bin2bn(peer.data(), static_cast<int>(peer.size()), nullptr);
        bld = OSSL_PARAM_BLD_new();
        if (!y || !bld || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, gi->group_name, 0) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, y) != 1 || !(built = OSSL_PARAM_BLD_to_param(bld))) {
            BN_free(y);
            OSSL_PARAM_BLD_free(bld);
            return Err{backend("DH param build")};
        }
    }
    const int r = EVP_PKEY_fromdata(fctx.p, &peer_key.p, EVP_PKEY_PUBLIC_KEY, built ? built : params);
    OSSL_PARAM_free(built);
    OSSL_PARAM_BLD_free(bld);
    BN_free(y);
    if (r != 1 || !peer_key.p) return Err{invalid(std::string(gi->group_name) + " public value rejected")};
    // The "quick" check skips the order multiplication, which cofactor-1 NIST curves and the
    // safe-prime MODP group do not need.
    PkeyCtx check{EVP_PKEY_CTX_new_from_pkey(nullptr, peer_key.p, nullptr)};
    if (!check.p || EVP_PKEY_public_check_quick(check.p) != 1)
        return Err{invalid(std::string(gi->group_name) + " public value fails the validity check")};
    return peer_key;
}

Result<void, CryptoError> check_length(KeGroup g, std::span<const std::uint8_t> data, bool from_initiator) {
    const std::size_t want = ke_data_size(g, from_initiator);
    if (data.size() != want)
        return Err{invalid(method_name(g) + " KE data of " + std::to_string(data.size()) + " octets from the " +
                           (from_initiator ? "initiator" : "responder") + ", expected " + std::to_string(want))};
    return {};
}

}  // namespace

Result<void, CryptoError> check_peer_data(KeGroup g, std::span<const std::uint8_t> data, bool from_initiator) {
    if (!ke_supported(static_cast<std::uint16_t>(g))) return Err{unsupported(g)};
    if (auto r = check_length(g, data, from_initiator); !r) return r;
    if (auto k = kem(g)) {
        // FIPS 203 7.2: every 12-bit coefficient of ek below q. A ciphertext has only a length
        // check (7.3).
        if (from_initiator && !mlkem::check_ek(*k, data))
            return Err{invalid(method_name(g) + " encapsulation key fails the FIPS 203 7.2 modulus check (a coefficient >= q)")};
        return {};
    }
    auto key = peer_dh_key(info(g), data);
    if (!key) return Err{key.error()};
    return {};
}

struct KeyExchange::Impl {
    const GroupInfo* gi = nullptr;  // DH methods
    EVP_PKEY* key = nullptr;
    std::optional<mlkem::ParamSet> kem;  // ML-KEM: the decapsulation key
    SecretBytes dk;
    ~Impl() { EVP_PKEY_free(key); }
};

KeyExchange::~KeyExchange() = default;
KeyExchange::KeyExchange(KeyExchange&&) noexcept = default;
KeyExchange& KeyExchange::operator=(KeyExchange&&) noexcept = default;

Result<KeyExchange, CryptoError> KeyExchange::generate(KeGroup g) {
    if (auto k = kem(g)) {
        // FIPS 203 Alg. 19 with d, z from qkd::random_bytes.
        auto pair = mlkem::keygen(*k);
        KeyExchange ke;
        ke.group_ = g;
        ke.impl_ = std::make_unique<Impl>();
        ke.impl_->kem = k;
        ke.impl_->dk = std::move(pair.dk);
        ke.public_ = std::move(pair.ek);
        return ke;
    }
    const GroupInfo* gi = info(g);
    if (!gi) return Err{unsupported(g)};
    PkeyCtx ctx{EVP_PKEY_CTX_new_from_name(nullptr, gi->algorithm, nullptr)};
    if (!ctx.p || EVP_PKEY_keygen_init(ctx.p) != 1) return Err{backend("keygen init")};
    if (gi->group_name) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(gi->group_name), 0),
            OSSL_PARAM_construct_end(),
        };
        if (EVP_PKEY_CTX_set_params(ctx.p, params) != 1) return Err{backend("set group")};
    }
    KeyExchange ke;
    ke.group_ = g;
    ke.impl_ = std::make_unique<Impl>();
    ke.impl_->gi = gi;
    if (EVP_PKEY_generate(ctx.p, &ke.impl_->key) != 1) return Err{backend("keygen")};

    const std::string alg = gi->algorithm;
    if (alg == "EC") {
        // RFC 5903 7: the KE data is x | y, each padded to the field size; no 0x04 prefix.
        std::uint8_t buf[1 + 2 * 66];
        std::size_t len = 0;
        if (EVP_PKEY_get_octet_string_param(ke.impl_->key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof buf, &len) != 1 ||
            len != 1 + 2 * gi->field || buf[0] != 0x04)
            return Err{backend("EC public key export")};
        ke.public_.assign(buf + 1, buf + len);
    } else if (alg == "X25519") {
        std::size_t len = 32;
        ke.public_.resize(32);
        if (EVP_PKEY_get_raw_public_key(ke.impl_->key, ke.public_.data(), &len) != 1 || len != 32)
            return Err{backend("X25519 public key export")};
    } else {
        // RFC 7296 3.4: MODP public values are padded with zeros to the length of the prime.
        BIGNUM* y = nullptr;
        if (EVP_PKEY_get_bn_param(ke.impl_->key, OSSL_PKEY_PARAM_PUB_KEY, &y) != 1)
            return Err{backend("DH public key export")};
        ke.public_.resize(gi->field);
        const int r = BN_bn2binpad(y, ke.public_.data(), static_cast<int>(gi->field));
        BN_free(y);
        if (r < 0) return Err{backend("DH public key encode")};
    }
    return ke;
}

Result<KeyExchange, CryptoError> KeyExchange::from_private(KeGroup g, std::span<const std::uint8_t> priv) {
    if (auto k = kem(g); k && priv.size() == 2 * mlkem::kSeedSize) {
        auto pair = mlkem::keygen_internal(*k, priv.first(mlkem::kSeedSize), priv.subspan(mlkem::kSeedSize));
        if (!pair) return Err{CryptoError{CryptoErrc::InvalidKey, std::string(mlkem::to_string(pair.error()))}};
        KeyExchange ke;
        ke.group_ = g;
        ke.impl_ = std::make_unique<Impl>();
        ke.impl_->kem = k;
        ke.impl_->dk = std::move(pair->dk);
        ke.public_ = std::move(pair->ek);
        return ke;
    }
    if (g != KeGroup::Curve25519 || priv.size() != 32)
        return Err{CryptoError{CryptoErrc::Unsupported,
                               "from_private supports X25519 with a 32-octet key and ML-KEM with a 64-octet d | z only"}};
    KeyExchange ke;
    ke.group_ = g;
    ke.impl_ = std::make_unique<Impl>();
    ke.impl_->gi = info(g);
    ke.impl_->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, priv.data(), priv.size());
    std::size_t len = 32;
    ke.public_.resize(32);
    if (!ke.impl_->key || EVP_PKEY_get_raw_public_key(ke.impl_->key, ke.public_.data(), &len) != 1)
        return Err{backend("X25519 private key import")};
    return ke;
}

Result<SecretBytes, CryptoError> KeyExchange::derive(std::span<const std::uint8_t> peer) const {
    if (auto r = check_length(group_, peer, false); !r) return Err{r.error()};
    if (impl_->kem) {
        // FIPS 203 Alg. 21: implicit rejection, so only a length error is possible here.
        auto k = mlkem::decaps(*impl_->kem, impl_->dk.view(), peer);
        if (!k) return Err{invalid(method_name(group_) + ": " + std::string(mlkem::to_string(k.error())))};
        return std::move(k).value();
    }
    auto peer_key = peer_dh_key(impl_->gi, peer);
    if (!peer_key) return Err{peer_key.error()};
    PkeyCtx dctx{EVP_PKEY_CTX_new_from_pkey(nullptr, impl_->key, nullptr)};
    if (!dctx.p || EVP_PKEY_derive_init(dctx.p) != 1) return Err{backend("derive init")};
    if (std::strcmp(impl_->gi->algorithm, "DH") == 0 && EVP_PKEY_CTX_set_dh_pad(dctx.p, 1) != 1)
        return Err{backend("dh pad")};
    // peer_dh_key has already checked the value (on the curve and not the point at infinity, or
    // 1 < y < p-1), which is all RFC 7296 5.12 asks for these groups: the NIST curves have
    // cofactor 1, X25519 needs no check, and in the safe-prime MODP group the only element of small
    // order besides 1 is p-1. validate_peer = 0 skips OpenSSL's second, full check (the n*Q
    // multiplication), about 0.2 ms of a P-521 responder's 0.7 ms per SA (bench/ike/README.md).
    if (EVP_PKEY_derive_set_peer_ex(dctx.p, peer_key->p, /*validate_peer=*/0) != 1)
        return Err{invalid("peer public value rejected by OpenSSL")};
    std::size_t len = 0;
    if (EVP_PKEY_derive(dctx.p, nullptr, &len) != 1) return Err{backend("derive size")};
    SecretBytes secret(len);
    if (EVP_PKEY_derive(dctx.p, secret.data(), &len) != 1)
        return Err{invalid("key derivation failed (e.g. all-zero X25519 result)")};
    secret.resize(len);
    return secret;
}

Result<KeResponse, CryptoError> KeyExchange::respond(KeGroup g, std::span<const std::uint8_t> initiator_data) {
    if (!ke_supported(static_cast<std::uint16_t>(g))) return Err{unsupported(g)};
    if (auto r = check_length(g, initiator_data, true); !r) return Err{r.error()};
    if (auto k = kem(g)) {
        // FIPS 203 Alg. 20 after the 7.2 input check of ek (done by parse).
        auto ek = mlkem::EncapsulationKey::parse(*k, initiator_data);
        if (!ek) return Err{invalid(method_name(g) + " encapsulation key fails the FIPS 203 7.2 modulus check (a coefficient >= q)")};
        auto enc = ek->encaps();
        return KeResponse{std::move(enc.ciphertext), std::move(enc.shared_secret)};
    }
    // DH: our key pair, then the secret from the initiator's value (checked by derive, as
    // DH values are the same both ways; the engine runs check_peer_data before this anyway).
    auto ours = generate(g);
    if (!ours) return Err{ours.error()};
    auto secret = ours->derive(initiator_data);
    if (!secret) return Err{secret.error()};
    return KeResponse{std::move(ours->public_), std::move(secret).value()};
}

}  // namespace qkd::crypto
