#pragma once
// Keeping a wanted gateway up: the retry policy of one gateway (from its config), the capped
// exponential back-off with jitter, and the per-gateway state machine the daemon drives with the
// engine's IKE SA events. Pure (no I/O, no clock, no randomness of its own) so it is unit-tested
// with made-up times; the daemon's glue (timers, engine calls, logging) is in gateway_keep.cpp.
//
// A gateway is *wanted* when start_action = "start" (from the start or a reload) or after
// `qkdgate initiate`; `qkdgate terminate` makes it unwanted until the next initiate. A wanted
// gateway whose last IKE SA ends is initiated again:
//   * setup failed (no answer, AUTHENTICATION_FAILED, NO_PROPOSAL_CHOSEN, ... any reason: this is
//     also where a gateway that cannot get its QKD key will land): after the back-off of the
//     attempt number, until keyingtries attempts failed (0 = for ever);
//   * an established IKE SA stopped answering (DPD or any retransmission timeout): dpd_action,
//     "restart" initiates at once, "clear" leaves it down;
//   * the peer closed it (DELETE; any Down the daemon did not ask for): close_action, "start"
//     initiates at once, "none" leaves it down.
// An IKE SA that was up for less than kStableUp does not reset the back-off, so a peer that
// accepts and then deletes at once is not re-initiated in a tight loop.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "qkd/daemon/config.hpp"

namespace qkd::daemon {

using KeepClock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;
inline constexpr std::chrono::seconds kStableUp{5};

struct RetryPolicy {
    Millis delay{1000};
    Millis delay_max{60000};
    unsigned keyingtries = 0;  // 0 = for ever
    DpdAction dpd_action = DpdAction::restart;
    CloseAction close_action = CloseAction::start;
    static RetryPolicy of(const GatewayEntry& g);
};

// The wait after `failed` consecutive failed attempts (failed >= 1): delay * 2^(failed-1), capped
// at delay_max, then minus a jitter of up to a quarter drawn from `rnd` (uniform over 32 bits), so
// that gateways that failed together (a hub restarting) do not all retry in the same instant.
// failed = 0 gives 0 (re-initiate at once after losing an SA that was up).
Millis backoff_delay(const RetryPolicy& p, unsigned failed, std::uint32_t rnd);

enum class KeepPhase {
    idle,        // not wanted (or left down by dpd_action/close_action)
    waiting,     // wanted, down, the next attempt is at next_try()
    connecting,  // wanted, our attempt is under way (or a peer's SA is being set up)
    up,          // an IKE SA of this gateway is up
    given_up,    // wanted, but keyingtries attempts failed: down until `initiate`
};
std::string_view to_string(KeepPhase p);

// Why the last IKE SA of a gateway ended.
enum class SaEnd {
    setup_failed,        // IkeSaEvent::Failed of an SA that never came up
    established_failed,  // IkeSaEvent::Failed of an SA that was up (DPD / retransmission timeout)
    closed,              // IkeSaEvent::Down the daemon did not ask for (peer DELETE, expiry, ...)
};

class Keeper {
public:
    explicit Keeper(RetryPolicy p) : p_(p) {}

    // start_action = "start" or `initiate`: the caller initiates now (then attempt_started).
    void want();
    // `terminate`: no retries until want() again.
    void unwant();
    void attempt_started();
    // The caller's initiate() was refused: counted as a failed attempt (see ended()).
    std::optional<Millis> attempt_refused(std::string why, KeepClock::time_point now, std::uint32_t rnd);
    // An IKE SA of the gateway is up (ours or the peer's).
    void up(KeepClock::time_point now);
    // The gateway's last IKE SA ended (the caller checks that no other is alive). The wait before
    // the next attempt, or nullopt when the gateway stays down (not wanted, an action says so,
    // keyingtries reached, or an attempt is already scheduled).
    std::optional<Millis> ended(SaEnd why, std::string reason, KeepClock::time_point now, std::uint32_t rnd);
    // An SA of the gateway is being set up that we did not start (initiate() said Busy).
    void connecting() { phase_ = KeepPhase::connecting; }

    const RetryPolicy& policy() const { return p_; }
    void set_policy(RetryPolicy p) { p_ = p; }
    bool wanted() const { return wanted_; }
    KeepPhase phase() const { return phase_; }
    unsigned attempt() const { return tries_; }  // attempts since the last stable SA
    const std::string& last_error() const { return last_error_; }
    std::optional<KeepClock::time_point> next_try() const {
        return phase_ == KeepPhase::waiting ? std::optional(next_try_) : std::nullopt;
    }

private:
    std::optional<Millis> schedule(Millis d, KeepClock::time_point now);
    RetryPolicy p_;
    bool wanted_ = false;
    KeepPhase phase_ = KeepPhase::idle;
    unsigned tries_ = 0;
    std::string last_error_;
    KeepClock::time_point up_since_{};
    KeepClock::time_point next_try_{};
};

}  // namespace qkd::daemon
