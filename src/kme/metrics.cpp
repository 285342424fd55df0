#include "qkd/kme/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "qkd/kme/key_manager.hpp"

namespace qkd::kme {
namespace {
constexpr const char* kEndpointNames[] = {"status", "enc_keys", "dec_keys", "kme_reserve", "other"};
}

void Metrics::record(Endpoint e, int http_status, std::chrono::nanoseconds latency) {
    const int ei = static_cast<int>(e);
    std::size_t si = kStatuses.size() - 1;
    for (std::size_t i = 0; i + 1 < kStatuses.size(); ++i)
        if (kStatuses[i] == http_status) si = i;
    requests_[ei][si].fetch_add(1, std::memory_order_relaxed);
    const double s = std::chrono::duration<double>(latency).count();
    std::size_t b = kBucketsSeconds.size();
    for (std::size_t i = 0; i < kBucketsSeconds.size(); ++i)
        if (s <= kBucketsSeconds[i]) {
            b = i;
            break;
        }
    buckets_[ei][b].fetch_add(1, std::memory_order_relaxed);
    latency_sum_ns_[ei].fetch_add(static_cast<std::uint64_t>(latency.count()), std::memory_order_relaxed);
}

std::string Metrics::render(KeyManager& km) const {
    std::string o;
    const auto& id = km.config().kme_id;
    o += "# HELP qkd_kme_keys_served_total Keys delivered, by role of the receiving SAE.\n# TYPE qkd_kme_keys_served_total counter\n";
    o += fmt::format("qkd_kme_keys_served_total{{kme=\"{}\",role=\"master\"}} {}\n", id, km.keys_delivered_master.load());
    o += fmt::format("qkd_kme_keys_served_total{{kme=\"{}\",role=\"slave\"}} {}\n", id, km.keys_delivered_slave.load());
    o += "# HELP qkd_kme_keys_burned_total Keys whose material was discarded (a failed reservation, or a prefetched key that aged out).\n"
         "# TYPE qkd_kme_keys_burned_total counter\n";
    o += fmt::format("qkd_kme_keys_burned_total{{kme=\"{}\"}} {}\n", id, km.keys_burned.load());
    o += "# HELP qkd_kme_keys_prefetched_total Keys reserved on a peer KME ahead of requests (prefetch_keys).\n"
         "# TYPE qkd_kme_keys_prefetched_total counter\n";
    o += fmt::format("qkd_kme_keys_prefetched_total{{kme=\"{}\"}} {}\n", id, km.keys_prefetched.load());
    o += "# HELP qkd_kme_keys_served_from_prefetch_total Master keys answered from prefetched reservations.\n"
         "# TYPE qkd_kme_keys_served_from_prefetch_total counter\n";
    o += fmt::format("qkd_kme_keys_served_from_prefetch_total{{kme=\"{}\"}} {}\n", id, km.keys_from_prefetch.load());
    o += "# HELP qkd_kme_keys_relayed_total Keys this KME forwarded to a next hop as a trusted relay (one-time pad with that link's material).\n"
         "# TYPE qkd_kme_keys_relayed_total counter\n";
    o += fmt::format("qkd_kme_keys_relayed_total{{kme=\"{}\"}} {}\n", id, km.keys_relayed.load());
    o += "# HELP qkd_kme_relay_failures_total Relayed reservations refused or failed here (hop down, slow, out of material, loop).\n"
         "# TYPE qkd_kme_relay_failures_total counter\n";
    o += fmt::format("qkd_kme_relay_failures_total{{kme=\"{}\"}} {}\n", id, km.relay_failures.load());
    o += "# HELP qkd_kme_sync_failures_total KME-to-KME reservations that failed or timed out.\n# TYPE qkd_kme_sync_failures_total counter\n";
    o += fmt::format("qkd_kme_sync_failures_total{{kme=\"{}\"}} {}\n", id, km.sync_failures.load());
    o += "# HELP qkd_kme_reservations_expired_total Unclaimed reservations dropped at expiry.\n"
         "# TYPE qkd_kme_reservations_expired_total counter\n";
    o += fmt::format("qkd_kme_reservations_expired_total{{kme=\"{}\"}} {}\n", id, km.reservations_expired.load());
    o += "# HELP qkd_kme_reservations Keys reserved and waiting for a slave.\n# TYPE qkd_kme_reservations gauge\n";
    o += fmt::format("qkd_kme_reservations{{kme=\"{}\"}} {}\n", id, km.reservation_count());
    o += "# HELP qkd_kme_db_commits_total State-database transactions committed (each a group of writes).\n"
         "# TYPE qkd_kme_db_commits_total counter\n";
    o += fmt::format("qkd_kme_db_commits_total{{kme=\"{}\"}} {}\n", id, km.db_commits());
    o += "# HELP qkd_kme_db_pages_written_total State-database pages appended to the write-ahead log by those commits.\n"
         "# TYPE qkd_kme_db_pages_written_total counter\n";
    o += fmt::format("qkd_kme_db_pages_written_total{{kme=\"{}\"}} {}\n", id, km.db_pages_written());
    o += "# HELP qkd_kme_db_synced_commits_total Commits fsynced before their requests were answered (state_sync = \"full\", or a moved high-water mark).\n"
         "# TYPE qkd_kme_db_synced_commits_total counter\n";
    o += fmt::format("qkd_kme_db_synced_commits_total{{kme=\"{}\"}} {}\n", id, km.db_synced_commits());
    o += "# HELP qkd_kme_db_wal_restarts_total Times commits waited a moment for a last checkpoint so that the write-ahead log could start again.\n"
         "# TYPE qkd_kme_db_wal_restarts_total counter\n";
    o += fmt::format("qkd_kme_db_wal_restarts_total{{kme=\"{}\"}} {}\n", id, km.db_wal_catch_ups());
    o += "# HELP qkd_kme_pool_bits Secret key material available, per link direction.\n# TYPE qkd_kme_pool_bits gauge\n";
    auto levels = km.pool_levels();
    for (const auto& l : levels) o += fmt::format("qkd_kme_pool_bits{{kme=\"{}\",direction=\"{}\"}} {:.0f}\n", id, l.stream, l.available_bits);
    o += "# HELP qkd_kme_pool_keys Keys of the default size available, per link direction.\n# TYPE qkd_kme_pool_keys gauge\n";
    for (const auto& l : levels)
        o += fmt::format("qkd_kme_pool_keys{{kme=\"{}\",direction=\"{}\"}} {}\n", id, l.stream,
                         static_cast<std::int64_t>(l.available_bits / static_cast<double>(km.config().limits.default_key_size)));
    o += "# HELP qkd_kme_stream_offset_bytes Next unused byte of each outgoing key stream: the link material this KME has consumed "
         "(for its masters and, as a relay, for keys it forwarded); it jumps to the durable mark after a restart.\n"
         "# TYPE qkd_kme_stream_offset_bytes gauge\n";
    for (const auto& l : levels) o += fmt::format("qkd_kme_stream_offset_bytes{{kme=\"{}\",direction=\"{}\"}} {}\n", id, l.stream, l.next_offset);
    o += "# HELP qkd_kme_link_up 0 while the emulated QKD link is in a scheduled outage.\n# TYPE qkd_kme_link_up gauge\n";
    for (const auto& l : levels) o += fmt::format("qkd_kme_link_up{{kme=\"{}\",direction=\"{}\"}} {}\n", id, l.stream, l.outage ? 0 : 1);
    if (std::any_of(levels.begin(), levels.end(), [](const PoolLevel& l) { return l.key_files >= 0; })) {
        o += "# HELP qkd_kme_key_files Key files indexed and not yet deleted, per key-file link (named by its outgoing direction).\n"
             "# TYPE qkd_kme_key_files gauge\n";
        for (const auto& l : levels)
            if (l.key_files >= 0) o += fmt::format("qkd_kme_key_files{{kme=\"{}\",link=\"{}\"}} {}\n", id, l.stream, l.key_files);
    }
    o += "# HELP qkd_kme_tls_handshakes_total TLS handshakes by result.\n# TYPE qkd_kme_tls_handshakes_total counter\n";
    o += fmt::format("qkd_kme_tls_handshakes_total{{kme=\"{}\",result=\"ok\"}} {}\n", id, handshakes_ok_.load());
    o += fmt::format("qkd_kme_tls_handshakes_total{{kme=\"{}\",result=\"failed\"}} {}\n", id, handshakes_failed_.load());
    o += "# HELP qkd_kme_requests_total HTTP requests by endpoint and status.\n# TYPE qkd_kme_requests_total counter\n";
    for (int e = 0; e < static_cast<int>(Endpoint::Count_); ++e)
        for (std::size_t s = 0; s < kStatuses.size(); ++s)
            if (auto v = requests_[e][s].load()) {
                std::string code = kStatuses[s] ? std::to_string(kStatuses[s]) : "other";
                o += fmt::format("qkd_kme_requests_total{{kme=\"{}\",endpoint=\"{}\",status=\"{}\"}} {}\n", id, kEndpointNames[e], code, v);
            }
    o += "# HELP qkd_kme_request_seconds Request latency from parsed request to response.\n# TYPE qkd_kme_request_seconds histogram\n";
    for (int e = 0; e < static_cast<int>(Endpoint::Count_); ++e) {
        std::uint64_t cum = 0;
        for (std::size_t b = 0; b <= kBucketsSeconds.size(); ++b) {
            cum += buckets_[e][b].load();
            std::string le = b < kBucketsSeconds.size() ? fmt::format("{}", kBucketsSeconds[b]) : "+Inf";
            o += fmt::format("qkd_kme_request_seconds_bucket{{kme=\"{}\",endpoint=\"{}\",le=\"{}\"}} {}\n", id, kEndpointNames[e], le, cum);
        }
        o += fmt::format("qkd_kme_request_seconds_sum{{kme=\"{}\",endpoint=\"{}\"}} {:.9f}\n", id, kEndpointNames[e],
                         static_cast<double>(latency_sum_ns_[e].load()) / 1e9);
        o += fmt::format("qkd_kme_request_seconds_count{{kme=\"{}\",endpoint=\"{}\"}} {}\n", id, kEndpointNames[e], cum);
    }
    return o;
}

}  // namespace qkd::kme
