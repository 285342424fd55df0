#pragma once
// Whole IKEv2 messages: the payload chain (RFC 7296 3.2), the Encrypted payload (3.14, AES-GCM
// per RFC 5282), Encrypted Fragments (RFC 7383), and the per-exchange payload rules (rules.cpp).
// decode_* produce immutable values; SA state is never touched here.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "header.hpp"
#include "payloads.hpp"
#include "qkd/crypto/aead.hpp"

namespace qkd::ike::wire {

struct Message {
    Header header;
    std::vector<Payload> payloads;  // the plaintext payloads, or the decrypted inner ones

    template <class T>
    const T* get(PayloadType t) const {
        for (const auto& p : payloads)
            if (p.type == t) return std::get_if<T>(&p.body);
        return nullptr;
    }
    const NotifyPayload* notify(NotifyType t) const;
    std::vector<const NotifyPayload*> notifies() const;
    const NotifyPayload* first_error() const;  // error notify (type < 16384), if any
    std::size_t count(PayloadType t) const;
};

// The outer layer of a datagram: header, plaintext payloads, and the SK/SKF payload if present.
struct OuterMessage {
    Header header;
    std::vector<Payload> plain;
    bool encrypted = false;          // an SK or SKF payload closes the chain
    bool fragment = false;           // SKF
    FragmentInfo frag;
    PayloadType inner_first = PayloadType::None;  // Next Payload of the SK/SKF payload
    std::span<const std::uint8_t> aad;            // header .. end of SK/SKF header (+ frag fields)
    std::span<const std::uint8_t> iv, ciphertext;  // ciphertext includes the ICV
};

WireResult<OuterMessage> decode_outer(std::span<const std::uint8_t> datagram);
WireResult<std::vector<Payload>> decode_chain(std::span<const std::uint8_t> in, PayloadType first);

// Payloads keyed to one direction of an IKE SA: SK_e = key | salt (RFC 5282 7.1), and a
// 64-bit counter as the explicit IV (unique per key, RFC 5282 3.1).
class SkCrypter {
public:
    static std::optional<SkCrypter> create(std::span<const std::uint8_t> sk_e_out, std::span<const std::uint8_t> sk_e_in);
    // Decrypts an SK/SKF body and strips the padding; returns the inner payload octets.
    WireResult<std::vector<std::uint8_t>> open(const OuterMessage& m);
    // Encrypts inner payload octets; writes IV | ciphertext | ICV.
    void seal(std::span<const std::uint8_t> aad, std::span<const std::uint8_t> plaintext, ByteWriter& w);
    static constexpr std::size_t overhead() { return crypto::kGcmIvSize + 1 + crypto::kGcmIcvSize; }

private:
    SkCrypter() = default;
    std::optional<crypto::AesGcm> out_, in_;
    std::uint64_t iv_counter_ = 0;
};

// Serialises a payload chain; returns the type of its first payload (None if empty).
PayloadType encode_chain(ByteWriter& w, const std::vector<Payload>& payloads);
// IKE_SA_INIT: header + plaintext chain.
std::vector<std::uint8_t> encode_plain(Header h, const std::vector<Payload>& payloads);
// Every other exchange: header + SK{payloads}; split into SKF fragments (RFC 7383) when
// max_size > 0 and the message would exceed it. Returns one datagram per fragment.
std::vector<std::vector<std::uint8_t>> encode_encrypted(Header h, const std::vector<Payload>& payloads,
                                                        SkCrypter& crypter, std::size_t max_size = 0);

// Per-exchange payload rules (rules.cpp), checked once before any handler runs.
WireResult<bool> check_rules(const Header& h, bool encrypted, const std::vector<Payload>& payloads);

// Helpers to build payload values.
Payload make_notify(NotifyType t, std::vector<std::uint8_t> data = {}, ProtocolId proto = ProtocolId::None,
                    std::vector<std::uint8_t> spi = {});

}  // namespace qkd::ike::wire
