#include "qkd/kme/key_manager.hpp"

// KeyManager: set-up, Get status, Get key, and the pool levels (key_manager_parts.hpp for the parts).
#include "key_manager_parts.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>

#include "qkd/common/rng.hpp"
#include "qkd/etsi014/codec.hpp"
#include "qkd/kme/key_files.hpp"
#include "qkd/kme/key_stream.hpp"  // read_seed_file

namespace qkd::kme {

std::size_t KeyManager::UuidHash::operator()(const Uuid& u) const noexcept {
    std::size_t h;
    std::memcpy(&h, u.data(), sizeof h);  // random v4 bits
    return h;
}

KeyManager::KeyManager(const Config& cfg, StateStore& store, const Clock& clock, std::map<std::string, std::shared_ptr<PeerClient>> peers,
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
    for (const auto& r : cfg.routes) {
        if (!peers_.count(r.via)) throw std::invalid_argument("route to " + r.kme_id + " via " + r.via + ", which is not a peer");
        next_hop_[r.kme_id] = r.via;
        for (const auto& s : r.saes) sae_kme_[s] = r.kme_id;
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

std::string KeyManager::hop_of(const std::string& kme) const {
    if (peers_.count(kme)) return kme;
    auto it = next_hop_.find(kme);
    return it == next_hop_.end() ? std::string() : it->second;
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
    // A routed slave: the first hop's link is the one this KME's keys come from.
    Link* link = link_for_peer(*slave_kme == cfg_.kme_id ? cfg_.kme_id : hop_of(*slave_kme));
    const auto& l = cfg_.limits;
    etsi014::Status s;
    s.source_KME_ID = cfg_.kme_id;
    s.target_KME_ID = *slave_kme;
    s.master_SAE_ID = caller;
    s.slave_SAE_ID = slave;
    s.key_size = l.default_key_size;
    // What can be handed out to this pair: the device buffer plus keys stocked for it (prefetch).
    // Stocked keys are held inside the buffer (KeySource::set_held), so the sum stays within
    // max_key_count; the bound below covers a refill racing this read. A key-file link has no
    // buffer of its own: when its folder holds more than max_key_count keys, max_key_count says
    // so instead, since hiding keys would make the count disagree with what can be handed out
    // (issue 17, item 5: a client's sanity check refuses stored_key_count > max_key_count).
    prune_all_stock();
    const auto buffered = static_cast<std::int64_t>(link->out->available(clock_.now()) / static_cast<double>(l.default_key_size));
    s.stored_key_count = buffered + static_cast<std::int64_t>(prefetched_ready(caller, slave));
    s.max_key_count = l.max_key_count;
    if (s.stored_key_count > s.max_key_count) {
        if (link->out->key_files() >= 0) s.max_key_count = s.stored_key_count;
        else s.stored_key_count = s.max_key_count;
    }
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
        // A peer's SAEs and SAEs routed through it share its link (relay: docs/kme.md "Relay").
        const std::string hop = hop_of(*k);
        if (!peer_kme.empty() && peer_kme != hop)
            return Err{bad(fmt::format("slaves are reached through two peer KMEs ({} and {}); multicast reaches SAEs of this KME and "
                                       "SAEs along one path through one peer KME", peer_kme, hop))};
        peer_kme = hop;
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
            Reservation r{k.key_ID, link->out->label(), k.offset, k.bits, caller, local_slaves, local_slaves, expires, {}};
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
        SyncRequest sr{cfg_.kme_id, link->out->label(), caller, remote_slaves, expires, keys, material_of(*link->out, keys), {}, {}};
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
