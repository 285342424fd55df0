#include "qkd/dataplane/esp_sa.hpp"

#include <openssl/evp.h>

#include <chrono>
#include <cstring>

#include "qkd/common/bytes.hpp"

namespace qkd::dp {

namespace {

std::uint64_t mono_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

void put_be32(std::uint8_t* p, std::uint32_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}
void put_be64(std::uint8_t* p, std::uint64_t v) {
    put_be32(p, static_cast<std::uint32_t>(v >> 32));
    put_be32(p + 4, static_cast<std::uint32_t>(v));
}

bool over(std::uint64_t value, std::uint64_t limit) {
    return limit != 0 && value >= limit;
}

}  // namespace

std::string_view to_string(EspStatus s) {
    switch (s) {
        case EspStatus::ok:
            return "ok";
        case EspStatus::short_packet:
            return "packet shorter than the minimal ESP packet (34 octets)";
        case EspStatus::bad_length:
            return "ciphertext length not a multiple of 4 octets";
        case EspStatus::wrong_spi:
            return "SPI does not belong to this SA";
        case EspStatus::replay:
            return "sequence number replayed or left of the replay window";
        case EspStatus::auth_failed:
            return "ICV check failed";
        case EspStatus::bad_padding:
            return "padding is not 1, 2, 3, ... or longer than the payload";
        case EspStatus::bad_next_header:
            return "next header is not 4 (IPv4), 41 (IPv6) or 59 (dummy)";
        case EspStatus::dummy:
            return "dummy packet (next header 59)";
        case EspStatus::seq_exhausted:
            return "outbound sequence number space exhausted: rekey required";
        case EspStatus::buffer_too_small:
            return "buffer too small";
        case EspStatus::crypto_error:
            return "OpenSSL AES-GCM failure";
        case EspStatus::expired:
            return "SA hard lifetime reached";
    }
    return "unknown";
}

DpResult<std::unique_ptr<EspSa>> EspSa::create(SaSpec spec) {
    if (spec.spi == 0)
        return Err{DpError{DpErrc::invalid_argument,
                           "SPI 0 is reserved (RFC 4303 2.1): expected a non-zero SPI"}};
    if (spec.key.size() != 16 && spec.key.size() != 32)
        return Err{DpError{DpErrc::invalid_argument,
                           "AES-GCM key of " + std::to_string(spec.key.size()) +
                               " octets: expected 16 (AES-128) or 32 (AES-256)"}};
    if (spec.salt.size() != 4)
        return Err{DpError{DpErrc::invalid_argument, "salt of " + std::to_string(spec.salt.size()) +
                                                         " octets: expected 4 (RFC 4106 8.1)"}};
    if (spec.replay_window != 0 && spec.replay_window < replay_window_min)
        return Err{DpError{DpErrc::invalid_argument, "replay window " +
                                                         std::to_string(spec.replay_window) +
                                                         ": expected 0 (off) or at least 64"}};
    if (spec.replay_window > replay_window_max)
        return Err{DpError{
            DpErrc::invalid_argument,
            "replay window " + std::to_string(spec.replay_window) + ": expected at most 65536"}};
    std::unique_ptr<EspSa> sa(new EspSa(std::move(spec)));
    return sa;
}

EspSa::EspSa(SaSpec spec)
    : spec_(std::move(spec)), window_(spec_.replay_window, spec_.esn), created_ns_(mono_ns()) {
    std::memcpy(salt_, spec_.salt.data(), 4);
    ctx_ = EVP_CIPHER_CTX_new();
    const EVP_CIPHER* cipher = spec_.key.size() == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
    const bool enc = spec_.direction == Direction::outbound;
    // Keyed once here; the default 12-octet IV length is RFC 4106's salt || IV.
    if (!ctx_ ||
        EVP_CipherInit_ex(ctx_, cipher, nullptr, spec_.key.data(), nullptr, enc ? 1 : 0) != 1)
        std::abort();  // allocation failure or OpenSSL without AES-GCM: not a runtime condition
    spec_.key.wipe();
    spec_.salt.wipe();
}

EspSa::~EspSa() {
    EVP_CIPHER_CTX_free(ctx_);  // cleanses the key schedule
    secure_zero(salt_, sizeof salt_);
}

EspStatus EspSa::encrypt_in_place(std::span<std::uint8_t> buf, std::size_t inner_len,
                                  std::uint8_t next_header, std::size_t* out_len) {
    if (hard_expired()) return EspStatus::expired;
    // RFC 4303 2.4: payload + padding + pad length + next header ends on a 4-octet boundary.
    const std::size_t pad = (4 - (inner_len + esp_trailer_min) % 4) % 4;
    const std::size_t ct_len = inner_len + pad + esp_trailer_min;
    const std::size_t total = esp_prefix_len + ct_len + esp_icv_len;
    if (buf.size() < total) return EspStatus::buffer_too_small;

    const std::uint64_t seq = seq_out_.load(std::memory_order_relaxed);
    // RFC 4303 3.3.3: the counter must not cycle; without ESN the last usable value is 2^32-1.
    if (seq == 0 || (!spec_.esn && seq > 0xffffffffull)) {
        hard_hit_.store(true);
        return EspStatus::seq_exhausted;
    }
    std::uint8_t* p = buf.data();
    put_be32(p, spec_.spi);
    put_be32(p + 4, static_cast<std::uint32_t>(seq));
    put_be64(p + 8, seq);  // RFC 4106 3.1: the IV must be unique per key; the 64-bit seq is
    std::uint8_t* trailer = p + esp_prefix_len + inner_len;
    for (std::size_t i = 0; i < pad; ++i)
        trailer[i] = static_cast<std::uint8_t>(i + 1);  // RFC 4303 2.4
    trailer[pad] = static_cast<std::uint8_t>(pad);
    trailer[pad + 1] = next_header;

    std::uint8_t nonce[12];
    std::memcpy(nonce, salt_, 4);
    std::memcpy(nonce + 4, p + 8, 8);
    std::uint8_t aad[12];
    std::size_t aad_len = 8;
    put_be32(aad, spec_.spi);
    if (spec_.esn) {
        put_be32(aad + 4,
                 static_cast<std::uint32_t>(seq >> 32));  // RFC 4106 5: SPI || seq_hi || seq_lo
        put_be32(aad + 8, static_cast<std::uint32_t>(seq));
        aad_len = 12;
    } else {
        put_be32(aad + 4, static_cast<std::uint32_t>(seq));
    }
    int l = 0;
    std::uint8_t* ct = p + esp_prefix_len;
    if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1 ||
        EVP_EncryptUpdate(ctx_, nullptr, &l, aad, static_cast<int>(aad_len)) != 1 ||
        EVP_EncryptUpdate(ctx_, ct, &l, ct, static_cast<int>(ct_len)) != 1 ||
        EVP_EncryptFinal_ex(ctx_, ct + ct_len, &l) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, esp_icv_len, ct + ct_len) != 1)
        return EspStatus::crypto_error;
    seq_out_.store(seq + 1, std::memory_order_relaxed);
    account(inner_len);
    *out_len = total;
    return EspStatus::ok;
}

EspStatus EspSa::decrypt_in_place(std::span<std::uint8_t> pkt, std::size_t* inner_len,
                                  std::uint8_t* next_header) {
    if (pkt.size() < esp_min_packet) {
        stats_.dropped_other.fetch_add(1, std::memory_order_relaxed);
        return EspStatus::short_packet;
    }
    ByteReader r(pkt);
    const std::uint32_t spi = *r.u32();
    const std::uint32_t seq_lo = *r.u32();
    const std::size_t ct_len = pkt.size() - esp_prefix_len - esp_icv_len;
    if (spi != spec_.spi) return EspStatus::wrong_spi;
    if (ct_len % 4 != 0) {
        stats_.dropped_other.fetch_add(1, std::memory_order_relaxed);
        return EspStatus::bad_length;
    }
    if (hard_expired()) return EspStatus::expired;

    std::lock_guard lock(in_mu_);
    // RFC 4303 3.4.3: the replay check comes before the ICV check (cheap rejection), the window
    // update after it (only authenticated packets move the window).
    const std::uint64_t seq = window_.infer(seq_lo);
    if (!window_.check(seq)) {
        stats_.dropped_replay.fetch_add(1, std::memory_order_relaxed);
        return EspStatus::replay;
    }
    std::uint8_t nonce[12];
    std::memcpy(nonce, salt_, 4);
    std::memcpy(nonce + 4, pkt.data() + esp_header_len, 8);
    std::uint8_t aad[12];
    std::size_t aad_len = 8;
    put_be32(aad, spi);
    if (spec_.esn) {
        put_be32(aad + 4, static_cast<std::uint32_t>(seq >> 32));
        put_be32(aad + 8, seq_lo);
        aad_len = 12;
    } else {
        put_be32(aad + 4, seq_lo);
    }
    std::uint8_t* ct = pkt.data() + esp_prefix_len;
    int l = 0;
    if (EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, esp_icv_len, ct + ct_len) != 1 ||
        EVP_DecryptUpdate(ctx_, nullptr, &l, aad, static_cast<int>(aad_len)) != 1 ||
        EVP_DecryptUpdate(ctx_, ct, &l, ct, static_cast<int>(ct_len)) != 1)
        return EspStatus::crypto_error;
    if (EVP_DecryptFinal_ex(ctx_, ct + ct_len, &l) != 1) {  // constant-time tag compare inside
        secure_zero(ct, ct_len);  // unauthenticated plaintext never leaves this function
        stats_.dropped_auth.fetch_add(1, std::memory_order_relaxed);
        return EspStatus::auth_failed;
    }
    window_.update(seq);
    in_top_.store(window_.top(), std::memory_order_relaxed);

    const std::uint8_t pad = ct[ct_len - 2];
    const std::uint8_t nh = ct[ct_len - 1];
    if (pad > ct_len - esp_trailer_min) {
        stats_.dropped_other.fetch_add(1, std::memory_order_relaxed);
        return EspStatus::bad_padding;
    }
    const std::size_t payload_len = ct_len - esp_trailer_min - pad;
    // RFC 4303 2.4: the receiver SHOULD check that the padding is 1, 2, 3, ...
    for (std::size_t i = 0; i < pad; ++i)
        if (ct[payload_len + i] != static_cast<std::uint8_t>(i + 1)) {
            stats_.dropped_other.fetch_add(1, std::memory_order_relaxed);
            return EspStatus::bad_padding;
        }
    if (nh == next_header_none) return EspStatus::dummy;  // RFC 4303 2.6: discard silently
    if (nh != next_header_ipv4 && nh != next_header_ipv6) {
        stats_.dropped_other.fetch_add(1, std::memory_order_relaxed);
        return EspStatus::bad_next_header;
    }
    account(payload_len);
    *inner_len = payload_len;
    *next_header = nh;
    return EspStatus::ok;
}

void EspSa::account(std::size_t inner_len) {
    const auto b = stats_.bytes.fetch_add(inner_len, std::memory_order_relaxed) + inner_len;
    const auto n = stats_.packets.fetch_add(1, std::memory_order_relaxed) + 1;
    if (over(b, spec_.soft.bytes) || over(n, spec_.soft.packets))
        soft_hit_.store(true, std::memory_order_relaxed);
    if (over(b, spec_.hard.bytes) || over(n, spec_.hard.packets))
        hard_hit_.store(true, std::memory_order_relaxed);
}

SaCounters EspSa::counters() const {
    SaCounters c;
    c.bytes = stats_.bytes.load(std::memory_order_relaxed);
    c.packets = stats_.packets.load(std::memory_order_relaxed);
    c.dropped_replay = stats_.dropped_replay.load(std::memory_order_relaxed);
    c.dropped_auth = stats_.dropped_auth.load(std::memory_order_relaxed);
    c.dropped_other = stats_.dropped_other.load(std::memory_order_relaxed);
    c.seq = spec_.direction == Direction::outbound ? seq_out_.load(std::memory_order_relaxed) - 1
                                                   : in_top_.load(std::memory_order_relaxed);
    return c;
}

std::uint64_t EspSa::age_seconds() const {
    return (mono_ns() - created_ns_) / 1000000000ull;
}

bool EspSa::take_soft_expired() {
    if (!soft_hit_.load(std::memory_order_relaxed) && !over(age_seconds(), spec_.soft.seconds))
        return false;
    return !soft_taken_.exchange(true);
}

bool EspSa::take_hard_expired() {
    if (!hard_hit_.load(std::memory_order_relaxed) && !over(age_seconds(), spec_.hard.seconds))
        return false;
    hard_hit_.store(true, std::memory_order_relaxed);
    return !hard_taken_.exchange(true);
}

}  // namespace qkd::dp
