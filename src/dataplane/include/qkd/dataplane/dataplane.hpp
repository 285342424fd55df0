#pragma once
// qkd::dp — the IPsec data plane: one interface, two backends (DESIGN.md 5).
//   "userspace": RFC 4303 ESP tunnel mode with RFC 4106 AES-GCM-16, processed in this library's
//                own threads; inner packets to and from a TUN device; outer packets on a raw
//                IPPROTO_ESP socket, or UDP-encapsulated (RFC 3948) through the daemon's
//                port-4500 socket (handle_udp_esp + UdpSender).
//   "xfrm":      SAs and policies installed in the Linux kernel over netlink (libmnl).
// This header depends on qkd_common only (not on qkd_ike): the daemon converts
// qkd::ike::ChildSaKeys into SaSpec.
//
// SA identity: an SA is named by (direction, spi). Inbound SPIs are chosen by us; outbound SPIs by
// the peer. Policies link to outbound SAs by `reqid` (as in the kernel's xfrm templates): the
// newest outbound SA installed with a reqid carries the traffic of every policy with that reqid.
//
// Changes after first publication are listed here.
//   - switch_outbound() added (step 2 of a two-step rekey); rekey_sa_pair() is now a non-virtual
//     helper = install_sa(new_in) + switch_outbound(...). Callers are unaffected.
//   - DataPlaneOptions: tun_offload, tun_txqueuelen added (defaults need no change by callers).
//   - handle_udp_esp_batch() added (a recvmmsg batch; coalesces TCP); the userspace backend sends
//     ESP-in-UDP itself through a raw UDP socket when it can (UdpSender is then a fallback).
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkd/common/error.hpp"
#include "qkd/common/result.hpp"
#include "qkd/common/secret.hpp"

namespace qkd::dp {

enum class DpErrc {
    invalid_argument,  // a spec or option that cannot be installed as given
    not_found,         // no such SA / policy
    exists,            // an SA with this (direction, spi) or an identical policy is installed
    not_supported,     // the backend cannot do this (e.g. handle_udp_esp on xfrm)
    os_error,          // a system call failed; the message carries errno text
    netlink,           // the kernel refused a netlink request; the message carries its errno
    crypto,            // OpenSSL refused a key or context
    unavailable,       // the requested backend cannot run on this kernel
};
using DpError = qkd::Error<DpErrc>;
template <class T>
using DpResult = qkd::Result<T, DpError>;
std::string_view to_string(DpErrc c);

// ---------------------------------------------------------------------------------------------
// Addresses and selectors
struct IpAddress {
    enum class Family : std::uint8_t { v4 = 4, v6 = 6 };
    Family family = Family::v4;
    std::array<std::uint8_t, 16> bytes{};  // IPv4 uses the first 4 bytes, network order

    static DpResult<IpAddress> parse(std::string_view text);  // "10.0.0.1" or "fd00::1"
    static IpAddress v4(std::uint32_t host_order);
    std::size_t size() const { return family == Family::v4 ? 4 : 16; }
    std::span<const std::uint8_t> view() const { return {bytes.data(), size()}; }
    std::string to_string() const;
    bool operator==(const IpAddress&) const = default;
};

struct IpPrefix {
    IpAddress addr;
    std::uint8_t len = 0;  // 0..32 or 0..128

    static DpResult<IpPrefix> parse(
        std::string_view text);  // "10.1.0.0/16"; a bare address = /32 or /128
    bool contains(const IpAddress& a) const;
    std::string to_string() const;
    bool operator==(const IpPrefix&) const = default;
};

// A tunnel-mode traffic selector pair as seen from this gateway: packets from `local` to `remote`
// go out; packets from `remote` to `local` come in. Protocol 0 = any; ports are not matched.
struct TrafficSelector {
    IpPrefix local;
    IpPrefix remote;
    std::uint8_t protocol = 0;
    bool operator==(const TrafficSelector&) const = default;
};

struct UdpEndpoint {
    IpAddress addr;
    std::uint16_t port = 0;
};

// ---------------------------------------------------------------------------------------------
// SAs and policies
enum class Direction : std::uint8_t { inbound, outbound };
std::string_view to_string(Direction d);

struct UdpEncap {                   // RFC 3948
    std::uint16_t src_port = 4500;  // outer source port of packets this SA *sends* (outbound) or
                                    // receives from (inbound: peer port)
    std::uint16_t dst_port = 4500;
};

struct Lifetime {  // 0 = unlimited
    std::uint64_t bytes = 0;
    std::uint64_t packets = 0;
    std::uint64_t seconds = 0;
};

struct SaSpec {
    Direction direction = Direction::outbound;
    std::uint32_t spi = 0;    // network-order value as it appears in the ESP header
    std::uint32_t reqid = 0;  // links the SA to policies (see top of file); must be != 0
    IpAddress outer_src;      // tunnel endpoints (IPv4); for inbound SAs src = peer
    IpAddress outer_dst;
    std::optional<UdpEncap> encap;  // set when NAT-T is in use
    // RFC 4106: AES key (16 or 32 bytes) and the 4-byte salt, both from KEYMAT.
    qkd::SecretBytes key;
    qkd::SecretBytes salt;
    bool esn = false;                   // RFC 4303 64-bit extended sequence numbers
    std::uint32_t replay_window = 128;  // inbound only; >= 64 (0 disables anti-replay: tests only)
    std::vector<TrafficSelector> selectors;  // inbound: inner packets must match one of these
    Lifetime soft;  // soft expiry -> ExpiryEvent{hard=false}: time to rekey
    Lifetime hard;  // hard expiry -> ExpiryEvent{hard=true}: SA is unusable

    unsigned key_bits() const { return static_cast<unsigned>(key.size() * 8); }
};

struct SaId {
    Direction direction = Direction::outbound;
    std::uint32_t spi = 0;
    IpAddress outer_dst;  // the kernel names SAs by (dst, spi, proto); userspace ignores it
};

// A tunnel-mode policy: traffic matching `selector` in the outbound direction is protected by
// the newest outbound SA with `reqid`; inbound traffic for it must arrive through an SA with the
// same reqid. The xfrm backend installs out, in and fwd policies from one PolicySpec.
struct PolicySpec {
    TrafficSelector selector;
    std::uint32_t reqid = 0;
    IpAddress outer_local;  // tunnel endpoints
    IpAddress outer_remote;
    std::uint32_t priority = 0;  // 0 = backend default
};

struct SaCounters {
    std::uint64_t bytes = 0;  // inner (plaintext) bytes
    std::uint64_t packets = 0;
    std::uint64_t dropped_replay = 0;  // inbound
    std::uint64_t dropped_auth = 0;    // inbound: bad ICV
    std::uint64_t dropped_other = 0;   // inbound: padding, selector, ... / outbound: send errors
    std::uint64_t seq = 0;  // highest sequence number sent (outbound) / accepted (inbound)
};

struct ExpiryEvent {
    SaId sa;
    std::uint32_t reqid = 0;
    bool hard = false;
};

// The daemon owns the UDP port-4500 socket. The userspace backend calls this (from its own
// outbound thread) to send an ESP-in-UDP payload, which starts with the non-zero SPI
// (RFC 3948 2.2: no non-ESP marker on ESP packets). Must be thread-safe.
using UdpSender = std::function<void(const UdpEndpoint& local, const UdpEndpoint& remote,
                                     std::span<const std::uint8_t> esp)>;
using ExpiryCallback = std::function<void(const ExpiryEvent&)>;

struct DataPlaneOptions {
    // userspace backend
    std::string tun_name = "qkd0";         // created if missing (IFF_TUN | IFF_NO_PI)
    unsigned tun_mtu = 1400;               // inner MTU; outer packets are up to ~tun_mtu + 73 bytes
    std::optional<IpAddress> tun_address;  // optional address put on the TUN device (IPv4 /32)
    bool tun_offload = true;  // IFF_VNET_HDR + TSO: the kernel hands us 64 KiB TCP super-packets
                              // which the data plane segments itself (wire format unchanged)
    unsigned tun_txqueuelen = 2000;  // TUN queue (kernel -> data plane); 500 drops under TCP bursts
    bool raw_esp_socket = true;  // open a raw IPPROTO_ESP socket for non-encapsulated SAs, and a
                                 // send-only raw UDP socket for ESP-in-UDP (needs CAP_NET_RAW)
    UdpSender udp_sender;        // ESP-in-UDP sender when raw_esp_socket is off
    // both backends
    ExpiryCallback on_expire;  // soft/hard lifetime events; called from a backend thread
};

// ---------------------------------------------------------------------------------------------
class DataPlane {
  public:
    virtual ~DataPlane() = default;
    virtual std::string_view backend_name() const = 0;  // "userspace" | "xfrm"

    // Takes ownership of the key material (SecretBytes moved in, wiped on removal).
    virtual DpResult<void> install_sa(SaSpec spec) = 0;
    virtual DpResult<void> remove_sa(const SaId& id) = 0;

    // Rekey without a gap, step 2: install new_out (being the newest SA of its reqid it takes the
    // outbound traffic at once), remove old_out, and remove old_in after `linger` so packets
    // already in flight under the old SA are still accepted. Step 1 is install_sa(new inbound),
    // done earlier: an IKE responder installs its new inbound SA when it answers
    // CREATE_CHILD_SA and may switch outbound only once the initiator has done the same.
    virtual DpResult<void> switch_outbound(
        const SaId& old_in, const SaId& old_out, SaSpec new_out,
        std::chrono::milliseconds linger = std::chrono::milliseconds(2000)) = 0;

    // Both steps at once: install_sa(new_in), then switch_outbound(...).
    DpResult<void> rekey_sa_pair(
        const SaId& old_in, const SaId& old_out, SaSpec new_in, SaSpec new_out,
        std::chrono::milliseconds linger = std::chrono::milliseconds(2000)) {
        const SaId new_in_id{Direction::inbound, new_in.spi, new_in.outer_dst};
        if (auto r = install_sa(std::move(new_in)); !r) return r;
        if (auto r = switch_outbound(old_in, old_out, std::move(new_out), linger); !r) {
            (void)remove_sa(new_in_id);
            return r;
        }
        return {};
    }

    // Userspace: adds a route for selector.remote to the TUN device. xfrm: out/in/fwd policies.
    virtual DpResult<void> install_policy(const PolicySpec& p) = 0;
    virtual DpResult<void> remove_policy(const PolicySpec& p) = 0;

    virtual DpResult<SaCounters> counters(const SaId& id) = 0;

    // Userspace only: an ESP-in-UDP payload (starting with the SPI) received by the daemon on
    // its port-4500 socket from `src`. Decrypts and writes the inner packet to the TUN device.
    // xfrm returns not_supported (the kernel handles its own UDP_ENCAP socket).
    virtual DpResult<void> handle_udp_esp(std::span<const std::uint8_t> esp,
                                          const UdpEndpoint& src) = 0;

    // A receive batch (e.g. one recvmmsg on the port-4500 socket, non-ESP markers already
    // removed): as handle_udp_esp for each datagram, but inner TCP segments of the whole batch
    // are merged before they reach the TUN device. Returns how many datagrams were accepted.
    struct UdpEspDatagram {
        std::span<const std::uint8_t> esp;
        UdpEndpoint src;
    };
    virtual std::size_t handle_udp_esp_batch(std::span<const UdpEspDatagram> batch) {
        std::size_t ok = 0;
        for (const auto& d : batch) ok += handle_udp_esp(d.esp, d.src).ok() ? 1 : 0;
        return ok;
    }

    // Drops every SA and policy this data plane installed (also done by the destructor).
    virtual void flush() = 0;
};

// "auto" probes the kernel (xfrm with rfc4106(gcm(aes)) available -> "xfrm", else "userspace").
DpResult<std::unique_ptr<DataPlane>> make_dataplane(std::string_view backend,
                                                    DataPlaneOptions options);

// True when the running kernel accepts an ESP rfc4106(gcm(aes)) tunnel-mode xfrm SA. Cheap and
// side-effect free: a short-lived thread unshares into a scratch network namespace and tries
// XFRM_MSG_NEWSA there (needs root; without CAP_SYS_ADMIN it tries in the current namespace on a
// TEST-NET-1 address and deletes the SA at once). The reason is written to *why when not null.
bool kernel_has_esp(std::string* why = nullptr);

}  // namespace qkd::dp
