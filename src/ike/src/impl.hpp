#pragma once
// Engine internals shared by engine.cpp and the exchange tasks (tasks/*.cpp).
#include <array>
#include <map>
#include <memory>
#include <unordered_map>

#include "../sa/ike_sa.hpp"
#include "qkd/ike/engine.hpp"

namespace qkd::ike {

class ExchangeTask;
struct Step;

using wire::Message;
using wire::OuterMessage;
using wire::Payload;
using wire::PayloadType;
using Datagram = std::span<const std::uint8_t>;

// Limits of the engine (one place, STYLE.md habit 10).
inline constexpr std::size_t kNonceSize = 32;
inline constexpr unsigned kMaxInitRetries = 3;          // COOKIE / INVALID_KE round trips
inline constexpr std::chrono::seconds kHalfOpenTimeout{30};
inline constexpr std::size_t kMaxQueuedTasks = 16;
inline constexpr std::size_t kMaxFollowups = 4;  // RFC 9370 2.2.4 responder states per IKE SA
inline constexpr std::chrono::seconds kFollowupTimeout{30};
inline constexpr std::size_t kLinkSize = 8;      // our N(ADDITIONAL_KEY_EXCHANGE) data

struct Engine::Impl {
    Impl(Clock& c, Rng& r, EventSink& s, EngineOptions o) : clock(c), rng(r), sink(s), opts(o) {}

    Clock& clock;
    Rng& rng;
    EventSink& sink;
    EngineOptions opts;
    std::map<std::string, GatewayConfig, std::less<>> gateways;
    std::unordered_map<std::uint64_t, std::unique_ptr<IkeSa>> sas;  // by our own IKE SPI
    std::unordered_map<std::uint64_t, std::uint64_t> half_open_by_spi_i;  // responder: SPIi -> our SPI
    std::uint64_t next_sa_id = 1, next_child_id = 1;
    EngineStats stats;
    std::array<std::uint8_t, 32> cookie_secret{};
    std::uint8_t cookie_version = 1;
    // IKE_SA_INIT requests that reached a key generation, in this and the previous second
    // (EngineOptions::cookie_rate).
    TimePoint init_window{};
    std::size_t init_work = 0, init_work_prev = 0;

    // --- utilities (engine.cpp)
    TimePoint now() const { return clock.now(); }
    std::uint64_t random_spi();
    std::uint32_t random_child_spi();
    std::vector<std::uint8_t> random_nonce();
    const GatewayConfig* gateway(std::string_view name) const;
    static std::uint64_t own_spi(const IkeSa& sa) { return sa.initiator ? sa.spi_i : sa.spi_r; }
    IkeSa* find(std::uint64_t own);
    IkeSa* find_by_gateway(std::string_view name);
    std::size_t half_open() const;
    void roll_init_window();
    bool init_rate_high();  // RFC 7296 2.6 cookies by the rate of IKE_SA_INIT work
    IkeSa& new_sa(const GatewayConfig& gw, bool initiator);
    void rekey_ike_sa_spis(IkeSa& sa, std::uint64_t old_own);

    // --- gateway selection (gateway_select.cpp)
    // IKE_SA_INIT: by the peer's address only (no identities yet); provisional.
    const GatewayConfig* gateway_for_peer(const Endpoint& local, const Endpoint& remote) const;
    // IKE_AUTH request: by IDi, IDr and address; `why` says what failed when `gw` is null.
    struct AuthChoice {
        const GatewayConfig* gw = nullptr;
        std::string why;
    };
    AuthChoice gateway_for_auth(const IkeSa& sa, const Identity& idi, const Identity* idr) const;

    // Counts and reports a dropped datagram (engine.cpp).
    void drop(const Endpoint& remote, DropReason why, std::string_view detail = {});

    // --- sending and tasks (engine.cpp; the exchanges are task objects in tasks/, task.hpp)
    void send_raw(const Endpoint& local, const Endpoint& remote, Datagram bytes);
    wire::Header header(const IkeSa& sa, wire::ExchangeType ex, bool response, std::uint32_t mid) const;
    void send_request(IkeSa& sa, std::unique_ptr<ExchangeTask> task, const std::vector<Payload>& payloads);
    void send_response(IkeSa& sa, wire::ExchangeType ex, std::uint32_t mid, const std::vector<Payload>& payloads);
    void int_auth_of_sent(IkeSa& sa, const wire::Header& h, const std::vector<Payload>& payloads);
    void queue_task(IkeSa& sa, Task task);
    void start_next_task(IkeSa& sa);
    // Runs build_i and sends the request (or parks the task when it waits).
    void start_task(IkeSa& sa, std::unique_ptr<ExchangeTask> task);
    // Answers request `mid` as the responder task's step says (or parks it when it waits).
    void respond(IkeSa& sa, wire::ExchangeType ex, std::uint32_t mid, std::unique_ptr<ExchangeTask> task, const Step& step);
    // After process_i (or a resumed initiator task): another round, parked, or the next task.
    void after_response(IkeSa& sa, std::unique_ptr<ExchangeTask> task, const Step& step);
    // RFC 9370 2.2.4: the responder task an IKE_FOLLOWUP_KE request continues, by its link data.
    std::unique_ptr<ExchangeTask> take_followup(IkeSa& sa, const Message& m);

    // --- dispatch (engine.cpp)
    void on_datagram(const Endpoint& local, const Endpoint& remote, Datagram bytes);
    void handle_encrypted(IkeSa& sa, const Endpoint& local, const Endpoint& remote, const OuterMessage& outer, Datagram raw);
    void dispatch(IkeSa& sa, const Message& m);
    void on_timer();
    std::optional<TimePoint> next_deadline() const;

    // --- lifecycle (engine.cpp)
    void established(IkeSa& sa, IkeSaEvent ev = IkeSaEvent::Up);
    void schedule_child(const IkeSa& sa, ChildSa& c);
    ChildSaKeys child_keys(const IkeSa& sa, const ChildSa& c, keymat::ChildKeys&& k, bool we_initiated) const;
    void destroy(IkeSa& sa, std::string_view reason, bool failed);
    void reap();
    IkeSaInfo info(const IkeSa& sa) const;
    ChildSaRef ref(const IkeSa& sa, const ChildSa& c) const { return {sa.gateway, c.id, c.spi_in, c.spi_out}; }
    bool use_encap(const IkeSa& sa) const;

    // --- tasks/ike_init.cpp: the stateless gate before an IKE_SA_INIT request gets an SA
    Result<std::uint64_t, EngineError> initiate(const GatewayConfig& gw);
    void process_init_request(const Endpoint& local, const Endpoint& remote, const OuterMessage& m, Datagram raw);
    void process_init_response(IkeSa& sa, const OuterMessage& m, Datagram raw);
    std::vector<Payload> nat_detection(const IkeSa& sa, std::uint64_t spi_r) const;
    void check_nat(IkeSa& sa, const std::vector<Payload>& payloads, std::uint64_t spi_r);

    // --- tasks/ike_intermediate.cpp: RFC 9242 3.3.2 IntAuth over an IKE_INTERMEDIATE message
    // (its header and inner payloads in clear), with the keys protecting it.
    void update_int_auth(IkeSa& sa, const wire::Header& h, PayloadType first, std::span<const std::uint8_t> inner);

    // --- tasks/ike_rekey.cpp, tasks/informational.cpp
    void adopt_rekeyed(IkeSa& old_sa, IkeSa& new_sa);
    void remove_child(IkeSa& sa, std::uint64_t child_id, bool notify_sink);
};

// --- sa/select.cpp: proposal selection and traffic selector narrowing
struct IkeSelection {
    std::uint8_t number = 1;
    EncrAlg encr;
    crypto::PrfAlg prf = crypto::PrfAlg::HmacSha512;
    crypto::KeGroup group = crypto::KeGroup::None;
    AdditionalKeChoice addke{};  // RFC 9370 ADDKE1..7; None = no round for that slot
};
struct EspSelection {
    std::uint8_t number = 1;
    std::uint32_t peer_spi = 0;
    EncrAlg encr;
    crypto::KeGroup group = crypto::KeGroup::None;
    bool esn = false;
    AdditionalKeChoice addke{};  // only with a PFS group (CREATE_CHILD_SA + IKE_FOLLOWUP_KE)
};
// Responder (RFC 7296 2.7, RFC 9370 2.2.1): the first of the peer's proposals that one of ours
// allows, with one transform of each type (ADDKE types included, each method at most once).
// preferred_ke: the group of the KE payload received, chosen when both sides accept it.
std::optional<IkeSelection> select_ike(const std::vector<IkeProposal>& ours, const wire::SaPayload& theirs,
                                       std::uint16_t preferred_ke);
std::optional<EspSelection> select_esp(const std::vector<EspProposal>& ours, const wire::SaPayload& theirs,
                                       bool with_ke, std::uint16_t preferred_ke);
wire::SaPayload ike_sa_payload(const std::vector<IkeProposal>& ours, std::span<const std::uint8_t> spi);
wire::SaPayload esp_sa_payload(const std::vector<EspProposal>& ours, std::uint32_t spi, bool with_ke);
wire::SaPayload selected_ike_payload(const IkeSelection& s, std::span<const std::uint8_t> spi);
wire::SaPayload selected_esp_payload(const EspSelection& s, std::uint32_t spi, bool with_ke);
// Initiator: checks that a responder's single-proposal answer names a proposal number we sent and
// takes from that proposal one transform of each type we offered there (ADDKE NONE or absent
// only where we offered NONE), and maps it back to a selection.
std::optional<IkeSelection> accept_ike(const std::vector<IkeProposal>& ours, const wire::SaPayload& answer);
std::optional<EspSelection> accept_esp(const std::vector<EspProposal>& ours, const wire::SaPayload& answer, bool with_ke);
// RFC 7296 2.9: the intersection of what the peer proposes with what we allow; empty = unacceptable.
std::vector<TrafficSelector> narrow(const std::vector<TrafficSelector>& proposed, const std::vector<TrafficSelector>& allowed);

}  // namespace qkd::ike
