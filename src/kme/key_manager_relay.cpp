#include "key_manager_parts.hpp"

// KeyManager (key_manager_parts.hpp): trusted-node relay (issue 17; docs/kme.md "Relay").
//
// A master's KME takes a key from its link to the next hop and reserves it there as on a direct
// link. A KME that receives a reservation for slaves behind another of its peers (a [[route]] on
// the master's side, a [[peer]] or [[route]] here) is a trusted relay: it reads the key from the
// incoming link (its bytes, XOR the mask the previous relay sent), takes as many bytes of its own
// link to the next hop (allocated, high-water mark durable first, as for its own masters), and
// sends the same key IDs on with mask = key XOR next-link bytes: a one-time pad, so the key is in
// clear only inside the KMEs. The last KME stores the reservation with its mask and its Get key
// with key IDs takes the pad off. Each hop answers only once the rest of the path has answered;
// any hop down, slow or out of material fails the whole reservation with a 503 that names the
// hop, and the master's KME burns its keys. Material of every hop is allocated once and never
// handed out again (its offsets are below that link's durable mark).

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "qkd/kme/sync_codec.hpp"

namespace qkd::kme {

void KeyManager::relay(const std::string& from, const SyncRequest& req, std::vector<std::string> local, std::vector<std::string> remote,
                       std::string next, std::function<void(ApiResult<int>)> done) {
    const std::string hop = label(cfg_.kme_id, next);
    auto fail = [this, &done](ApiError e) {
        ++relay_failures;
        spdlog::warn("{}: relay refused: {}", cfg_.kme_id, e.message);
        done(Err{std::move(e)});
    };
    // A loop across the KMEs' [[route]] tables (each file alone can be right) ends here.
    std::vector<std::string> path = req.path;
    path.push_back(from);
    if (std::find(path.begin(), path.end(), cfg_.kme_id) != path.end() || std::find(path.begin(), path.end(), next) != path.end() ||
        path.size() + 1 > kMaxRelayHops) {
        std::string route;
        for (const auto& k : path) route += k + " -> ";
        return fail(server(fmt::format("relay {}: the route {}{} -> {} loops or is longer than {} KMEs (check the [[route]] tables)",
                                       cfg_.kme_id, route, cfg_.kme_id, next, kMaxRelayHops)));
    }
    const std::uint32_t bits = req.keys.front().bits;
    for (const auto& k : req.keys)
        if (k.bits != bits) return fail(bad("a relayed reservation carries keys of one size"));
    Link* link = link_for_peer(next);
    const std::string in_label = label(from, cfg_.kme_id);
    KeyMaterial& in = *in_streams_.at(in_label);
    // The keys in clear, inside this trusted node only (wiped when the last callback is done).
    auto keys = std::make_shared<std::vector<SecretBytes>>();
    std::uint64_t reserved_end = 0;
    try {
        for (std::size_t i = 0; i < req.keys.size(); ++i) {
            keys->push_back(in.read(req.keys[i].offset, bits / 8));
            if (!req.masks.empty()) unmask(keys->back(), req.masks[i]);
            reserved_end = std::max(reserved_end, req.keys[i].offset + bits / 8);
        }
    } catch (const std::runtime_error& e) {
        return fail(server(fmt::format("relay {}: {}", cfg_.kme_id, e.what())));
    }
    const double need = static_cast<double>(req.keys.size()) * bits;
    if (!link->out->take(need, clock_.now())) {
        const auto origin = link->out->origin();
        return fail(server(fmt::format("relay {}: not enough key material on hop {}: {} bits needed, {:.0f} available{}", cfg_.kme_id, hop,
                                       need, link->out->available(clock_.now()), origin.empty() ? "" : " (" + origin + ")")));
    }
    std::vector<Op> ops;
    std::uint64_t new_mark = 0;
    std::vector<SyncKey> out = allocate(*link, req.keys.size(), bits, ops, new_mark);
    for (std::size_t i = 0; i < out.size(); ++i) out[i].key_ID = req.keys[i].key_ID;  // one key, one ID end to end
    // Slaves of this KME on the way get their reservations here, in the same commit.
    std::vector<Uuid> added;
    if (!local.empty()) {
        std::lock_guard lk(res_mu_);
        for (const auto& k : req.keys)
            if (reservations_.count(k.key_ID)) return fail(bad(fmt::format("key_ID {} is already reserved", uuid_format(k.key_ID))));
        for (std::size_t i = 0; i < req.keys.size(); ++i) {
            const auto& k = req.keys[i];
            Reservation r{k.key_ID, in_label, k.offset, bits, req.master_SAE_ID, local, local, req.expires_unix,
                          req.masks.empty() ? std::vector<std::uint8_t>{} : req.masks[i]};
            ops.push_back(op::PutReservation{r});
            reservations_.emplace(k.key_ID, std::move(r));
            added.push_back(k.key_ID);
        }
    }
    auto undo = [this, added, in_label](const std::vector<SyncKey>& ks) {
        if (added.empty()) return;
        std::vector<Op> del;
        {
            std::lock_guard lk(res_mu_);
            for (const auto& k : ks)
                if (reservations_.erase(k.key_ID)) del.push_back(op::DeleteReservation{in_label, k.offset});
        }
        if (!del.empty()) store_.commit(std::move(del), nullptr);
    };
    auto after_commit = [this, link, out, keys, req_keys = req.keys, master = req.master_SAE_ID, expires = req.expires_unix, remote, path,
                         next, hop, new_mark, undo, done, in = &in, reserved_end](bool ok) {
        auto failed = [&](std::string m) {
            ++relay_failures;
            keys_burned += out.size();
            undo(req_keys);
            spdlog::warn("{}: relay failed: {}", cfg_.kme_id, m);
            done(Err{server(std::move(m))});
        };
        if (!ok) return failed(fmt::format("relay {}: {}", cfg_.kme_id, msg::kKeyDataAccess));
        mark_durable(*link, new_mark);
        SyncRequest fwd{cfg_.kme_id, link->out->label(), master, remote, expires, out, material_of(*link->out, out), path, {}};
        try {
            for (std::size_t i = 0; i < out.size(); ++i) {
                SecretBytes pad = link->out->read(out[i].offset, out[i].bits / 8);
                std::vector<std::uint8_t> m((*keys)[i].view().begin(), (*keys)[i].view().end());
                for (std::size_t j = 0; j < m.size(); ++j) m[j] ^= pad.view()[j];
                fwd.masks.push_back(std::move(m));
            }
        } catch (const std::runtime_error& e) {
            return failed(fmt::format("relay {}: {}", cfg_.kme_id, e.what()));
        }
        keys->clear();  // wiped: the rest of the path has only the masks
        const std::size_t n = out.size();
        peer_clients_.at(next)->reserve(std::move(fwd), [this, n, hop, undo, req_keys, done, in, reserved_end](std::string e) {
            if (!e.empty()) {
                ++relay_failures;
                ++sync_failures;
                keys_burned += n;
                undo(req_keys);
                spdlog::warn("{}: hop {} did not confirm a relayed reservation: {}; material burned", cfg_.kme_id, hop, e);
                return done(Err{server(fmt::format("relay {}: hop {} did not confirm: {}", cfg_.kme_id, hop, e))});
            }
            keys_relayed += n;
            in->reserved_below(reserved_end, clock_.now());
            done(0);
        });
    };
    if (ops.empty()) after_commit(true);
    else store_.commit(std::move(ops), after_commit);
}

}  // namespace qkd::kme
