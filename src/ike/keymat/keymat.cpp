#include "keymat.hpp"

#include <array>
#include <cstring>

namespace qkd::ike::keymat {

SecretBytes skeyseed_initial(crypto::Prf& prf, Bytes ni, Bytes nr, const SecretBytes& g_ir) {
    // RFC 7296 2.14: the PRF key is Ni | Nr (HMAC takes keys of any length).
    SecretBytes key(ni.size() + nr.size());
    std::memcpy(key.data(), ni.data(), ni.size());
    std::memcpy(key.data() + ni.size(), nr.data(), nr.size());
    return prf.compute(key.view(), {g_ir.view()});
}

SecretBytes skeyseed_rekey(crypto::Prf& prf, const SecretBytes& sk_d_old, const SecretBytes& g_ir, Bytes ni, Bytes nr,
                           std::span<const SecretBytes* const> adds) {
    SecretBytes data;
    data.append(g_ir.view());
    data.append(ni);
    data.append(nr);
    for (const SecretBytes* sk : adds) data.append(sk->view());
    return prf.compute(sk_d_old.view(), {data.view()});
}

SecretBytes skeyseed_addke(crypto::Prf& prf, const SecretBytes& sk_d_prev, const SecretBytes& sk_n, Bytes ni, Bytes nr) {
    return prf.compute(sk_d_prev.view(), {sk_n.view(), ni, nr});
}

namespace {
std::array<std::uint8_t, 8> be64(std::uint64_t v) {
    std::array<std::uint8_t, 8> b{};
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
    return b;
}
SecretBytes take(const SecretBytes& all, std::size_t& pos, std::size_t n) {
    SecretBytes out(all.view().subspan(pos, n));
    pos += n;
    return out;
}
}  // namespace

Result<IkeKeys, crypto::CryptoError> derive_ike_keys(crypto::Prf& prf, const SecretBytes& skeyseed, Bytes ni, Bytes nr,
                                                     std::uint64_t spi_i, std::uint64_t spi_r, std::size_t encr_key_len) {
    const auto si = be64(spi_i), sr = be64(spi_r);
    std::vector<std::uint8_t> seed;
    seed.reserve(ni.size() + nr.size() + 16);
    seed.insert(seed.end(), ni.begin(), ni.end());
    seed.insert(seed.end(), nr.begin(), nr.end());
    seed.insert(seed.end(), si.begin(), si.end());
    seed.insert(seed.end(), sr.begin(), sr.end());
    const std::size_t h = prf.size();
    auto all = prf.prf_plus(skeyseed.view(), seed, 3 * h + 2 * encr_key_len);
    if (!all) return Err{all.error()};
    IkeKeys k;
    std::size_t pos = 0;
    k.sk_d = take(*all, pos, h);
    k.sk_ei = take(*all, pos, encr_key_len);
    k.sk_er = take(*all, pos, encr_key_len);
    k.sk_pi = take(*all, pos, h);
    k.sk_pr = take(*all, pos, h);
    return k;
}

Result<ChildKeys, crypto::CryptoError> derive_child_keys(crypto::Prf& prf, const SecretBytes& sk_d,
                                                         const SecretBytes* g_ir, Bytes ni, Bytes nr,
                                                         std::size_t key_len, std::span<const SecretBytes* const> adds) {
    SecretBytes seed;
    if (g_ir) seed.append(g_ir->view());
    seed.append(ni);
    seed.append(nr);
    for (const SecretBytes* sk : adds) seed.append(sk->view());
    auto all = prf.prf_plus(sk_d.view(), seed.view(), 2 * (key_len + 4));
    if (!all) return Err{all.error()};
    ChildKeys c;
    std::size_t pos = 0;
    c.i_to_r.key = take(*all, pos, key_len);
    c.i_to_r.salt = take(*all, pos, 4);
    c.r_to_i.key = take(*all, pos, key_len);
    c.r_to_i.salt = take(*all, pos, 4);
    return c;
}

SecretBytes int_auth(crypto::Prf& prf, const SecretBytes& sk_p, Bytes prev, Bytes a_p) {
    return prf.compute(sk_p.view(), {prev, a_p});
}

SecretBytes psk_auth(crypto::Prf& prf, const SecretBytes& psk, Bytes real_message, Bytes nonce_peer,
                     const SecretBytes& sk_p, Bytes id_body, Bytes int_auth_tail) {
    static constexpr char kPad[] = "Key Pad for IKEv2";
    const auto pad = std::span(reinterpret_cast<const std::uint8_t*>(kPad), sizeof kPad - 1);
    SecretBytes maced_id = prf.compute(sk_p.view(), {id_body});
    SecretBytes inner = prf.compute(psk.view(), {pad});
    return prf.compute(inner.view(), {real_message, nonce_peer, maced_id.view(), int_auth_tail});
}

}  // namespace qkd::ike::keymat
