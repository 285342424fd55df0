#pragma once
// qkd::ike::Engine: a sans-I/O IKEv2 (RFC 7296) engine. No sockets, no threads: the daemon feeds
// it datagrams (on_datagram) and time (on_timer), and it answers through an EventSink
// (datagrams to send, child SAs to install/replace/remove, IKE SA state changes).
// Time and randomness come from qkd::Clock / qkd::Rng so tests are deterministic.
//
// Interface contract with the daemon (D) and the data plane (C):
//  * Datagrams are UDP payloads exactly as on the wire. When either port is 4500 the engine
//    prepends the 4-octet non-ESP marker (RFC 3948 2.2) on send and expects it on receive:
//    the daemon passes every datagram from port 4500 whose first 4 octets are zero to
//    on_datagram unchanged, and the others (ESP) to the data plane. NAT keepalives (0xFF) are
//    ignored.
//  * child_sa_up gives both directions of a new child SA. child_sa_rekeyed(old, new): install
//    `new` (both directions) and move outbound traffic to it, but KEEP old's inbound SA: packets
//    the peer sent on `old` may still arrive. The engine calls child_sa_down(old) once the
//    DELETE exchange for `old` completes (RFC 7296 2.8); then remove `old` entirely.
//    child_sa_down: remove both directions of that SA.
//  * on_datagram's `local` must be the real local address the datagram arrived on (or the
//    configured one); an unspecified 0.0.0.0 is replaced by the gateway's local address.
//  * on_child_sa_expired(spi_in, hard): a kernel (xfrm) expiry event for the inbound SPI; soft
//    starts a rekey, hard deletes the child SA.
//
// Changes after first publication are listed here:
//  - 12:50 child_sa_rekeyed semantics spelled out (old inbound stays until child_sa_down(old)).
//  - 13:45 IKE SA rekey reports IkeSaEvent::Rekeyed for the new SA and no Down for the old one.
//  - 16:30 GatewayConfig::remote_id is a RemoteIdentity (list / '*' patterns for responders; an
//    Identity still converts); a responder picks the gateway in IKE_AUTH by IDi and IDr, so one
//    gateway may hold IKE SAs of several peers; terminate(gateway) deletes all of them.
//    initiate() returns the new IKE SA's id.
//  - issue 15: every datagram the engine drops is counted by DropReason (EngineStats::drops) and
//    reported through EventSink::datagram_dropped (default: ignored); the daemon logs it
//    rate-limited. EngineOptions::cookie_rate turns cookies on by the rate of IKE_SA_INIT work.
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkd/common/clock.hpp"
#include "qkd/common/error.hpp"
#include "qkd/common/result.hpp"
#include "qkd/common/rng.hpp"
#include "qkd/common/secret.hpp"
#include "qkd/ike/identity.hpp"
#include "qkd/ike/proposal.hpp"
#include "qkd/ike/types.hpp"

namespace qkd::ike {

using Seconds = std::chrono::seconds;
using TimePoint = std::chrono::steady_clock::time_point;

struct GatewayConfig {
    std::string name;
    Endpoint local;   // port 500 (the engine moves to 4500 itself when a NAT is detected)
    Endpoint remote;  // port 500
    Identity local_id;
    // One exact identity (sent as IDr when we initiate), or, for a gateway that only responds, a
    // list and/or '*' patterns (qkd/ike/identity.hpp). A responder picks the gateway for an
    // IKE_AUTH request by IDi (and IDr), see "Gateway selection" in src/ike/README.md.
    RemoteIdentity remote_id;
    SecretBytes psk;  // read from a file by the daemon; one per gateway, also for a pattern
    std::vector<IkeProposal> ike_proposals;  // parse_ike_proposals("aes256gcm16-prfsha512-ecp521")
    std::vector<EspProposal> esp_proposals;  // parse_esp_proposals("aes256gcm16")
    std::vector<TrafficSelector> local_ts, remote_ts;
    Seconds ike_lifetime{4 * 3600};    // hard limit of an IKE SA
    Seconds ike_rekey_margin{10 * 60};  // rekey starts at lifetime - margin (minus jitter)
    Seconds child_lifetime{3600};
    Seconds child_rekey_margin{5 * 60};
    Seconds dpd_interval{30};  // liveness check after this much silence; 0 = off
    bool auto_start = false;   // initiate as soon as the gateway is added
    bool fragmentation = true; // RFC 7383
    bool force_encap = false;  // always UDP-encapsulate (as strongSwan's encap = yes)
};

struct EngineOptions {
    std::chrono::milliseconds retransmit_base{1000};  // first timeout
    double retransmit_backoff = 1.8;                  // multiplier per try (strongSwan's default)
    unsigned retransmit_tries = 5;                    // then the exchange fails
    std::size_t cookie_threshold = 32;                // half-open SAs before cookies are required
    // RFC 7296 2.6 also by rate: IKE_SA_INIT requests that reach a key generation within one
    // second before cookies are required (bogus KE data costs the same work); 0 = off.
    std::size_t cookie_rate = 1000;
    std::size_t max_half_open = 1024;                 // hard cap on half-open SAs
    std::size_t fragment_size = 1280;                 // RFC 7383 2.5.1 (IP datagram size)
    std::size_t replay_window = 128;                  // passed to the data plane
};

// Selected child SA keys for the data plane (RFC 7296 2.17: KEYMAT = prf+(SK_d, ...)).
struct UdpEncap {
    std::uint16_t local_port = 4500, remote_port = 4500;
    bool operator==(const UdpEncap&) const = default;
};

struct ChildSaRef {
    std::string gateway;
    std::uint64_t id = 0;  // engine-unique
    std::uint32_t spi_in = 0, spi_out = 0;
};

struct ChildSaKeys {
    ChildSaRef ref;
    EncrAlg encr;  // AES-GCM-16, key_bits 128 or 256
    SecretBytes key_in, salt_in;    // decrypts what the peer sends to spi_in
    SecretBytes key_out, salt_out;  // encrypts what we send to spi_out
    bool esn = false;
    std::size_t replay_window = 128;
    std::vector<TrafficSelector> local_ts, remote_ts;
    IpAddr local_addr, remote_addr;    // outer (tunnel) addresses
    std::optional<UdpEncap> encap;     // set when NAT-T (RFC 3948) is in use
    Seconds soft_lifetime{0}, hard_lifetime{0};  // for kernel expiry (xfrm); 0 = none
};

enum class IkeSaState { Connecting, Established, Rekeying, Deleting, Closed };
std::string_view to_string(IkeSaState s);

struct IkeSaInfo {
    std::string gateway;
    std::uint64_t id = 0;
    IkeSaState state = IkeSaState::Connecting;
    bool initiator = false;  // original initiator of this IKE SA
    std::uint64_t spi_i = 0, spi_r = 0;
    Endpoint local, remote;
    std::string local_id, remote_id;  // once authenticated: the identities of this SA (else the config's)
    std::string algorithm;  // "PSK/DH21/AES256-GCM16"
    std::string proposal;   // "aes256gcm16-prfsha512-ecp521", "...-ecp521-ke1_mlkem768"
    std::vector<std::string> key_exchanges;  // in order, KE then ADDKE1..7: {"DH21", "MLKEM768"}
    // The QKD key mixed into this IKE SA (method QKD in a KE slot): its ETSI 014 key_ID, when it
    // was obtained, and how many QKD keys this SA and its predecessors (rekeys) used.
    std::string qkd_key_id;
    std::optional<Seconds> qkd_key_age;
    std::uint64_t qkd_keys_used = 0;
    bool nat_local = false, nat_remote = false;
    Seconds age{0};
    std::optional<Seconds> rekey_in;  // time until the scheduled rekey
    std::size_t child_sas = 0;
};

struct ChildSaInfo {
    std::string gateway;
    std::uint64_t id = 0, ike_sa_id = 0;
    std::uint32_t spi_in = 0, spi_out = 0;
    std::vector<TrafficSelector> local_ts, remote_ts;
    std::string algorithm;  // "AES256-GCM16" or "AES256-GCM16/DH21" (PFS)
    bool esn = false;
    bool encap = false;
    Seconds age{0};
    std::optional<Seconds> rekey_in;
};

// Up: a new IKE SA; Rekeyed: a new IKE SA that replaced an older one (which ends silently);
// Down: deleted (by us, the peer, expiry or INITIAL_CONTACT); Failed: could not be set up or the
// peer stopped answering.
// QKD as a key-exchange method: the initiator's round asks for a new key (ETSI 014 Get key, it is
// the master SAE), the responder's for the key the initiator named (Get key with key IDs).
struct QkdKeyRequest {
    std::uint64_t ike_sa_id = 0;
    std::string gateway;
    unsigned slot = 0;                      // KE slot: 0 = KE, 1..7 = ADDKE1..7
    bool master = true;
    std::array<std::uint8_t, 16> key_id{};  // responder: the key_ID (binary UUID) from KEi
};
struct QkdKeyAnswer {
    std::array<std::uint8_t, 16> key_id{};  // master: the key_ID the KME gave
    std::optional<SecretBytes> key;         // empty: no key; `error` says why
    std::string error;
};

enum class IkeSaEvent { Up, Rekeyed, Down, Failed };

// Why a datagram was dropped without an answer (EngineStats::drops, EventSink::datagram_dropped).
enum class DropReason {
    NotIke,              // port 4500 without the non-ESP marker (ESP belongs to the data plane)
    Malformed,           // the IKE header or a payload does not decode
    BadInitRequest,      // IKE_SA_INIT request with SPIr, message ID or payloads against RFC 7296
    InitMismatch,        // a known SPIi with a different IKE_SA_INIT request
    NoGateway,           // no gateway for the peer's address
    HalfOpenLimit,       // EngineOptions::max_half_open reached
    UnknownSa,           // no IKE SA with these SPIs (or the wrong role)
    NotEncrypted,        // a plain message where RFC 7296 wants an SK payload
    UnexpectedResponse,  // late retransmission or unsolicited response
    OutsideWindow,       // request message ID outside the window (RFC 7296 2.3)
    AnswerPending,       // our answer to that request waits for an outside input
    IntegrityFailed,     // ICV check failed (RFC 7296 2.21.2: dropped silently)
    TooLarge,            // fragments beyond the reassembly bound (RFC 7383 2.6)
    Count
};
inline constexpr std::size_t kDropReasons = static_cast<std::size_t>(DropReason::Count);
std::string_view to_string(DropReason r);

class EventSink {
public:
    virtual ~EventSink() = default;
    virtual void send_datagram(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> bytes) = 0;
    virtual void child_sa_up(const ChildSaKeys& sa) = 0;
    virtual void child_sa_rekeyed(const ChildSaRef& old_sa, const ChildSaKeys& new_sa) = 0;
    virtual void child_sa_down(const ChildSaRef& sa) = 0;
    // reason is human text for logs (e.g. "AUTHENTICATION_FAILED from peer").
    virtual void ike_sa_event(const IkeSaInfo& sa, IkeSaEvent ev, std::string_view reason) { (void)sa; (void)ev; (void)reason; }
    // A QKD key-exchange round needs a key (shared/docs/ike-tasks.md, "The QKD key request"):
    // the daemon answers with Engine::on_qkd_key, now or later; the round waits meanwhile.
    virtual void qkd_key_request(const QkdKeyRequest& req) { (void)req; }
    // A datagram from `remote` was dropped; detail quotes what was wrong (may be empty). Called
    // for every drop: a sink that logs must rate-limit (a flood calls it for each datagram).
    virtual void datagram_dropped(const Endpoint& remote, DropReason reason, std::string_view detail) {
        (void)remote; (void)reason; (void)detail;
    }
};

enum class EngineErrc { InvalidConfig, UnknownGateway, DuplicateGateway, NotConnected, Busy, Crypto };
using EngineError = qkd::Error<EngineErrc>;

struct EngineStats {
    std::uint64_t rx = 0, tx = 0, retransmits = 0, dropped = 0, cookies_sent = 0, invalid_ke_sent = 0;
    std::uint64_t ike_up = 0, ike_failed = 0, child_up = 0, child_rekeyed = 0, ike_rekeyed = 0;
    std::array<std::uint64_t, kDropReasons> drops{};  // by DropReason; they sum to `dropped`
    std::uint64_t drops_of(DropReason r) const { return drops[static_cast<std::size_t>(r)]; }
};

class Engine {
public:
    Engine(Clock& clock, Rng& rng, EventSink& sink, EngineOptions opts = {});
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    Result<void, EngineError> add_gateway(GatewayConfig cfg);
    Result<void, EngineError> remove_gateway(std::string_view name);  // deletes its SAs first

    // Starts IKE_SA_INIT; the value is the new IKE SA's id (IkeSaInfo::id, in its events).
    Result<std::uint64_t, EngineError> initiate(std::string_view gateway);
    Result<void, EngineError> terminate(std::string_view gateway);
    Result<void, EngineError> rekey_ike(std::string_view gateway);
    Result<void, EngineError> rekey_child(std::string_view gateway);

    void on_datagram(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> bytes);
    void on_timer();  // runs everything due at clock.now()
    std::optional<TimePoint> next_deadline() const;
    void on_child_sa_expired(std::uint32_t spi_in, bool hard);
    // The answer to a QkdKeyRequest. Ignored (the key zeroized) when that SA or round is gone.
    void on_qkd_key(std::uint64_t ike_sa_id, unsigned slot, QkdKeyAnswer answer);

    std::vector<IkeSaInfo> list_ike_sas() const;
    std::optional<IkeSaInfo> ike_sa_info(std::uint64_t id) const;  // one IKE SA (IkeSaInfo::id)
    std::vector<ChildSaInfo> list_child_sas() const;
    EngineStats stats() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace qkd::ike
