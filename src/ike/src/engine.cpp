// Engine: dispatch of datagrams to IKE SAs, message IDs and retransmission (RFC 7296 2.1-2.4),
// timers (rekey, expiry, liveness), and the public API. Exchanges live in tasks/.
#include <algorithm>
#include <cmath>

#include "impl.hpp"
#include "../tasks/task.hpp"  // ExchangeTask is complete here (send_request)

namespace qkd::ike {

using wire::ExchangeType;

std::string_view to_string(IkeSaState s) {
    switch (s) {
        case IkeSaState::Connecting: return "CONNECTING";
        case IkeSaState::Established: return "ESTABLISHED";
        case IkeSaState::Rekeying: return "REKEYING";
        case IkeSaState::Deleting: return "DELETING";
        case IkeSaState::Closed: return "CLOSED";
    }
    return "?";
}

std::string_view to_string(DropReason r) {
    switch (r) {
        case DropReason::NotIke: return "not IKE (no non-ESP marker)";
        case DropReason::Malformed: return "malformed";
        case DropReason::BadInitRequest: return "invalid IKE_SA_INIT request";
        case DropReason::InitMismatch: return "IKE_SA_INIT differs from the one of this SPIi";
        case DropReason::NoGateway: return "no gateway for this address";
        case DropReason::HalfOpenLimit: return "half-open SA limit reached";
        case DropReason::UnknownSa: return "no IKE SA with these SPIs";
        case DropReason::NotEncrypted: return "not encrypted";
        case DropReason::UnexpectedResponse: return "unexpected response";
        case DropReason::OutsideWindow: return "message ID outside the window";
        case DropReason::AnswerPending: return "retransmission while our answer is pending";
        case DropReason::IntegrityFailed: return "integrity check failed";
        case DropReason::TooLarge: return "reassembled message too large";
        case DropReason::Count: break;
    }
    return "?";
}

// ---------------------------------------------------------------- utilities

void Engine::Impl::drop(const Endpoint& remote, DropReason why, std::string_view detail) {
    ++stats.dropped;
    ++stats.drops[static_cast<std::size_t>(why)];
    sink.datagram_dropped(remote, why, detail);
}

std::uint64_t Engine::Impl::random_spi() {
    std::uint64_t v = 0;
    while (v == 0 || sas.count(v)) {
        std::array<std::uint8_t, 8> b;
        rng.fill(b);
        v = 0;
        for (auto x : b) v = v << 8 | x;
    }
    return v;
}

std::uint32_t Engine::Impl::random_child_spi() {
    std::array<std::uint8_t, 4> b;
    rng.fill(b);
    // SPIs 0-255 are reserved (RFC 4303 2.1).
    std::uint32_t v = std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 | b[3];
    return v < 256 ? v + 256 : v;
}

std::vector<std::uint8_t> Engine::Impl::random_nonce() {
    std::vector<std::uint8_t> n(kNonceSize);
    rng.fill(n);
    return n;
}

const GatewayConfig* Engine::Impl::gateway(std::string_view name) const {
    auto it = gateways.find(name);
    return it == gateways.end() ? nullptr : &it->second;
}

IkeSa* Engine::Impl::find(std::uint64_t own) {
    auto it = sas.find(own);
    return it == sas.end() || it->second->state == SaState::Dead ? nullptr : it->second.get();
}

IkeSa* Engine::Impl::find_by_gateway(std::string_view name) {
    IkeSa* best = nullptr;
    for (auto& [spi, sa] : sas)
        if (sa->gateway == name && sa->state != SaState::Dead && !sa->rekeyed_to &&
            (!best || sa->state == SaState::Established))
            best = sa.get();
    return best;
}

std::size_t Engine::Impl::half_open() const { return half_open_by_spi_i.size(); }

IkeSa& Engine::Impl::new_sa(const GatewayConfig& gw, bool initiator) {
    auto sa = std::make_unique<IkeSa>();
    sa->id = next_sa_id++;
    sa->gateway = gw.name;
    sa->initiator = initiator;
    sa->local = gw.local;
    sa->remote = gw.remote;
    sa->force_encap = gw.force_encap;
    sa->created = sa->last_rx = now();
    const std::uint64_t spi = random_spi();
    (initiator ? sa->spi_i : sa->spi_r) = spi;
    IkeSa& ref = *sa;
    sas.emplace(spi, std::move(sa));
    return ref;
}

// ---------------------------------------------------------------- sending

void Engine::Impl::send_raw(const Endpoint& local, const Endpoint& remote, Datagram bytes) {
    ++stats.tx;
    if (local.port == 4500 || remote.port == 4500) {
        // RFC 3948 2.2: IKE on port 4500 carries a 4-octet zero non-ESP marker.
        std::vector<std::uint8_t> framed(wire::kNonEspMarkerSize + bytes.size(), 0);
        std::copy(bytes.begin(), bytes.end(), framed.begin() + wire::kNonEspMarkerSize);
        sink.send_datagram(local, remote, framed);
        return;
    }
    sink.send_datagram(local, remote, bytes);
}

wire::Header Engine::Impl::header(const IkeSa& sa, ExchangeType ex, bool response, std::uint32_t mid) const {
    wire::Header h;
    h.spi_i = sa.spi_i;
    h.spi_r = sa.spi_r;
    h.exchange = ex;
    h.flags = static_cast<std::uint8_t>((sa.initiator ? wire::kFlagInitiator : 0) | (response ? wire::kFlagResponse : 0));
    h.message_id = mid;
    return h;
}

// RFC 9242 3.3.2: our own IKE_INTERMEDIATE messages enter the IntAuth chain as sent, before any
// key update of their round.
void Engine::Impl::int_auth_of_sent(IkeSa& sa, const wire::Header& h, const std::vector<Payload>& payloads) {
    ByteWriter w;
    const PayloadType first = wire::encode_chain(w, payloads);
    update_int_auth(sa, h, first, w.data());
}

void Engine::Impl::send_request(IkeSa& sa, std::unique_ptr<ExchangeTask> task, const std::vector<Payload>& payloads) {
    const ExchangeType ex = task->exchange();
    Outstanding o;
    o.task = std::move(task);
    o.message_id = sa.next_request_id++;
    if (ex == ExchangeType::IkeSaInit)
        o.packets.push_back(wire::encode_plain(header(sa, ex, false, o.message_id), payloads));
    else
        o.packets = wire::encode_encrypted(header(sa, ex, false, o.message_id), payloads, *sa.crypter,
                                           sa.fragmentation ? opts.fragment_size - 28 : 0);
    o.next_send = now() + opts.retransmit_base;
    if (ex == ExchangeType::IkeIntermediate) int_auth_of_sent(sa, header(sa, ex, false, o.message_id), payloads);
    for (const auto& p : o.packets) send_raw(sa.local, sa.remote, p);
    if (ex == ExchangeType::IkeSaInit) sa.init_request = o.packets.front();  // RealMessage1 (2.15)
    sa.active = std::move(o);
}

void Engine::Impl::send_response(IkeSa& sa, ExchangeType ex, std::uint32_t mid, const std::vector<Payload>& payloads) {
    if (ex == ExchangeType::IkeIntermediate) int_auth_of_sent(sa, header(sa, ex, true, mid), payloads);
    if (ex == ExchangeType::IkeSaInit)
        sa.last_response = {wire::encode_plain(header(sa, ex, true, mid), payloads)};
    else
        sa.last_response = wire::encode_encrypted(header(sa, ex, true, mid), payloads, *sa.crypter,
                                                  sa.fragmentation ? opts.fragment_size - 28 : 0);
    sa.last_response_id = mid;
    if (ex == ExchangeType::IkeSaInit) sa.init_response = sa.last_response.front();  // RealMessage2 (2.15)
    for (const auto& p : sa.last_response) send_raw(sa.local, sa.remote, p);
}

// ---------------------------------------------------------------- receiving

void Engine::Impl::on_datagram(const Endpoint& local, const Endpoint& remote, Datagram bytes) {
    ++stats.rx;
    if (local.port == 4500 || remote.port == 4500) {
        if (bytes.size() == 1 && bytes[0] == 0xFF) return;  // NAT keepalive (RFC 3948 2.3)
        if (bytes.size() < wire::kNonEspMarkerSize || bytes[0] || bytes[1] || bytes[2] || bytes[3]) {
            drop(remote, DropReason::NotIke);  // ESP belongs to the data plane
            return;
        }
        bytes = bytes.subspan(wire::kNonEspMarkerSize);
    }
    auto outer = wire::decode_outer(bytes);
    if (!outer) {
        drop(remote, DropReason::Malformed, outer.error().message);
        return;
    }
    const wire::Header& h = outer->header;
    if (h.exchange == ExchangeType::IkeSaInit && !h.is_response()) {
        process_init_request(local, remote, *outer, bytes);
        return;
    }
    // Our SPI is the responder's when the sender is the original initiator, and vice versa.
    IkeSa* sa = find(h.from_initiator() ? h.spi_r : h.spi_i);
    if (!sa || (h.from_initiator() == sa->initiator)) {
        drop(remote, DropReason::UnknownSa, wire::to_string(h.exchange));
        return;
    }
    if (h.exchange == ExchangeType::IkeSaInit) {
        process_init_response(*sa, *outer, bytes);
        return;
    }
    if (!outer->encrypted || !sa->crypter) {
        drop(remote, DropReason::NotEncrypted, wire::to_string(h.exchange));
        return;
    }
    handle_encrypted(*sa, local, remote, *outer, bytes);
    reap();
}

void Engine::Impl::handle_encrypted(IkeSa& sa, const Endpoint& local, const Endpoint& remote, const OuterMessage& outer,
                                    Datagram raw) {
    const wire::Header& h = outer.header;
    if (h.is_response()) {
        if (!sa.active || sa.active->waiting || sa.active->message_id != h.message_id) {
            drop(remote, DropReason::UnexpectedResponse, "message ID " + std::to_string(h.message_id));
            return;
        }
    } else if (sa.responding) {
        // Our answer to the last request waits for an outside input (tasks/task.hpp); the
        // retransmission is answered from the cache once it exists. Window size 1 (2.3).
        drop(remote, DropReason::AnswerPending, "message ID " + std::to_string(h.message_id));
        return;
    } else if (sa.last_response_id && h.message_id == *sa.last_response_id) {
        // RFC 7296 2.1: a retransmitted request is answered with the cached response. Only the
        // first fragment triggers the resend (RFC 7383 2.6.1).
        // The byte-identical first datagram is the retransmission even when its round's keys have
        // been replaced since (RFC 9370 2.2.2: IKE_INTERMEDIATE changes the keys).
        if (!outer.fragment || outer.frag.number == 1) {
            const bool same = std::equal(raw.begin(), raw.end(), sa.last_request_first.begin(), sa.last_request_first.end());
            if (same || sa.crypter->open(outer))
                for (const auto& p : sa.last_response) send_raw(sa.local, sa.remote, p);
        }
        return;
    } else if (h.message_id != sa.expected_request) {
        drop(remote, DropReason::OutsideWindow,
             "message ID " + std::to_string(h.message_id) + ", expected " + std::to_string(sa.expected_request));
        return;
    }
    auto plain = sa.crypter->open(outer);
    if (!plain) {
        drop(remote, DropReason::IntegrityFailed);  // RFC 7296 2.21.2: no answer
        return;
    }
    if (!h.is_response() && (!outer.fragment || outer.frag.number == 1)) sa.last_request_first.assign(raw.begin(), raw.end());
    std::vector<std::uint8_t> whole;
    PayloadType first = outer.inner_first;
    if (outer.fragment) {
        // RFC 7383 2.6: collect every fragment of this message before processing.
        auto& r = sa.reassembly;
        if (!r || r->message_id != h.message_id || r->response != h.is_response() || r->total != outer.frag.total) {
            r.emplace();
            r->message_id = h.message_id;
            r->response = h.is_response();
            r->total = outer.frag.total;
            r->parts.resize(outer.frag.total);
        }
        auto& slot = r->parts[outer.frag.number - 1];
        if (!slot) {
            r->bytes += plain->size();
            if (r->bytes > wire::kMaxMessageSize) {
                sa.reassembly.reset();
                drop(remote, DropReason::TooLarge, std::to_string(r->bytes) + " octets");
                return;
            }
            slot = std::move(plain).value();
        }
        if (outer.frag.number == 1) r->first = outer.inner_first;
        if (!std::all_of(r->parts.begin(), r->parts.end(), [](const auto& p) { return p.has_value(); })) return;
        first = r->first;
        for (auto& p : r->parts) whole.insert(whole.end(), p->begin(), p->end());
        sa.reassembly.reset();
    } else {
        whole = std::move(plain).value();
    }
    sa.last_rx = now();
    // RFC 7296 2.23: behind a NAT, follow the peer's address on authenticated messages.
    if ((sa.nat_remote || sa.nat_local) && !(remote == sa.remote)) {
        sa.remote = remote;
        if (local.port == 4500) sa.local.port = 4500;
    }
    auto payloads = wire::decode_chain(whole, first);
    Message m;
    m.header = h;
    std::string bad;
    if (!payloads) {
        bad = payloads.error().message;
    } else {
        m.payloads = std::move(payloads).value();
        if (auto r = wire::check_rules(h, true, m.payloads); !r) bad = r.error().message;
    }
    if (!bad.empty()) {
        drop(remote, DropReason::Malformed, wire::to_string(h.exchange) + ": " + bad);
        if (!h.is_response()) {
            // RFC 7296 2.21.2: answer a broken request in an authenticated SA with INVALID_SYNTAX.
            sa.expected_request = h.message_id + 1;
            send_response(sa, h.exchange, h.message_id, {wire::make_notify(wire::NotifyType::InvalidSyntax)});
        }
        return;
    }
    update_int_auth(sa, h, first, whole);  // RFC 9242 3.3.2 (IKE_INTERMEDIATE only)
    dispatch(sa, m);
}

// ---------------------------------------------------------------- timers

void Engine::Impl::on_timer() {
    const TimePoint t = now();
    std::vector<IkeSa*> list;
    for (auto& [spi, sa] : sas) list.push_back(sa.get());
    for (IkeSa* sa : list) {
        if (sa->state == SaState::Dead) continue;
        if (sa->state == SaState::InitDone && t - sa->created >= kHalfOpenTimeout) {
            destroy(*sa, "half-open IKE SA timed out", false);
            continue;
        }
        if (sa->active && !sa->active->waiting && t >= sa->active->next_send) {
            auto& o = *sa->active;
            if (o.tries >= opts.retransmit_tries) {
                // An unanswered DELETE still ends the SA (the peer may have deleted it and lost
                // our answer); anything else means the peer is gone.
                const bool deleting = o.spec().kind == TaskKind::DeleteIke;
                destroy(*sa, deleting ? "DELETE not confirmed by peer; closed" : "peer did not answer " + std::to_string(o.tries + 1) + " transmissions", !deleting);
                continue;
            }
            ++o.tries;
            ++stats.retransmits;
            for (const auto& p : o.packets) send_raw(sa->local, sa->remote, p);
            o.next_send = t + std::chrono::duration_cast<std::chrono::milliseconds>(
                                  opts.retransmit_base * std::pow(opts.retransmit_backoff, o.tries));
        }
        if (sa->state != SaState::Established) continue;
        const GatewayConfig* gw = gateway(sa->gateway);
        if (t >= sa->expire_at) {
            sa->expire_at = TimePoint::max();  // once: the DELETE exchange ends the SA
            queue_task(*sa, Task{TaskKind::DeleteIke});
            continue;
        }
        if (!sa->rekeyed_to && t >= sa->rekey_at) {
            sa->rekey_at = sa->expire_at;  // once
            queue_task(*sa, Task{TaskKind::IkeRekey});
        }
        for (auto& c : sa->children) {
            if (c.deleting) continue;
            if (t >= c.expire_at) {
                c.deleting = true;
                queue_task(*sa, Task{TaskKind::DeleteChild, c.id, {c.spi_in}});
            } else if (!c.rekeying && t >= c.rekey_at && !sa->rekeyed_to) {
                c.rekey_at = c.expire_at;
                queue_task(*sa, Task{TaskKind::ChildRekey, c.id});
            }
        }
        if (gw && gw->dpd_interval.count() > 0 && !sa->active && sa->queue.empty() && t - sa->last_rx >= gw->dpd_interval) {
            sa->last_rx = t;  // one probe per interval; failure shows as retransmit timeout
            queue_task(*sa, Task{TaskKind::Dpd});
        }
    }
    reap();
}

std::optional<TimePoint> Engine::Impl::next_deadline() const {
    std::optional<TimePoint> best;
    auto consider = [&](TimePoint t) {
        if (!best || t < *best) best = t;
    };
    for (const auto& [spi, sa] : sas) {
        if (sa->state == SaState::Dead) continue;
        if (sa->active && !sa->active->waiting) consider(sa->active->next_send);
        if (sa->state == SaState::InitDone) consider(sa->created + kHalfOpenTimeout);
        if (sa->state != SaState::Established) continue;
        consider(sa->expire_at);
        if (!sa->rekeyed_to) consider(sa->rekey_at);
        for (const auto& c : sa->children) {
            if (c.deleting) continue;
            consider(c.expire_at);
            if (!c.rekeying) consider(c.rekey_at);
        }
        if (const GatewayConfig* gw = gateway(sa->gateway); gw && gw->dpd_interval.count() > 0 && !sa->active && sa->queue.empty())
            consider(sa->last_rx + gw->dpd_interval);
    }
    return best;
}

}  // namespace qkd::ike
