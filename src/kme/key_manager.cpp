#include "qkd/kme/key_manager.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>

#include "qkd/common/rng.hpp"
#include "qkd/etsi014/codec.hpp"
#include "qkd/kme/key_files.hpp"
#include "qkd/kme/key_stream.hpp"  // read_seed_file

namespace qkd::kme {

namespace msg = etsi014::msg;

// High-water marks are persisted KeySource::mark_step() bytes ahead of use (1 MiB for the emulated
// link, 4 KiB for key files), so most requests need no write at all; a crash skips at most that
// much material, never reuses it.
// A key-file link keeps a used file this much longer than a reservation can live.
static constexpr auto kKeyFileSlack = std::chrono::seconds(10);
// Prefetch refills go out in batches of at most this many keys: a big batch is one long stretch of
// work (encode, decode, inserts) in both event loops that requests would queue behind.
static constexpr std::size_t kRefillBatch = 64;

struct KeyManager::Link {
    std::string peer;  // peer KME ID, or our own ID for the local link
    std::unique_ptr<KeySource> out;  // material and budget for keys where this KME serves the master
    std::mutex mu;
    std::uint64_t next_offset = 0;     // next unused byte of `out`
    std::uint64_t committed_end = 0;   // durable high-water mark
    Link(std::string p, std::unique_ptr<KeySource> source) : peer(std::move(p)), out(std::move(source)) {}
};

struct KeyManager::Prefetch {
    std::string peer_kme, master;
    std::vector<std::string> slaves;
    std::uint32_t bits = 0;
    std::int64_t expires_unix = 0;  // of the batch being reserved
    std::deque<std::pair<SyncKey, std::chrono::steady_clock::time_point>> ready;  // reserved on the peer, oldest first
    std::size_t target = 8;  // keys to hold: doubles when a request finds too few, halves when keys age out
    bool refilling = false;
    std::chrono::steady_clock::time_point retry_after{};  // after a failed refill: the peer is down or slow
};

std::size_t KeyManager::UuidHash::operator()(const Uuid& u) const noexcept {
    std::size_t h;
    std::memcpy(&h, u.data(), sizeof h);  // random v4 bits
    return h;
}

namespace {
ApiError bad(std::string m, std::vector<etsi014::Extension> d = {}) { return ApiError{400, std::move(m), std::move(d)}; }
ApiError unauthorized() { return ApiError{401, std::string(msg::kUnauthorized), {}}; }
ApiError server(std::string m) { return ApiError{503, std::move(m), {}}; }
std::string label(const std::string& from, const std::string& to) { return from + "->" + to; }
// The byte range [lo, hi) the keys take in their stream.
std::pair<std::uint64_t, std::uint64_t> key_range(const std::vector<SyncKey>& keys) {
    std::uint64_t lo = std::numeric_limits<std::uint64_t>::max(), hi = 0;
    for (const auto& k : keys) {
        lo = std::min(lo, k.offset);
        hi = std::max(hi, k.offset + k.bits / 8);
    }
    return {keys.empty() ? 0 : lo, hi};
}
std::string material_of(const KeyMaterial& m, const std::vector<SyncKey>& keys) {
    auto [lo, hi] = key_range(keys);
    return m.fingerprint(lo, hi - lo);
}
std::string combo_key(const std::string& master, const std::vector<std::string>& slaves, std::int64_t bits) {
    std::string k = master;
    for (const auto& s : slaves) k += '\n' + s;
    return k + '\n' + std::to_string(bits);
}
}  // namespace

KeyManager::KeyManager(const Config& cfg, Store& store, const Clock& clock, std::map<std::string, std::shared_ptr<PeerClient>> peers,
                       KeySourceFactory sources, KeyMaterialFactory incoming)
    : cfg_(cfg), store_(store), clock_(clock), peer_clients_(std::move(peers)) {
    // A peer's slaves must read the very bytes our masters got: a custom source without its
    // incoming counterpart would hand them emulated-link bytes instead.
    if (sources && !incoming && !cfg.peers.empty())
        throw std::invalid_argument("a custom key source needs a matching incoming key material factory when peers are configured");
    check_key_dirs(cfg);  // also for a Config built in code, not read by load_config
    if (!sources) sources = make_emulated_source;
    if (!incoming) incoming = make_emulated_material;
    const double cap = static_cast<double>(cfg.limits.max_key_count) * static_cast<double>(cfg.limits.default_key_size);
    auto hwms = store_.load_hwms();
    auto add_link = [&](const std::string& peer, std::unique_ptr<KeySource> source) {
        auto l = label(cfg.kme_id, peer);
        // High-water marks and reservations are stored under the label: a source answering to
        // another one would restart at offset 0 after a restart and reuse material.
        if (!source || source->label() != l) throw std::invalid_argument("key source for " + l + " is missing or carries another label");
        auto link = std::make_unique<Link>(peer, std::move(source));
        link->next_offset = link->committed_end = hwms.count(l) ? hwms[l] : 0;
        link->out->resume_at(link->next_offset);
        link->next_offset = std::max(link->next_offset, resume_position(*link->out));  // a key-file index mark ahead of a lost database
        links_[l] = std::move(link);
    };
    auto add_emulated_link = [&](const std::string& peer, const SecretBytes& seed, const LinkConfig& lc) {
        add_link(peer, sources(seed.view(), label(cfg.kme_id, peer), lc, cap, clock_.now()));
    };
    // The local link serves pairs of SAEs attached to this KME; its seed is generated once and kept
    // in the state database unless a seed file is configured.
    SecretBytes local_seed;
    if (!cfg.local_link.seed_file.empty()) {
        local_seed = read_seed_file(cfg.local_link.seed_file);
    } else if (auto m = store_.get_meta("local_link_seed")) {
        local_seed = SecretBytes(std::span<const std::uint8_t>(*m));
        secure_zero(m->data(), m->size());
    } else {
        std::vector<std::uint8_t> s(32);
        random_bytes(s);
        store_.put_meta("local_link_seed", s);
        local_seed = SecretBytes(std::span<const std::uint8_t>(s));
        secure_zero(s.data(), s.size());
    }
    add_emulated_link(cfg.kme_id, local_seed, cfg.local_link);
    for (const auto& s : cfg.saes) sae_kme_[s] = cfg.kme_id;
    for (const auto& p : cfg.peers) {
        peers_[p.kme_id] = &p;
        for (const auto& s : p.saes) sae_kme_[s] = p.kme_id;
        auto in = label(p.kme_id, cfg.kme_id);
        if (!p.link.key_dir.empty()) {
            // Both directions from the files a QKD device drops in key_dir (key_files.hpp). A used
            // file is kept until every reservation that could still read it has expired.
            KeyFileLinkOptions o{p.link.key_dir, key_file_index_path(cfg.state_db, p.kme_id), cfg.kme_id, p.kme_id,
                                 cfg.reservation_ttl + p.sync_timeout + kKeyFileSlack};
            o.direction = p.link.key_dir_direction;
            auto files = make_key_file_link(o, clock_.now());
            add_link(p.kme_id, std::move(files.outgoing));
            in_streams_[in] = std::move(files.incoming);
        } else {
            auto seed = read_seed_file(p.link.seed_file);
            add_emulated_link(p.kme_id, seed, p.link);
            in_streams_[in] = incoming(seed.view(), in);
        }
        if (!in_streams_[in] || in_streams_[in]->label() != in)
            throw std::invalid_argument("key material for " + in + " is missing or carries another label");
        if (!peer_clients_.count(p.kme_id)) throw std::logic_error("no PeerClient for " + p.kme_id);
    }
    // Rows of a stream this KME no longer holds (a [[peer]] removed or renamed, kme_id changed):
    // their material cannot be read, so they are dropped, not served.
    std::vector<Op> stale;
    for (auto& r : store_.load_reservations()) {
        if (!links_.count(r.stream) && !in_streams_.count(r.stream)) {
            stale.push_back(op::DeleteReservation{r.stream, r.offset});
            continue;
        }
        reservations_.emplace(r.key_ID, std::move(r));
    }
    if (!stale.empty()) {
        spdlog::warn("{}: {} reservations of key streams not in the configuration dropped", cfg.kme_id, stale.size());
        store_.commit(std::move(stale), nullptr);
    }
    spdlog::info("{}: {} reservations restored, {} links", cfg.kme_id, reservations_.size(), links_.size());
}

KeyManager::~KeyManager() = default;

bool KeyManager::is_local_sae(const std::string& id) const {
    auto it = sae_kme_.find(id);
    return it != sae_kme_.end() && it->second == cfg_.kme_id;
}

const std::string* KeyManager::kme_of(const std::string& sae) const {
    auto it = sae_kme_.find(sae);
    return it == sae_kme_.end() ? nullptr : &it->second;
}

KeyManager::Link* KeyManager::link_for_peer(const std::string& peer) {
    auto it = links_.find(label(cfg_.kme_id, peer));
    return it == links_.end() ? nullptr : it->second.get();
}

std::int64_t KeyManager::now_unix() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock_.wall().time_since_epoch()).count();
}

ApiResult<etsi014::Status> KeyManager::status(const std::string& caller, const std::string& slave) {
    if (!is_local_sae(caller)) return Err{unauthorized()};
    const std::string* slave_kme = kme_of(slave);
    if (!slave_kme) return Err{bad(fmt::format("slave_SAE_ID \"{}\" is not known to this KME or its peers", slave))};
    Link* link = link_for_peer(*slave_kme);
    const auto& l = cfg_.limits;
    etsi014::Status s;
    s.source_KME_ID = cfg_.kme_id;
    s.target_KME_ID = *slave_kme;
    s.master_SAE_ID = caller;
    s.slave_SAE_ID = slave;
    s.key_size = l.default_key_size;
    s.stored_key_count = static_cast<std::int64_t>(link->out->available(clock_.now()) / static_cast<double>(l.default_key_size)) +
                         static_cast<std::int64_t>(prefetched_ready(caller, slave));
    s.max_key_count = l.max_key_count;
    s.max_key_per_request = l.max_key_per_request;
    s.max_key_size = l.max_key_size;
    s.min_key_size = l.min_key_size;
    s.max_SAE_ID_count = l.max_SAE_ID_count;
    return s;
}

ApiResult<int> KeyManager::check_request(const std::string& caller, const std::string& slave, const etsi014::KeyRequest& req,
                                         std::int64_t& number, std::int64_t& size, std::vector<std::string>& slaves,
                                         std::string& peer_kme) const {
    const auto& l = cfg_.limits;
    if (!is_local_sae(caller)) return Err{unauthorized()};
    // ETSI 014 6.2: unsupported mandatory extensions are refused with the canonical message.
    if (!req.extension_mandatory.empty()) {
        std::vector<etsi014::Extension> d;
        for (const auto& e : req.extension_mandatory)
            d.push_back({"extension_mandatory_unsupported", fmt::format("{} is not supported", e.name)});
        return Err{bad(std::string(msg::kMandatoryUnsupported), std::move(d))};
    }
    number = req.number.value_or(1);
    size = req.size.value_or(l.default_key_size);
    if (number < 1) return Err{bad(fmt::format("number must be at least 1, got {}", number))};
    if (number > l.max_key_per_request)
        return Err{bad(fmt::format("number {} exceeds max_key_per_request {}", number, l.max_key_per_request))};
    if (size % 8 != 0) return Err{bad(std::string(msg::kSizeMultipleOf8))};
    if (size < l.min_key_size || size > l.max_key_size)
        return Err{bad(fmt::format("size {} is outside min_key_size {} .. max_key_size {}", size, l.min_key_size, l.max_key_size))};
    if (static_cast<std::int64_t>(req.additional_slave_SAE_IDs.size()) > l.max_SAE_ID_count)
        return Err{bad(fmt::format("{} additional_slave_SAE_IDs given; max_SAE_ID_count is {}", req.additional_slave_SAE_IDs.size(),
                                   l.max_SAE_ID_count))};
    slaves.clear();
    slaves.push_back(slave);
    for (const auto& s : req.additional_slave_SAE_IDs) slaves.push_back(s);
    std::set<std::string> seen;
    peer_kme.clear();
    for (const auto& s : slaves) {
        if (!seen.insert(s).second) return Err{bad(fmt::format("slave SAE ID \"{}\" is listed twice", s))};
        if (s == caller) return Err{bad(fmt::format("slave SAE ID \"{}\" is the calling master SAE itself", s))};
        const std::string* k = kme_of(s);
        if (!k) return Err{bad(fmt::format("slave SAE ID \"{}\" is not known to this KME or its peers", s))};
        if (*k == cfg_.kme_id) continue;
        if (!peer_kme.empty() && peer_kme != *k)
            return Err{bad(fmt::format("slaves are attached to two peer KMEs ({} and {}); multicast reaches SAEs of this KME and of "
                                       "one peer KME", peer_kme, *k))};
        peer_kme = *k;
    }
    return 0;
}

std::string KeyManager::materialise(const KeyMaterial& stream, const std::vector<SyncKey>& keys, etsi014::KeyContainer& c) const {
    c.keys.clear();
    c.keys.reserve(keys.size());
    try {
        for (const auto& k : keys)
            c.keys.push_back(etsi014::Key{uuid_format(k.key_ID), stream.read(k.offset, k.bits / 8), std::nullopt, std::nullopt});
    } catch (const std::runtime_error& e) {
        // A source that can fail (key files): the message names the stream and offsets, never bytes.
        c.keys.clear();  // wipes what was read
        spdlog::error("{}: {}", cfg_.kme_id, e.what());
        return e.what();
    }
    return {};
}

std::vector<SyncKey> KeyManager::allocate(Link& link, std::size_t n, std::uint32_t bits, std::vector<Op>& ops, std::uint64_t& new_mark) {
    // Fresh key IDs and offsets; if the range passes the durable high-water mark, the caller must
    // commit `ops` (a new mark kHwmChunkBytes ahead, returned in `new_mark`; 0 if none) and then
    // call mark_durable(new_mark) before any of these keys is used.
    std::vector<SyncKey> keys(n);
    std::lock_guard lk(link.mu);
    for (auto& k : keys) {
        k.key_ID = uuid_random_v4();
        k.offset = link.next_offset;
        k.bits = bits;
        link.next_offset += bits / 8;
    }
    new_mark = 0;
    if (link.next_offset > link.committed_end) {
        new_mark = link.next_offset + link.out->mark_step();
        ops.push_back(op::SetHwm{link.out->label(), new_mark});
    }
    return keys;
}

void KeyManager::mark_durable(Link& link, std::uint64_t new_mark) {
    // Only a mark that a commit wrote counts: offsets below committed_end are handed out with no
    // commit of their own, and after a restart allocation resumes at the stored mark.
    if (new_mark == 0) return;
    std::lock_guard lk(link.mu);
    link.committed_end = std::max(link.committed_end, new_mark);
}

void KeyManager::get_key(const std::string& caller, const std::string& slave, const etsi014::KeyRequest& req, KeysCallback done) {
    std::int64_t number = 0, size = 0;
    std::vector<std::string> slaves;
    std::string peer_kme;
    if (auto ok = check_request(caller, slave, req, number, size, slaves, peer_kme); !ok) return done(Err{ok.error()});
    Link* link = link_for_peer(peer_kme.empty() ? cfg_.kme_id : peer_kme);
    if (std::vector<SyncKey> ready; take_prefetched(caller, slaves, peer_kme, number, size, ready)) {
        etsi014::KeyContainer c;
        if (auto err = materialise(*link->out, ready, c); !err.empty()) {
            // The master cannot ask for these key IDs again: burned (their reservations on the
            // peer expire unclaimed).
            keys_burned += ready.size();
            return done(Err{server(err + "; the keys were burned")});
        }
        keys_delivered_master += ready.size();
        keys_from_prefetch += ready.size();
        return done(std::move(c));
    }
    const std::uint64_t bytes = static_cast<std::uint64_t>(number) * static_cast<std::uint64_t>(size / 8);
    if (!link->out->take(static_cast<double>(bytes * 8), clock_.now())) {
        const auto origin = link->out->origin();
        return done(Err{server(fmt::format("not enough key material on link {}: {} bits requested, {:.0f} available{}", link->out->label(),
                                           bytes * 8, link->out->available(clock_.now()), origin.empty() ? "" : " (" + origin + ")"))});
    }

    std::vector<Op> ops;
    std::uint64_t new_mark = 0;
    std::vector<SyncKey> keys = allocate(*link, static_cast<std::size_t>(number), static_cast<std::uint32_t>(size), ops, new_mark);
    std::vector<std::string> local_slaves, remote_slaves;
    for (const auto& s : slaves) (is_local_sae(s) ? local_slaves : remote_slaves).push_back(s);
    const std::int64_t expires = now_unix() + cfg_.reservation_ttl.count();
    if (!local_slaves.empty()) {
        std::lock_guard lk(res_mu_);
        for (const auto& k : keys) {
            Reservation r{k.key_ID, link->out->label(), k.offset, k.bits, caller, local_slaves, local_slaves, expires};
            ops.push_back(op::PutReservation{r});
            reservations_.emplace(k.key_ID, std::move(r));
        }
    }

    // Step 2: durable local state, then the peer's reservation, then the answer (DESIGN.md §1 step 2).
    auto finish = [this, link, keys, done](std::string err) {
        etsi014::KeyContainer c;
        if (err.empty()) {
            err = materialise(*link->out, keys, c);
            if (!err.empty()) err += "; the keys were burned";
        }
        if (!err.empty()) {
            keys_burned += keys.size();
            std::vector<Op> undo;
            {
                std::lock_guard lk(res_mu_);
                for (const auto& k : keys)
                    if (reservations_.erase(k.key_ID)) undo.push_back(op::DeleteReservation{link->out->label(), k.offset});
            }
            if (!undo.empty()) store_.commit(std::move(undo), nullptr);
            return done(Err{server(err)});
        }
        keys_delivered_master += keys.size();
        done(std::move(c));
    };
    auto after_commit = [this, link, keys, caller, remote_slaves, expires, peer_kme, finish, new_mark](bool ok) {
        if (!ok) return finish(std::string(msg::kKeyDataAccess));
        mark_durable(*link, new_mark);
        if (remote_slaves.empty()) return finish("");
        SyncRequest sr{cfg_.kme_id, link->out->label(), caller, remote_slaves, expires, keys, material_of(*link->out, keys)};
        peer_clients_.at(peer_kme)->reserve(std::move(sr), [this, peer_kme, finish, expires](std::string e) {
            if (!e.empty()) {
                ++sync_failures;
                spdlog::warn("peer KME {} did not confirm a reservation: {}; material burned", peer_kme, e);
                return finish(fmt::format("peer KME {} did not confirm the key reservation: {}", peer_kme, e));
            }
            // A confirmation that came after the reservation expired (reservation_ttl shorter than
            // the round trip): the slave could not fetch the key any more, so the master does
            // not get it either.
            if (now_unix() > expires) {
                ++sync_failures;
                spdlog::warn("peer KME {} confirmed a reservation after it expired (reservation_ttl {} s); material burned", peer_kme,
                             cfg_.reservation_ttl.count());
                return finish(fmt::format("peer KME {} confirmed the key reservation only after it expired (reservation_ttl is {} s)", peer_kme,
                                          cfg_.reservation_ttl.count()));
            }
            finish("");
        });
    };
    if (ops.empty()) after_commit(true);
    else store_.commit(std::move(ops), after_commit);
}

std::chrono::steady_clock::duration KeyManager::prefetch_max_age() const {
    return std::min<std::chrono::steady_clock::duration>(std::chrono::seconds(1), cfg_.reservation_ttl / 10);
}

bool KeyManager::take_prefetched(const std::string& caller, const std::vector<std::string>& slaves, const std::string& peer_kme,
                                 std::int64_t number, std::int64_t size, std::vector<SyncKey>& out) {
    if (peer_kme.empty()) return false;
    const PeerConfig* pc = peers_.at(peer_kme);
    if (pc->prefetch_keys == 0) return false;
    for (const auto& s : slaves)
        if (is_local_sae(s)) return false;  // mixed local and peer slaves: ordinary path
    const auto now = clock_.now();
    Prefetch* pf = nullptr;
    bool start_refill = false, got = false;
    {
        std::lock_guard lk(pf_mu_);
        auto& slot = prefetch_[combo_key(caller, slaves, size)];
        if (!slot) {
            slot = std::make_unique<Prefetch>();
            slot->peer_kme = peer_kme;
            slot->master = caller;
            slot->slaves = slaves;
            slot->bits = static_cast<std::uint32_t>(size);
        }
        pf = slot.get();
        std::size_t aged = 0;
        while (!pf->ready.empty() && now - pf->ready.front().second > prefetch_max_age()) {
            pf->ready.pop_front();
            ++aged;
        }
        if (aged) {
            keys_burned += aged;
            pf->target = std::max<std::size_t>(8, pf->target / 2);
        }
        if (pf->ready.size() >= static_cast<std::size_t>(number)) {
            for (std::int64_t i = 0; i < number; ++i) {
                out.push_back(pf->ready.front().first);
                pf->ready.pop_front();
            }
            got = true;
        } else if (!aged) {
            pf->target = std::min(pc->prefetch_keys, std::max(pf->target * 2, static_cast<std::size_t>(number) * 2));
        }
        if (!pf->refilling && now >= pf->retry_after && pf->ready.size() < pf->target / 2 + static_cast<std::size_t>(number)) {
            pf->refilling = true;
            start_refill = true;
        }
    }
    if (start_refill) refill(*pf);
    return got;
}

void KeyManager::refill(Prefetch& pf) {
    // Same steps as an ordinary Get key (material from the pool, offsets, high-water mark, peer
    // reservation), for a batch of keys nobody has asked for yet.
    Link* link = link_for_peer(pf.peer_kme);
    std::size_t n;
    {
        std::lock_guard lk(pf_mu_);
        n = pf.target > pf.ready.size() ? pf.target - pf.ready.size() : 0;
    }
    n = std::min<std::size_t>(n, kRefillBatch);
    auto stop = [this, &pf] {
        std::lock_guard lk(pf_mu_);
        pf.refilling = false;
    };
    if (n == 0 || !link->out->take(static_cast<double>(n) * pf.bits, clock_.now())) return stop();  // requests will report the shortage
    std::vector<Op> ops;
    std::uint64_t new_mark = 0;
    std::vector<SyncKey> keys = allocate(*link, n, pf.bits, ops, new_mark);
    keys_prefetched += n;
    const std::int64_t expires = now_unix() + cfg_.reservation_ttl.count();
    const auto made = clock_.now();  // the age of a stocked key counts from here, round trip included
    auto reserved = [this, &pf, keys, made](std::string err) {
        std::lock_guard lk(pf_mu_);
        pf.refilling = false;
        if (!err.empty()) {
            // Requests take the ordinary path (and report the failure) until the peer answers again.
            keys_burned += keys.size();
            ++sync_failures;
            pf.target = 8;
            pf.retry_after = clock_.now() + std::chrono::seconds(1);
            spdlog::warn("peer KME {} did not confirm {} prefetched key reservations: {}; material burned", pf.peer_kme, keys.size(), err);
            return;
        }
        for (const auto& k : keys) pf.ready.emplace_back(k, made);
    };
    auto after_commit = [this, link, keys, expires, &pf, reserved, new_mark](bool ok) {
        if (!ok) {
            keys_burned += keys.size();
            std::lock_guard lk(pf_mu_);
            pf.refilling = false;
            return;
        }
        mark_durable(*link, new_mark);
        SyncRequest sr{cfg_.kme_id, link->out->label(), pf.master, pf.slaves, expires, keys, material_of(*link->out, keys)};
        peer_clients_.at(pf.peer_kme)->reserve(std::move(sr), reserved);
    };
    if (ops.empty()) after_commit(true);
    else store_.commit(std::move(ops), after_commit);
}

std::size_t KeyManager::prefetched_ready(const std::string& master, const std::string& slave) {
    std::lock_guard lk(pf_mu_);
    auto it = prefetch_.find(combo_key(master, {slave}, cfg_.limits.default_key_size));
    if (it == prefetch_.end()) return 0;
    const auto now = clock_.now();
    std::size_t n = 0;
    for (const auto& [k, at] : it->second->ready)
        if (now - at <= prefetch_max_age()) ++n;
    return n;
}

void KeyManager::get_key_with_ids(const std::string& caller, const std::string& master, const etsi014::KeyIds& ids, KeysCallback done) {
    if (!is_local_sae(caller)) return done(Err{unauthorized()});
    if (static_cast<std::int64_t>(ids.key_IDs.size()) > cfg_.limits.max_key_per_request)
        return done(Err{bad(fmt::format("{} key_IDs requested; max_key_per_request is {}", ids.key_IDs.size(), cfg_.limits.max_key_per_request))});
    const std::int64_t now = now_unix();
    std::vector<Op> ops;
    struct Out {
        const KeyMaterial* stream;
        SyncKey key;
        std::string id_text;
    };
    std::vector<Out> out;
    std::vector<Reservation> taken;  // as they were, to give a key back to the caller if the commit fails
    std::unique_lock lk(res_mu_);  // until the commit is queued (below)
    {
        std::vector<etsi014::Extension> missing;
        bool unauthorised = false;
        std::vector<Uuid> parsed;
        std::set<Uuid> seen;
        for (const auto& e : ids.key_IDs) {
            auto u = uuid_parse(e.key_ID);
            auto it = u ? reservations_.find(*u) : reservations_.end();
            if (!u || it == reservations_.end() || it->second.master_SAE_ID != master || it->second.expires_unix < now ||
                !seen.insert(*u).second) {
                missing.push_back({"key_ID_not_found", e.key_ID.substr(0, 64)});
                continue;
            }
            const auto& r = it->second;
            if (std::find(r.pending_slaves.begin(), r.pending_slaves.end(), caller) == r.pending_slaves.end()) {
                // Authorised slaves that already fetched it find it gone; anyone else is refused.
                if (std::find(r.slaves.begin(), r.slaves.end(), caller) != r.slaves.end())
                    missing.push_back({"key_ID_not_found", e.key_ID});
                else
                    unauthorised = true;
                continue;
            }
            parsed.push_back(*u);
        }
        if (!missing.empty() || unauthorised) {
            lk.unlock();
            if (!missing.empty()) return done(Err{bad(std::string(msg::kKeysNotFound), std::move(missing))});
            return done(Err{unauthorized()});
        }
        // All-or-nothing: every key checked, now consume them for this caller.
        for (std::size_t i = 0; i < parsed.size(); ++i) {
            auto it = reservations_.find(parsed[i]);
            auto& r = it->second;
            const KeyMaterial* stream = nullptr;
            if (auto li = links_.find(r.stream); li != links_.end()) stream = li->second->out.get();
            else if (auto si = in_streams_.find(r.stream); si != in_streams_.end()) stream = si->second.get();
            if (!stream) {  // rows are only created for streams we hold
                std::fputs("qkd-kme: reservation for an unknown key stream\n", stderr);
                std::abort();
            }
            out.push_back({stream, SyncKey{r.key_ID, r.offset, r.bits}, ids.key_IDs[i].key_ID});
            taken.push_back(r);
            std::erase(r.pending_slaves, caller);
            if (r.pending_slaves.empty()) {
                ops.push_back(op::DeleteReservation{r.stream, r.offset});
                reservations_.erase(it);
            } else {
                ops.push_back(op::SetPending{r.stream, r.offset, r.pending_slaves});
            }
        }
    }
    // The deletion is durable before the key leaves: a crash can lose an answer, never repeat one.
    // Queued while res_mu_ is held: two deliveries of one multicast key write their pending lists
    // in the order they built them (the other order would restore a delivered slave at restart).
    store_.commit(std::move(ops), [this, out = std::move(out), taken = std::move(taken), caller, done](bool ok) {
        // Gives the keys back to the caller (and only the caller: other slaves' deliveries since
        // then stand). `rewrite`: the deletion is on disk, so the rows are written again.
        auto give_back = [&](bool rewrite) {
            std::vector<Op> redo;
            std::lock_guard relock(res_mu_);
            for (const auto& r : taken) {
                auto it = reservations_.find(r.key_ID);
                if (it == reservations_.end()) {
                    Reservation back = r;
                    back.pending_slaves = {caller};
                    if (rewrite) redo.push_back(op::PutReservation{back});
                    reservations_.emplace(back.key_ID, std::move(back));
                } else if (std::find(it->second.pending_slaves.begin(), it->second.pending_slaves.end(), caller) == it->second.pending_slaves.end()) {
                    it->second.pending_slaves.push_back(caller);
                    if (rewrite) redo.push_back(op::SetPending{r.stream, r.offset, it->second.pending_slaves});
                }
            }
            // Queued under res_mu_, like every write of these rows: in order with later deliveries.
            if (!redo.empty()) store_.commit(std::move(redo), nullptr);
        };
        if (!ok) {
            give_back(false);  // nothing changed on disk
            return done(Err{server(std::string(msg::kKeyDataAccess))});
        }
        etsi014::KeyContainer c;
        try {
            for (const auto& o : out)
                c.keys.push_back(etsi014::Key{o.id_text, o.stream->read(o.key.offset, o.key.bits / 8), std::nullopt, std::nullopt});
        } catch (const std::runtime_error& e) {
            // The material could not be read (a key file vanished, an I/O error): not delivered,
            // so still the caller's, and fetched again once the cause is gone.
            c.keys.clear();
            spdlog::error("{}: {}", cfg_.kme_id, e.what());
            give_back(true);
            return done(Err{server(std::string(e.what()) + "; the keys stay reserved for a later request")});
        }
        keys_delivered_slave += out.size();
        done(std::move(c));
    });
}

void KeyManager::peer_reserve(const std::string& peer_kme_id, const SyncRequest& req, std::function<void(ApiResult<int>)> done) {
    if (!is_peer_kme(peer_kme_id) || req.master_kme_id != peer_kme_id) return done(Err{unauthorized()});
    const auto in_label = label(peer_kme_id, cfg_.kme_id);
    if (req.stream != in_label) return done(Err{bad(fmt::format("stream \"{}\" is not the link {}", req.stream, in_label))});
    if (req.keys.empty() || req.keys.size() > 4096) return done(Err{bad("a reservation carries 1 to 4096 keys")});
    if (req.slaves.empty()) return done(Err{bad("a reservation names at least one slave SAE")});
    if (req.expires_unix < now_unix())
        return done(Err{bad(fmt::format("the reservation expired {} s ago (clocks of the two KMEs apart, or a slow link?)", now_unix() - req.expires_unix))});
    for (const auto& s : req.slaves)
        if (!is_local_sae(s)) return done(Err{bad(fmt::format("slave SAE ID \"{}\" is not attached to {}", s, cfg_.kme_id))});
    // A key-file link deletes used files on this KME's own clock: reservation_ttl + sync_timeout +
    // kKeyFileSlack after the peer passed them. A reservation meant to live longer could outlive
    // its file, so the two ends must agree on reservation_ttl.
    if (const auto* pc = peers_.at(peer_kme_id); !pc->link.key_dir.empty()) {
        const auto longest = cfg_.reservation_ttl + std::chrono::duration_cast<std::chrono::seconds>(kKeyFileSlack);
        if (req.expires_unix - now_unix() > longest.count())
            return done(Err{bad(fmt::format("the reservation expires in {} s, but {} keeps the key files of link {} for reservations of at most "
                                            "reservation_ttl = {} s (+{} s for clocks apart): give both KMEs the same reservation_ttl",
                                            req.expires_unix - now_unix(), cfg_.kme_id, in_label, cfg_.reservation_ttl.count(),
                                            std::chrono::duration_cast<std::chrono::seconds>(kKeyFileSlack).count()))});
    }
    // The material must be here before a slave is promised it (a key-file link whose device has not
    // delivered, or whose file is gone): refused, and the master burns the keys.
    if (const auto* pc = peers_.at(peer_kme_id); !pc->link.key_dir.empty() && pc->link.key_dir_direction == KeyDirDirection::Outgoing)
        return done(Err{server(fmt::format("link {} carries no keys: key_dir_direction = \"outgoing\" on {} gives all key material of its "
                                           "key files to {}->{} (the peer KME must say \"incoming\", or both \"both\")",
                                           in_label, cfg_.kme_id, cfg_.kme_id, peer_kme_id))});
    KeyMaterial& in = *in_streams_.at(in_label);
    std::uint64_t reserved_end = 0;
    for (const auto& k : req.keys) {
        if (k.bits == 0 || k.bits % 8 != 0 || k.bits > 65536) return done(Err{bad("key bits must be a positive multiple of 8")});
        if (k.offset > std::numeric_limits<std::uint64_t>::max() - k.bits / 8)
            return done(Err{bad(fmt::format("offset {} is out of range", k.offset))});
        if (!in.has(k.offset, k.bits / 8))
            return done(Err{server(fmt::format("key material of stream {} at bytes {}..{} is not (yet) in key_dir on {}", in_label, k.offset,
                                               k.offset + k.bits / 8, cfg_.kme_id))});
        reserved_end = std::max(reserved_end, k.offset + k.bits / 8);
    }
    // Both ends must hold the same material for these offsets, or the slave would get other bytes
    // than its master: refused (503), and the master burns the keys.
    if (auto mine = material_of(in, req.keys); mine != req.material) {
        auto [lo, hi] = key_range(req.keys);
        auto show = [](const std::string& s) { return s.empty() ? std::string("(none)") : "\"" + s + "\""; };
        spdlog::error("{}: the two ends of link {} do not hold the same key material at bytes {}..{}: {} has {}, {} has {}", cfg_.kme_id,
                      in_label, lo, hi, peer_kme_id, show(req.material), cfg_.kme_id, show(mine));
        return done(Err{server(fmt::format("the two ends of link {} do not hold the same key material at bytes {}..{}: {} has {}, {} has {} "
                                           "(different link_seed_file, key_dir folders whose files differ, or key_dir_direction not \"outgoing\" on "
                                           "one end and \"incoming\" on the other; compare the key-file index files)",
                                           in_label, lo, hi, peer_kme_id, show(req.material), cfg_.kme_id, show(mine)))});
    }
    std::vector<Op> ops;
    std::set<Uuid> ids;
    {
        std::lock_guard lk(res_mu_);
        std::set<std::uint64_t> offsets;
        for (const auto& k : req.keys) {
            if (k.bits == 0 || k.bits % 8 != 0 || k.bits > 65536) return done(Err{bad("key bits must be a positive multiple of 8")});
            if (reservations_.count(k.key_ID) || !ids.insert(k.key_ID).second)
                return done(Err{bad(fmt::format("key_ID {} is already reserved", uuid_format(k.key_ID)))});
            if (!offsets.insert(k.offset).second) return done(Err{bad(fmt::format("offset {} appears twice in the reservation", k.offset))});
        }
        for (const auto& k : req.keys) {
            Reservation r{k.key_ID, req.stream, k.offset, k.bits, req.master_SAE_ID, req.slaves, req.slaves, req.expires_unix};
            ops.push_back(op::PutReservation{r});
            reservations_.emplace(k.key_ID, std::move(r));
        }
    }
    // A refused commit (an offset of this stream reserved before, under another key ID) must not
    // leave the entries in memory: their deletion would address the other reservation's row.
    std::vector<Uuid> added(ids.begin(), ids.end());
    store_.commit(std::move(ops), [this, done, added = std::move(added), in = &in, reserved_end](bool ok) {
        if (!ok) {
            {
                std::lock_guard lk(res_mu_);
                for (const auto& id : added) reservations_.erase(id);
            }
            return done(Err{server(std::string(msg::kKeyDataAccess))});
        }
        in->reserved_below(reserved_end, clock_.now());
        done(0);
    });
}

std::size_t KeyManager::expire_reservations() {
    for (auto& [l, link] : links_) link->out->maintain(clock_.now());  // the source's housekeeping (key files: rescan, wipe used ones)
    const std::int64_t now = now_unix();
    std::vector<Op> ops;
    {
        std::lock_guard lk(res_mu_);
        for (auto it = reservations_.begin(); it != reservations_.end();) {
            if (it->second.expires_unix < now) {
                ops.push_back(op::DeleteReservation{it->second.stream, it->second.offset});
                it = reservations_.erase(it);
            } else {
                ++it;
            }
        }
    }
    const auto n = ops.size();
    if (n) {
        reservations_expired += n;
        store_.commit(std::move(ops), nullptr);
    }
    return n;
}

std::vector<PoolLevel> KeyManager::pool_levels() {
    std::vector<PoolLevel> out;
    const auto now = clock_.now();
    for (auto& [l, link] : links_) {
        std::lock_guard lk(link->mu);
        out.push_back({l, link->out->available(now), link->next_offset, link->out->in_outage(now), link->out->key_files()});
    }
    return out;
}

std::size_t KeyManager::reservation_count() {
    std::lock_guard lk(res_mu_);
    return reservations_.size();
}

}  // namespace qkd::kme
