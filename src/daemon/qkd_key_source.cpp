// The daemon's QKD key source: ETSI 014 Get key / Get key with key IDs through one kept-alive
// qkd::sae::Client per profile, each fetch bounded, checked and counted (see qkd_key_source.hpp).
#include "qkd/daemon/qkd_key_source.hpp"

#include <boost/asio/steady_timer.hpp>

#include <algorithm>

#include "qkd/common/log.hpp"
#include "qkd/sae/client.hpp"

namespace qkd::daemon {

namespace asio = boost::asio;

namespace {

using Fail = Err<QkdError>;

QkdError from_sae(const sae::Error& e) {
    QkdFail k = QkdFail::unreachable;
    switch (e.code) {
        case sae::Errc::config: k = QkdFail::bad_request; break;
        case sae::Errc::resolve:
        case sae::Errc::connect:
        case sae::Errc::transport:
        case sae::Errc::answer_lost: k = QkdFail::unreachable; break;
        case sae::Errc::tls:
        case sae::Errc::identity: k = QkdFail::tls; break;
        case sae::Errc::timeout: k = QkdFail::timeout; break;
        case sae::Errc::bad_request:
        case sae::Errc::unauthorized:
        case sae::Errc::server_error:
        case sae::Errc::http_status: k = QkdFail::kme_refused; break;
        case sae::Errc::bad_answer:
            // src/sae/answer.cpp checks the key length against the size asked for (ETSI 014 6.3)
            // and says "... has N bits; expected M": a wrong length, not a malformed answer.
            k = e.message.find(" bits; expected ") != std::string::npos ? QkdFail::wrong_length : QkdFail::bad_answer;
            break;
        case sae::Errc::busy: k = QkdFail::busy; break;
    }
    // sae::describe quotes the ETSI message verbatim (e.g. 503 "peer KME unreachable").
    return QkdError{k, sae::describe(e)};
}

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

std::string_view to_string(QkdFail f) {
    switch (f) {
        case QkdFail::no_profile: return "no_profile";
        case QkdFail::timeout: return "timeout";
        case QkdFail::unreachable: return "unreachable";
        case QkdFail::tls: return "tls";
        case QkdFail::kme_refused: return "kme_refused";
        case QkdFail::bad_answer: return "bad_answer";
        case QkdFail::wrong_length: return "wrong_length";
        case QkdFail::not_uuid: return "not_uuid";
        case QkdFail::replayed: return "replayed";
        case QkdFail::busy: return "busy";
        case QkdFail::bad_request: return "bad_request";
    }
    return "unknown";
}

std::size_t UsedKeyIds::Hash::operator()(const Uuid& u) const {
    // Key_IDs are public values; a UUID's bytes are already well mixed (v4: random).
    std::size_t h = 0;
    for (std::size_t i = 0; i < sizeof(std::size_t) && i < u.size(); ++i) h = (h << 8) | u[i];
    return h ^ (std::size_t{u[15]} << 3);
}

bool UsedKeyIds::insert(const Uuid& id) {
    if (!set_.insert(id).second) return false;
    order_.push_back(id);
    while (order_.size() > max_) {
        set_.erase(order_.front());
        order_.pop_front();
    }
    return true;
}

bool UsedKeyIds::contains(const Uuid& id) const { return set_.count(id) != 0; }

void QkdCounters::observe_rtt(std::chrono::microseconds rtt) {
    const double s = static_cast<double>(rtt.count()) / 1e6;
    for (std::size_t i = 0; i < kRttBuckets.size(); ++i)
        if (s <= kRttBuckets[i]) {
            ++rtt_buckets[i];
            break;
        }
    ++rtt_count;  // the +Inf bucket is rtt_count
    rtt_sum_seconds += s;
    last_rtt = rtt;
}

nlohmann::json QkdCounters::to_json() const {
    nlohmann::json f = nlohmann::json::object();
    for (std::size_t i = 0; i < kQkdFailKinds; ++i) f[std::string(to_string(static_cast<QkdFail>(i)))] = failures[i];
    return {{"keys_master", keys_master},
            {"keys_slave", keys_slave},
            {"failures", f},
            {"late_answers", late_answers},
            {"kme_rtt_count", rtt_count},
            {"kme_rtt_avg_ms", rtt_count ? rtt_sum_seconds * 1000.0 / static_cast<double>(rtt_count) : 0.0},
            {"last_kme_rtt_ms", static_cast<double>(last_rtt.count()) / 1000.0},
            {"last_error", last_error}};
}

struct QkdKeySource::Impl {
    struct Entry {
        std::shared_ptr<sae::Client> client;
        QkdCounters counters;
        UsedKeyIds used;
    };
    asio::any_io_executor ex;
    std::map<std::string, Entry, std::less<>> profiles;

    // One fetch in flight: ends once, by the answer or by the deadline.
    struct Pending {
        Pending(asio::any_io_executor e, QkdKeyCallback d) : timer(std::move(e)), done(std::move(d)) {}
        asio::steady_timer timer;
        QkdKeyCallback done;
        bool finished = false;
    };

    void fail(Entry& e, std::string_view profile, QkdError err, QkdKeyCallback& done) {
        ++e.counters.failures[static_cast<std::size_t>(err.kind)];
        e.counters.last_error = err.message;
        spdlog::warn("qkd profile \"{}\": {} ({})", profile, err.message, to_string(err.kind));
        done(Fail{std::move(err)});
    }

    // Checks one answer and hands the key on. `want_id` is set for a slave fetch.
    void finish(const std::string& profile, bool master, unsigned bits, const std::optional<Uuid>& want_id,
                sae::KeysResult r, QkdKeyCallback& done) {
        auto it = profiles.find(profile);
        if (it == profiles.end()) return;  // cannot happen: profiles never go away
        Entry& e = it->second;
        if (!r) return fail(e, profile, from_sae(r.error()), done);
        e.counters.observe_rtt(r->round_trip);
        auto& keys = r->value.keys;
        if (keys.size() != 1)
            return fail(e, profile,
                        {QkdFail::bad_answer, "KME answered " + std::to_string(keys.size()) + " keys, expected exactly 1"},
                        done);
        auto& k = keys[0];
        auto id = uuid_parse(k.key_ID);
        if (!id)
            return fail(e, profile,
                        {QkdFail::not_uuid, "key_ID \"" + k.key_ID.substr(0, 64) +
                                                "\" is not a UUID; expected 8-4-4-4-12 hex digits, which the QKD "
                                                "key exchange carries as 16 bytes"},
                        done);
        if (want_id && *id != *want_id)
            return fail(e, profile,
                        {QkdFail::bad_answer, "KME answered key_ID " + k.key_ID + ", expected " + uuid_format(*want_id)},
                        done);
        if (k.key.size() * 8 != bits)
            return fail(e, profile,
                        {QkdFail::wrong_length, "key " + k.key_ID + " has " + std::to_string(k.key.size() * 8) +
                                                    " bits, expected " + std::to_string(bits)},
                        done);
        // Master: a KME handing out a key_ID twice is broken; never use such a key again.
        if (master && !e.used.insert(*id))
            return fail(e, profile,
                        {QkdFail::replayed, "KME handed out key_ID " + k.key_ID + " a second time; refused"}, done);
        ++(master ? e.counters.keys_master : e.counters.keys_slave);
        QkdKey out;
        out.key_id = *id;
        out.key_id_text = uuid_format(*id);
        out.key = std::move(k.key);
        out.rtt = r->round_trip;
        spdlog::debug("qkd profile \"{}\": {} key {} ({} bits) in {} us", profile, master ? "master" : "slave",
                      out.key_id_text, bits, out.rtt.count());
        done(std::move(out));
    }

    template <class Start>
    void run(const std::string& profile, bool master, unsigned bits, std::optional<Uuid> want_id,
             std::chrono::milliseconds deadline, QkdKeyCallback done, std::weak_ptr<Impl> self, Start start) {
        auto p = std::make_shared<Pending>(ex, std::move(done));
        p->timer.expires_after(deadline);
        p->timer.async_wait([self, p, profile, deadline](const boost::system::error_code& ec) {
            auto me = self.lock();
            if (ec || !me || p->finished) return;
            p->finished = true;
            auto it = me->profiles.find(profile);
            if (it == me->profiles.end()) return;
            me->fail(it->second, profile,
                     {QkdFail::timeout, "no key from the KME within " + ms(deadline) + " (the QKD timeout of this fetch)"},
                     p->done);
        });
        start([self, p, profile, master, bits, want_id](sae::KeysResult r) {
            auto me = self.lock();
            if (!me) return;  // the key (if any) is zeroized with r
            if (p->finished) {
                auto it = me->profiles.find(profile);
                if (it != me->profiles.end()) ++it->second.counters.late_answers;
                return;
            }
            p->finished = true;
            p->timer.cancel();
            me->finish(profile, master, bits, want_id, std::move(r), p->done);
        });
    }
};

QkdKeySource::QkdKeySource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
QkdKeySource::~QkdKeySource() = default;

Result<std::unique_ptr<QkdKeySource>, std::string> QkdKeySource::create(asio::any_io_executor ex,
                                                                        std::vector<sae::Profile> profiles) {
    auto impl = std::make_unique<Impl>();
    impl->ex = ex;
    for (auto& p : profiles) {
        std::string name = p.name;
        auto c = sae::Client::create(ex, std::move(p));
        if (!c) return Err{std::string("qkd profile \"" + name + "\": " + sae::describe(c.error()))};
        impl->profiles.emplace(name, Impl::Entry{std::move(*c), {}, UsedKeyIds{}});
    }
    return std::unique_ptr<QkdKeySource>(new QkdKeySource(std::move(impl)));
}

void QkdKeySource::fetch_master(const std::string& profile, const std::string& peer_sae_id, unsigned bits,
                                std::chrono::milliseconds timeout, QkdKeyCallback done) {
    auto it = impl_->profiles.find(profile);
    if (it == impl_->profiles.end()) {
        done(Fail{{QkdFail::no_profile, "no [[qkd_profile]] named \"" + profile + "\""}});
        return;
    }
    auto client = it->second.client;
    const auto deadline = std::min(timeout, client->profile().timeout);
    sae::GetKeyParams params;
    params.slave_SAE_ID = peer_sae_id;
    params.size_bits = static_cast<int>(bits);
    impl_->run(profile, true, bits, std::nullopt, deadline, std::move(done), impl_,
               [client, params](std::function<void(sae::KeysResult)> cb) { client->async_get_key(params, std::move(cb)); });
}

void QkdKeySource::fetch_slave(const std::string& profile, const std::string& master_sae_id, const Uuid& key_id,
                               unsigned bits, std::chrono::milliseconds timeout, QkdKeyCallback done) {
    auto it = impl_->profiles.find(profile);
    if (it == impl_->profiles.end()) {
        done(Fail{{QkdFail::no_profile, "no [[qkd_profile]] named \"" + profile + "\""}});
        return;
    }
    auto& e = it->second;
    // A key_ID is used once (ike-tasks.md): one seen before, as master or slave, is refused here
    // without asking the KME. It counts as used from the moment it is asked for, so two requests
    // naming it at once cannot both get the key.
    if (!e.used.insert(key_id)) {
        impl_->fail(e, profile,
                    {QkdFail::replayed, "key_ID " + uuid_format(key_id) + " was already used; a QKD key is used once"},
                    done);
        return;
    }
    auto client = e.client;
    const auto deadline = std::min({timeout, client->profile().timeout, kSlaveDeadline});
    sae::GetKeyWithIdsParams params;
    params.master_SAE_ID = master_sae_id;
    params.key_IDs = {uuid_format(key_id)};
    params.size_bits = static_cast<int>(bits);
    impl_->run(profile, false, bits, key_id, deadline, std::move(done), impl_,
               [client, params](std::function<void(sae::KeysResult)> cb) {
                   client->async_get_key_with_ids(params, std::move(cb));
               });
}

bool QkdKeySource::has_profile(std::string_view name) const { return impl_->profiles.find(name) != impl_->profiles.end(); }

const QkdCounters* QkdKeySource::counters(std::string_view profile) const {
    auto it = impl_->profiles.find(profile);
    return it == impl_->profiles.end() ? nullptr : &it->second.counters;
}

std::vector<std::string> QkdKeySource::profile_names() const {
    std::vector<std::string> out;
    for (auto& [n, e] : impl_->profiles) out.push_back(n);
    return out;
}

nlohmann::json QkdKeySource::counters_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (auto& [n, e] : impl_->profiles) j[n] = e.counters.to_json();
    return j;
}

}  // namespace qkd::daemon
