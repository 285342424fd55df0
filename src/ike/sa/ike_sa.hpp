#pragma once
// IKE SA and child SA state (RFC 7296 2), with one transition function that refuses illegal
// transitions (STYLE.md habit 5). Parsers never touch these; tasks do.
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../keymat/keymat.hpp"
#include "key_exchange.hpp"
#include "../wire/message.hpp"
#include "qkd/crypto/ke.hpp"
#include "qkd/crypto/prf.hpp"
#include "qkd/ike/engine.hpp"

namespace qkd::ike {

enum class SaState {
    New,          // created, nothing sent
    InitSent,     // initiator: IKE_SA_INIT request out
    InitDone,     // responder: IKE_SA_INIT answered, half-open
    AuthSent,     // initiator: IKE_AUTH request out
    Established,  // authenticated
    Deleting,     // our DELETE for the IKE SA is out
    Dead,         // to be reaped
};
std::string_view to_string(SaState s);

struct ChildSa {
    std::uint64_t id = 0;
    std::uint32_t spi_in = 0, spi_out = 0;
    EncrAlg encr;
    crypto::KeGroup pfs = crypto::KeGroup::None;
    AdditionalKeChoice addke{};  // RFC 9370: the IKE_FOLLOWUP_KE rounds of the rekey that made it
    bool esn = false;
    std::vector<TrafficSelector> local_ts, remote_ts;
    TimePoint established{}, rekey_at{}, expire_at{};
    bool rekeying = false;  // a rekey of this SA is in progress (either side)
    bool deleting = false;
    bool installed = true;  // handed to the data plane (false for a redundant collision SA)
    // RFC 7296 2.8.1: the exchange that created this SA, for simultaneous-rekey resolution.
    std::uint64_t replaces = 0;  // child id this SA rekeyed
    bool peer_initiated = false;
    std::vector<std::uint8_t> created_ni, created_nr;
};

// What an exchange we start is about (window size 1, RFC 7296 2.3): queued as plain data, made
// into a task object (tasks/task.hpp) when it starts.
enum class TaskKind { IkeInit, IkeIntermediate, IkeAuth, ChildRekey, IkeRekey, DeleteChild, DeleteIke, Dpd };

struct Task {
    Task() = default;
    explicit Task(TaskKind k, std::uint64_t child = 0, std::vector<std::uint32_t> spis = {})
        : kind(k), child_id(child), delete_spis(std::move(spis)) {}
    TaskKind kind = TaskKind::Dpd;
    std::uint64_t child_id = 0;             // ChildRekey / DeleteChild
    std::vector<std::uint32_t> delete_spis; // DeleteChild: our inbound SPIs
    crypto::KeGroup ke_group = crypto::KeGroup::None;  // CREATE_CHILD_SA after INVALID_KE_PAYLOAD
    unsigned attempts = 0;
};

class ExchangeTask;

// Our request in flight, or (waiting) a task whose request waits for an outside input.
struct Outstanding {
    Outstanding();
    ~Outstanding();
    Outstanding(Outstanding&&) noexcept;
    Outstanding& operator=(Outstanding&&) noexcept;
    std::unique_ptr<ExchangeTask> task;
    std::uint32_t message_id = 0;
    std::vector<std::vector<std::uint8_t>> packets;
    unsigned tries = 0;
    TimePoint next_send{};
    bool waiting = false;
    const Task& spec() const;
};

// A peer's request whose responder task waits (tasks/task.hpp): not answered yet; or (link set)
// a CREATE_CHILD_SA we answered whose IKE_FOLLOWUP_KE rounds are to come (RFC 9370 2.2.4).
struct PendingResponse {
    PendingResponse();
    ~PendingResponse();
    PendingResponse(PendingResponse&&) noexcept;
    PendingResponse& operator=(PendingResponse&&) noexcept;
    std::unique_ptr<ExchangeTask> task;
    std::uint32_t message_id = 0;
    std::vector<std::uint8_t> link;  // our N(ADDITIONAL_KEY_EXCHANGE) data
    TimePoint since{};
};

// RFC 7383 2.6: fragments of one message being received (bounded by kMaxFragments and
// kMaxMessageSize).
struct Reassembly {
    std::uint32_t message_id = 0;
    bool response = false;
    std::uint16_t total = 0;
    wire::PayloadType first = wire::PayloadType::None;
    std::vector<std::optional<std::vector<std::uint8_t>>> parts;
    std::size_t bytes = 0;
};

struct IkeSa {
    std::uint64_t id = 0;
    std::string gateway;
    bool initiator = false;  // original initiator (I flag)
    std::uint64_t spi_i = 0, spi_r = 0;
    SaState state = SaState::New;
    Endpoint local, remote;

    // Negotiated (IKE_SA_INIT or IKE rekey)
    EncrAlg encr;
    crypto::PrfAlg prf_alg = crypto::PrfAlg::HmacSha512;
    crypto::KeGroup group = crypto::KeGroup::None;
    std::optional<crypto::Prf> prf;
    std::vector<std::uint8_t> nonce_i, nonce_r;
    KeyExchanges kex;  // the IKE SA's key exchanges (IKE_SA_INIT); private keys only while in use
    SecretBytes sk_d, sk_pi, sk_pr;
    std::optional<wire::SkCrypter> crypter;
    std::vector<std::uint8_t> init_request, init_response;  // RealMessage1/2 for AUTH
    // RFC 9242 IKE_INTERMEDIATE / RFC 9370 additional key exchanges of the initial IKE SA
    bool intermediate = false;   // both sides sent N(INTERMEDIATE_EXCHANGE_SUPPORTED)
    std::size_t ke_done = 0;     // the last key exchange slot whose SK(n) is in the keys
    unsigned int_exchanges = 0;
    // QKD as a key exchange (sa/key_exchange.hpp): the key_ID in use, when it came, and how many
    // QKD keys this SA and its predecessors used (IkeSaInfo).
    std::array<std::uint8_t, 16> qkd_key_id{};
    std::optional<TimePoint> qkd_key_time;
    std::uint64_t qkd_keys_used = 0;  // IKE_INTERMEDIATE requests sent or answered (IntAuth in AUTH)
    std::vector<std::uint8_t> int_auth_i, int_auth_r;  // RFC 9242 3.3.2 chains, IntAuth_iN / _rN
    std::vector<std::uint8_t> cookie;                        // initiator: from N(COOKIE)
    unsigned init_retries = 0;
    bool nat_local = false, nat_remote = false;
    bool fragmentation = false;  // both sides sent FRAGMENTATION_SUPPORTED
    bool force_encap = false;    // from the gateway the SA started with (NAT detection faked)

    // RFC 7296 2.4: the authenticated identities (IKE_AUTH); INITIAL_CONTACT compares them.
    // A responder gateway with a remote_id pattern holds SAs of several peer identities.
    std::optional<Identity> local_id, peer_id;

    // Message IDs (RFC 7296 2.3)
    std::uint32_t next_request_id = 0;   // our next request
    std::uint32_t expected_request = 0;  // the peer's next request
    std::optional<std::uint32_t> last_response_id;
    std::vector<std::uint8_t> last_request_first;  // first datagram of that request (retransmission match)
    std::vector<std::vector<std::uint8_t>> last_response;  // cached for retransmitted requests
    std::optional<Outstanding> active;
    std::optional<PendingResponse> responding;  // the peer's request we answer once a task resumes
    std::vector<PendingResponse> followups;     // responder rekeys awaiting IKE_FOLLOWUP_KE (bounded)
    std::deque<Task> queue;
    // RFC 7383 reassembly: fragments of the message being received
    std::optional<Reassembly> reassembly;

    // Child SA created in IKE_AUTH (initiator side, before the response)
    std::uint32_t auth_child_spi = 0;

    std::vector<ChildSa> children;
    TimePoint created{}, established{}, rekey_at{}, expire_at{}, last_rx{};
    std::optional<std::uint64_t> rekeyed_to;  // new IKE SA after a rekey; this one is being deleted
    // RFC 7296 2.8.2: our SPI of the IKE SA the peer created by rekeying this one while our own
    // rekey was in flight; resolved when our rekey's response arrives.
    std::optional<std::uint64_t> collision_spi;
};

// RFC 7296 2.14 / RFC 9370 2.2.2: the seven keys from SKEYSEED with the SA's nonces and SPIs
// (those of IKE_SA_INIT), and the SK crypter for our role. Returns what failed, or "".
std::string install_ike_keys(IkeSa& sa, const SecretBytes& skeyseed);

// RFC 7296 state machine: the only place SaState changes.
bool transition(IkeSa& sa, SaState to);

}  // namespace qkd::ike
