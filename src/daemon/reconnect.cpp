// Retry policy, back-off and the per-gateway keep-up state machine (see reconnect.hpp).
#include "qkd/daemon/reconnect.hpp"

#include <algorithm>

namespace qkd::daemon {

RetryPolicy RetryPolicy::of(const GatewayEntry& g) {
    RetryPolicy p;
    p.delay = std::chrono::duration_cast<Millis>(g.retry_delay);
    p.delay_max = std::chrono::duration_cast<Millis>(g.retry_delay_max);
    p.keyingtries = g.keyingtries;
    p.dpd_action = g.dpd_action;
    p.close_action = g.close_action;
    return p;
}

Millis backoff_delay(const RetryPolicy& p, unsigned failed, std::uint32_t rnd) {
    if (failed == 0) return Millis{0};
    // delay * 2^(failed-1) without overflow: stop doubling once the cap is reached.
    std::int64_t d = p.delay.count();
    for (unsigned i = 1; i < failed && d < p.delay_max.count(); ++i) d *= 2;
    d = std::min<std::int64_t>(d, p.delay_max.count());
    // Jitter: minus up to d/4, uniform.
    const std::int64_t j = (d / 4) * static_cast<std::int64_t>(rnd) / static_cast<std::int64_t>(UINT32_MAX);
    return Millis{d - j};
}

std::string_view to_string(KeepPhase p) {
    switch (p) {
        case KeepPhase::idle: return "idle";
        case KeepPhase::waiting: return "waiting";
        case KeepPhase::connecting: return "connecting";
        case KeepPhase::up: return "up";
        case KeepPhase::given_up: return "given_up";
    }
    return "?";
}

void Keeper::want() {
    wanted_ = true;
    tries_ = 0;
    if (phase_ != KeepPhase::up) phase_ = KeepPhase::idle;
}

void Keeper::unwant() {
    wanted_ = false;
    tries_ = 0;
    if (phase_ != KeepPhase::up) phase_ = KeepPhase::idle;
}

void Keeper::attempt_started() {
    ++tries_;
    phase_ = KeepPhase::connecting;
}

std::optional<Millis> Keeper::attempt_refused(std::string why, KeepClock::time_point now, std::uint32_t rnd) {
    ++tries_;
    phase_ = KeepPhase::connecting;
    return ended(SaEnd::setup_failed, std::move(why), now, rnd);
}

void Keeper::up(KeepClock::time_point now) {
    if (phase_ != KeepPhase::up) up_since_ = now;
    phase_ = KeepPhase::up;
}

std::optional<Millis> Keeper::schedule(Millis d, KeepClock::time_point now) {
    phase_ = KeepPhase::waiting;
    next_try_ = now + d;
    return d;
}

std::optional<Millis> Keeper::ended(SaEnd why, std::string reason, KeepClock::time_point now, std::uint32_t rnd) {
    if (!reason.empty()) last_error_ = std::move(reason);
    const bool was_up = phase_ == KeepPhase::up;
    if (!wanted_) {
        phase_ = KeepPhase::idle;
        return std::nullopt;
    }
    // An attempt is already scheduled, or we gave up: another SA's end changes nothing.
    if (phase_ == KeepPhase::waiting || phase_ == KeepPhase::given_up) return std::nullopt;
    if (why == SaEnd::setup_failed) {
        if (p_.keyingtries && tries_ >= p_.keyingtries) {
            phase_ = KeepPhase::given_up;
            return std::nullopt;
        }
        return schedule(backoff_delay(p_, std::max(tries_, 1u), rnd), now);
    }
    if ((why == SaEnd::established_failed && p_.dpd_action == DpdAction::clear) ||
        (why == SaEnd::closed && p_.close_action == CloseAction::none)) {
        wanted_ = false;
        phase_ = KeepPhase::idle;
        return std::nullopt;
    }
    // A lost SA that had been up for a while: a fresh start (re-initiate at once, then back off
    // from the first step). One that was up only briefly keeps backing off.
    if (was_up && now - up_since_ >= kStableUp) tries_ = 0;
    return schedule(backoff_delay(p_, tries_, rnd), now);
}

}  // namespace qkd::daemon
