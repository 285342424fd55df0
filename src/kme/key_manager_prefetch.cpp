#include "key_manager_parts.hpp"

// KeyManager (key_manager_parts.hpp): the stock of keys reserved ahead on the peer KME (prefetch_keys).

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

namespace qkd::kme {

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
        const std::size_t aged = prune_aged_locked(*pf, now);
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
        if (got || aged) sync_held_locked(peer_kme);
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
        n = std::min<std::size_t>(pf.target > pf.ready.size() ? pf.target - pf.ready.size() : 0, kRefillBatch);
    }
    auto stop = [this, &pf] {  // the batch is over: its keys are ready, burned, or were never taken
        std::lock_guard lk(pf_mu_);
        pf.refilling = false;
        pf.in_flight = 0;
        sync_held_locked(pf.peer_kme);
    };
    if (n == 0 || !link->out->take(static_cast<double>(n) * pf.bits, clock_.now())) return stop();  // requests will report the shortage
    {
        // Held from the take on: the buffer counts the batch until its keys are handed out or burned.
        // (Set before the take, a full pool would shed the bits once for the hold and once more
        // for the take.)
        std::lock_guard lk(pf_mu_);
        pf.in_flight = n;
        sync_held_locked(pf.peer_kme);
    }
    std::vector<Op> ops;
    std::uint64_t new_mark = 0;
    std::vector<SyncKey> keys = allocate(*link, n, pf.bits, ops, new_mark);
    keys_prefetched += n;
    const std::int64_t expires = now_unix() + cfg_.reservation_ttl.count();
    const auto made = clock_.now();  // the age of a stocked key counts from here, round trip included
    auto reserved = [this, &pf, keys, made](std::string err) {
        std::lock_guard lk(pf_mu_);
        pf.refilling = false;
        pf.in_flight = 0;
        if (err.empty())
            for (const auto& k : keys) pf.ready.emplace_back(k, made);
        sync_held_locked(pf.peer_kme);
        if (!err.empty()) {
            // Requests take the ordinary path (and report the failure) until the peer answers again.
            keys_burned += keys.size();
            ++sync_failures;
            pf.target = 8;
            pf.retry_after = clock_.now() + std::chrono::seconds(1);
            spdlog::warn("peer KME {} did not confirm {} prefetched key reservations: {}; material burned", pf.peer_kme, keys.size(), err);
        }
    };
    auto after_commit = [this, link, keys, expires, &pf, reserved, new_mark, stop](bool ok) {
        if (!ok) {
            keys_burned += keys.size();
            return stop();
        }
        mark_durable(*link, new_mark);
        SyncRequest sr{cfg_.kme_id, link->out->label(), pf.master, pf.slaves, expires, keys, material_of(*link->out, keys), {}, {}};
        peer_clients_.at(pf.peer_kme)->reserve(std::move(sr), reserved);
    };
    if (ops.empty()) after_commit(true);
    else store_.commit(std::move(ops), after_commit);
}

std::size_t KeyManager::prune_aged_locked(Prefetch& pf, std::chrono::steady_clock::time_point now) {
    std::size_t aged = 0;
    while (!pf.ready.empty() && now - pf.ready.front().second > prefetch_max_age()) {
        pf.ready.pop_front();
        ++aged;
    }
    if (aged) {
        keys_burned += aged;
        pf.target = std::max<std::size_t>(8, pf.target / 2);
    }
    return aged;
}

void KeyManager::sync_held_locked(const std::string& peer_kme) {
    Link* link = link_for_peer(peer_kme);
    if (!link) return;
    double bits = 0;
    for (const auto& [k, pf] : prefetch_)
        if (pf->peer_kme == peer_kme) bits += static_cast<double>(pf->ready.size() + pf->in_flight) * pf->bits;
    link->out->set_held(bits);
}

void KeyManager::prune_all_stock() {
    std::lock_guard lk(pf_mu_);
    const auto now = clock_.now();
    std::set<std::string> touched;
    for (auto& [k, pf] : prefetch_)
        if (prune_aged_locked(*pf, now)) touched.insert(pf->peer_kme);
    for (const auto& p : touched) sync_held_locked(p);
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

}  // namespace qkd::kme
