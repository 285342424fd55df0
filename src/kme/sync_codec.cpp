#include "qkd/kme/sync_codec.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace qkd::kme {

using nlohmann::json;

std::string encode_sync_batch(const std::vector<SyncRequest>& batch) {
    json a = json::array();
    for (const auto& r : batch) {
        json keys = json::array();
        for (const auto& k : r.keys) keys.push_back(json::array({uuid_format(k.key_ID), k.offset, k.bits}));
        a.push_back({{"master_kme_id", r.master_kme_id}, {"stream", r.stream}, {"master_SAE_ID", r.master_SAE_ID},
                     {"slaves", r.slaves}, {"expires", r.expires_unix}, {"keys", std::move(keys)}});
    }
    return json{{"reservations", std::move(a)}}.dump();
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
            const auto& keys = e.at("keys");
            if (!keys.is_array() || keys.size() > 4096) return Err{std::string("'keys' must be an array of at most 4096 entries")};
            for (const auto& k : keys) {
                if (!k.is_array() || k.size() != 3) return Err{std::string("each key must be [key_ID, offset, bits]")};
                auto id = uuid_parse(k[0].get<std::string>());
                if (!id) return Err{fmt::format("key_ID {} is not a UUID", k[0].dump())};
                r.keys.push_back(SyncKey{*id, k[1].get<std::uint64_t>(), k[2].get<std::uint32_t>()});
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
