#include "key_manager_parts.hpp"

// KeyManager (key_manager_parts.hpp): Get key with key IDs, reservations from the peer KME, expiry.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <set>
#include <stdexcept>

#include "qkd/etsi014/codec.hpp"
#include "qkd/kme/key_files.hpp"

namespace qkd::kme {

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
        std::vector<std::uint8_t> mask;  // a relayed key: XORed onto the stream's bytes
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
            out.push_back({stream, SyncKey{r.key_ID, r.offset, r.bits}, ids.key_IDs[i].key_ID, r.mask});
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
            for (const auto& o : out) {
                SecretBytes k = o.stream->read(o.key.offset, o.key.bits / 8);
                if (!o.mask.empty()) unmask(k, o.mask);  // relayed: the one-time pad of the last link comes off
                c.keys.push_back(etsi014::Key{o.id_text, std::move(k), std::nullopt, std::nullopt});
            }
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
    // Slaves of this KME, and slaves behind one next hop (trusted-node relay).
    std::vector<std::string> local, remote;
    std::string next;
    for (const auto& s : req.slaves) {
        if (is_local_sae(s)) {
            local.push_back(s);
            continue;
        }
        const std::string* k = kme_of(s);
        const std::string hop = k ? hop_of(*k) : std::string();
        if (hop.empty()) return done(Err{bad(fmt::format("slave SAE ID \"{}\" is not attached to {} nor routed through it", s, cfg_.kme_id))});
        if (!next.empty() && hop != next)
            return done(Err{bad(fmt::format("slaves are reached from {} through two next hops ({} and {})", cfg_.kme_id, next, hop))});
        next = hop;
        remote.push_back(s);
    }
    if (!req.masks.empty() && req.masks.size() != req.keys.size()) return done(Err{bad("a relayed reservation carries one mask per key")});
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
    if (!remote.empty()) return relay(peer_kme_id, req, std::move(local), std::move(remote), std::move(next), std::move(done));
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
        for (std::size_t i = 0; i < req.keys.size(); ++i) {
            const auto& k = req.keys[i];
            Reservation r{k.key_ID, req.stream, k.offset, k.bits, req.master_SAE_ID, req.slaves, req.slaves, req.expires_unix,
                          req.masks.empty() ? std::vector<std::uint8_t>{} : req.masks[i]};
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
    prune_all_stock();  // aged stock leaves the device buffer's count
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

}  // namespace qkd::kme
