#include "qkd/kme/sync_codec.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "qkd/common/encoding.hpp"
#include "qkd/etsi014/codec.hpp"

namespace qkd::kme {

using nlohmann::json;

// Written by hand: a refill carries up to 64 keys, and building a JSON document per key cost
// more than the rest of the master's Get key (measured with callgrind).
std::string encode_sync_batch(const std::vector<SyncRequest>& batch) {
    std::string out = R"({"reservations":[)";
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto& r = batch[i];
        if (i) out += ',';
        out += R"({"master_kme_id":)";
        etsi014::append_json_string(out, r.master_kme_id);
        out += R"(,"stream":)";
        etsi014::append_json_string(out, r.stream);
        out += R"(,"master_SAE_ID":)";
        etsi014::append_json_string(out, r.master_SAE_ID);
        out += R"(,"slaves":[)";
        for (std::size_t j = 0; j < r.slaves.size(); ++j) {
            if (j) out += ',';
            etsi014::append_json_string(out, r.slaves[j]);
        }
        out += fmt::format(R"(],"expires":{},)", r.expires_unix);
        if (!r.material.empty()) {
            out += R"("material":)";
            etsi014::append_json_string(out, r.material);
            out += ',';
        }
        if (!r.path.empty()) {
            out += R"("path":[)";
            for (std::size_t j = 0; j < r.path.size(); ++j) {
                if (j) out += ',';
                etsi014::append_json_string(out, r.path[j]);
            }
            out += "],";
        }
        out += R"("keys":[)";
        for (std::size_t j = 0; j < r.keys.size(); ++j) {
            const auto& k = r.keys[j];
            if (r.masks.empty()) {
                out += fmt::format(R"({}["{}",{},{}])", j ? "," : "", uuid_format(k.key_ID), k.offset, k.bits);
            } else {  // a relayed key: its one-time-pad ciphertext as a fourth element
                out += fmt::format(R"({}["{}",{},{},"{}"])", j ? "," : "", uuid_format(k.key_ID), k.offset, k.bits, base64_encode(r.masks[j]));
            }
        }
        out += "]}";
    }
    out += "]}";
    return out;
}

qkd::Result<std::vector<SyncRequest>, std::string> decode_sync_batch(std::string_view body) {
    json j = json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Err{std::string("reservation batch is not a JSON object")};
    auto it = j.find("reservations");
    if (it == j.end() || !it->is_array() || it->empty() || it->size() > kMaxSyncBatch)
        return Err{fmt::format("'reservations' must be an array of 1 to {} entries", kMaxSyncBatch)};
    std::vector<SyncRequest> out;
    for (const auto& e : *it) {
        SyncRequest r;
        try {
            r.master_kme_id = e.at("master_kme_id").get<std::string>();
            r.stream = e.at("stream").get<std::string>();
            r.master_SAE_ID = e.at("master_SAE_ID").get<std::string>();
            r.slaves = e.at("slaves").get<std::vector<std::string>>();
            r.expires_unix = e.at("expires").get<std::int64_t>();
            if (auto m = e.find("material"); m != e.end()) {
                r.material = m->get<std::string>();
                if (r.material.empty() || r.material.size() > kMaxMaterialText)
                    return Err{fmt::format("'material' must be 1 to {} characters", kMaxMaterialText)};
            }
            if (auto p = e.find("path"); p != e.end()) {
                r.path = p->get<std::vector<std::string>>();
                if (r.path.size() > kMaxRelayHops) return Err{fmt::format("'path' lists at most {} KMEs", kMaxRelayHops)};
            }
            const auto& keys = e.at("keys");
            if (!keys.is_array() || keys.size() > 4096) return Err{std::string("'keys' must be an array of at most 4096 entries")};
            const bool masked = !keys.empty() && keys[0].is_array() && keys[0].size() == 4;
            for (const auto& k : keys) {
                if (!k.is_array() || k.size() != (masked ? 4u : 3u))
                    return Err{std::string("each key must be [key_ID, offset, bits] or, relayed, [key_ID, offset, bits, mask] (all alike)")};
                auto id = uuid_parse(k[0].get<std::string>());
                if (!id) return Err{fmt::format("key_ID {} is not a UUID", k[0].dump())};
                r.keys.push_back(SyncKey{*id, k[1].get<std::uint64_t>(), k[2].get<std::uint32_t>()});
                if (masked) {
                    auto m = base64_decode(k[3].get<std::string>());
                    if (!m || m->size() != r.keys.back().bits / 8)
                        return Err{fmt::format("the mask of key {} must be Base64 of bits / 8 bytes", k[0].dump())};
                    r.masks.push_back(std::move(*m));
                }
            }
        } catch (const json::exception& ex) {  // type errors of a peer's message, at the boundary only
            return Err{fmt::format("malformed reservation: {}", ex.what())};
        }
        out.push_back(std::move(r));
    }
    return out;
}

std::string encode_sync_results(const std::vector<std::string>& results) { return json{{"results", results}}.dump(); }

qkd::Result<std::vector<std::string>, std::string> decode_sync_results(std::string_view body, std::size_t expected) {
    json j = json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Err{std::string("peer answer is not a JSON object")};
    auto it = j.find("results");
    if (it == j.end() || !it->is_array() || it->size() != expected)
        return Err{fmt::format("peer answer must carry 'results' with {} entries", expected)};
    std::vector<std::string> out;
    for (const auto& e : *it) {
        if (!e.is_string()) return Err{std::string("peer 'results' entries must be strings")};
        out.push_back(e.get<std::string>());
    }
    return out;
}

}  // namespace qkd::kme
