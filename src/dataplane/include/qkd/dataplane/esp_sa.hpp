#pragma once
// One ESP SA of the userspace backend: RFC 4303 ESP with RFC 4106 AES-GCM-16, tunnel mode.
//
//   0                   1                   2                   3
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |               Security Parameters Index (SPI)                 |  RFC 4303 2.1
//   |                      Sequence Number                          |  RFC 4303 2.2
//   |              IV (8 octets: the 64-bit sequence number)        |  RFC 4106 3.1
//   ~      Payload (inner IP packet) | Padding (0-3) | PadLen | NH  ~  encrypted
//   |              ICV (16 octets)                                  |  RFC 4106 3
//
// RFC 4106 4: nonce = salt(4) || IV(8); RFC 4106 5: AAD = SPI || seq (4 octets), or with ESN
// SPI || seq_hi || seq_lo. The cipher context is keyed once at creation; per packet only the
// nonce changes. encrypt/decrypt work in place on caller buffers: no allocation per packet.
// Thread model: encrypt is called by one thread (the outbound path); decrypt is serialised by
// an internal lock; counters are atomics readable from any thread.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>

#include "qkd/dataplane/dataplane.hpp"
#include "qkd/dataplane/replay_window.hpp"

struct evp_cipher_ctx_st;

namespace qkd::dp {

inline constexpr std::size_t esp_header_len = 8;  // SPI + sequence number
inline constexpr std::size_t esp_iv_len = 8;
inline constexpr std::size_t esp_icv_len = 16;
inline constexpr std::size_t esp_trailer_min = 2;  // pad length + next header
inline constexpr std::size_t esp_prefix_len =
    esp_header_len + esp_iv_len;  // inner payload starts here
// Largest growth of an inner packet: header, IV, 3 padding bytes, trailer, ICV.
inline constexpr std::size_t esp_max_overhead = esp_prefix_len + 3 + esp_trailer_min + esp_icv_len;
inline constexpr std::size_t esp_min_packet = esp_prefix_len + esp_trailer_min + esp_icv_len;
inline constexpr std::uint8_t next_header_ipv4 = 4;
inline constexpr std::uint8_t next_header_ipv6 = 41;
inline constexpr std::uint8_t next_header_none = 59;  // RFC 4303 2.6 dummy packet

// Per-packet outcome; no strings on the packet path.
enum class EspStatus : std::uint8_t {
    ok,
    short_packet,      // fewer than esp_min_packet octets
    bad_length,        // ciphertext not a multiple of 4 octets (RFC 4303 2.4)
    wrong_spi,         // SPI in the packet is not this SA's
    replay,            // sequence number seen already or left of the window
    auth_failed,       // ICV mismatch
    bad_padding,       // pad length too large or padding bytes not 1, 2, 3, ...
    bad_next_header,   // neither 4 (IPv4) nor 41 (IPv6) nor 59 (dummy)
    dummy,             // next header 59: authenticated, silently dropped
    seq_exhausted,     // outbound: sequence number would cycle (RFC 4303 3.3.3)
    buffer_too_small,  // caller buffer cannot hold the result
    crypto_error,      // OpenSSL failed unexpectedly
    expired,           // hard lifetime reached
};
std::string_view to_string(EspStatus s);

struct EspStats {
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> packets{0};
    std::atomic<std::uint64_t> dropped_replay{0};
    std::atomic<std::uint64_t> dropped_auth{0};
    std::atomic<std::uint64_t> dropped_other{0};
};

class EspSa {
  public:
    // Validates the spec (key 16/32 bytes, salt 4, spi != 0) and keys the cipher. The key and
    // salt are moved out of `spec` (the stored spec keeps empty SecretBytes).
    static DpResult<std::unique_ptr<EspSa>> create(SaSpec spec);
    ~EspSa();
    EspSa(const EspSa&) = delete;
    EspSa& operator=(const EspSa&) = delete;

    // Outbound, in place. buf[esp_prefix_len, esp_prefix_len + inner_len) holds the inner packet;
    // buf must have room for esp_max_overhead - esp_prefix_len more octets after it. Writes the
    // header before and the trailer and ICV after it; *out_len = whole ESP packet length.
    EspStatus encrypt_in_place(std::span<std::uint8_t> buf, std::size_t inner_len,
                               std::uint8_t next_header, std::size_t* out_len);
    // Inbound, in place. `pkt` is the ESP packet (from the SPI to the ICV). On ok the inner
    // packet is pkt[esp_prefix_len, esp_prefix_len + *inner_len) and *next_header is 4 or 41.
    EspStatus decrypt_in_place(std::span<std::uint8_t> pkt, std::size_t* inner_len,
                               std::uint8_t* next_header);

    const SaSpec& spec() const { return spec_; }  // key and salt are empty here
    SaCounters counters() const;
    std::uint64_t next_seq() const { return seq_out_.load(std::memory_order_relaxed); }
    // Sets the next outbound sequence number (tests: ESN and exhaustion cases).
    void set_next_seq_for_test(std::uint64_t next) {
        seq_out_.store(next, std::memory_order_relaxed);
    }

    // Lifetime tracking: returns true once, the first time soft / hard thresholds are crossed.
    bool take_soft_expired();
    bool take_hard_expired();
    bool hard_expired() const { return hard_hit_.load(std::memory_order_relaxed); }
    std::uint64_t age_seconds() const;

  private:
    explicit EspSa(SaSpec spec);
    void account(std::size_t inner_len);

    SaSpec spec_;
    evp_cipher_ctx_st* ctx_ = nullptr;
    std::uint8_t salt_[4] = {};
    std::atomic<std::uint64_t> seq_out_{1};  // next sequence number to send
    std::atomic<std::uint64_t> in_top_{0};   // copy of window_.top() for counters()
    std::mutex in_mu_;
    ReplayWindow window_;
    std::uint64_t created_ns_ = 0;
    EspStats stats_;
    std::atomic<bool> soft_hit_{false}, soft_taken_{false}, hard_hit_{false}, hard_taken_{false};
};

}  // namespace qkd::dp
