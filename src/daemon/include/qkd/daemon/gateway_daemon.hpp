#pragma once
// The wiring of qkdgated: one io_context thread runs the IKE engine, its timer, the UDP sockets
// and the control socket; the data plane runs its own threads. Engine events install and remove
// data-plane SAs and policies; expiry events from the data plane are posted back to the engine.
#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange
#include <boost/asio.hpp>

#include <functional>
#include <map>
#include <memory>
#include <set>

#include "qkd/common/result.hpp"
#include "qkd/daemon/config.hpp"
#include "qkd/daemon/control.hpp"
#include "qkd/daemon/drop_log.hpp"
#include "qkd/daemon/error.hpp"
#include "qkd/daemon/listing.hpp"
#include "qkd/daemon/reconnect.hpp"
#include "qkd/daemon/metrics_server.hpp"
#include "qkd/daemon/metrics_text.hpp"
#include "qkd/daemon/qkd_key_source.hpp"
#include "qkd/daemon/udp_io.hpp"
#include "qkd/dataplane/dataplane.hpp"
#include "qkd/ike/engine.hpp"

namespace qkd::daemon {

struct DaemonOptions {
    ike::EngineOptions engine;
};

class GatewayDaemon final : public ike::EventSink {
public:
    GatewayDaemon(boost::asio::io_context& io, Config cfg, DaemonOptions opt = {});
    ~GatewayDaemon() override;

    // Data plane, UDP sockets, gateways (auto-start ones initiate), control socket.
    Result<void, DaemonError> start();
    // Sends DELETE for every IKE SA, waits up to `grace` for the answers, then calls done().
    void shutdown(std::chrono::milliseconds grace, std::function<void()> done);

    // Re-reads the config file (qkdgate reload, SIGHUP): added gateways start, removed ones are
    // terminated, changed ones re-established, the others keep their SAs. A config that does not
    // validate is refused (the error says why) and the running one stays.
    Result<nlohmann::json, DaemonError> reload();

    Result<nlohmann::json, DaemonError> handle(const ControlRequest& req);
    // As handle(), but an initiate with "wait" is answered when its IKE SA and child SA are up
    // (or it failed).
    void handle_deferred(const ControlRequest& req, ControlReply reply);

    // ike::EventSink
    void send_datagram(const ike::Endpoint& local, const ike::Endpoint& remote, std::span<const std::uint8_t> bytes) override;
    void child_sa_up(const ike::ChildSaKeys& sa) override;
    void child_sa_rekeyed(const ike::ChildSaRef& old_sa, const ike::ChildSaKeys& new_sa) override;
    void child_sa_down(const ike::ChildSaRef& sa) override;
    void ike_sa_event(const ike::IkeSaInfo& sa, ike::IkeSaEvent ev, std::string_view reason) override;
    void datagram_dropped(const ike::Endpoint& remote, ike::DropReason reason, std::string_view detail) override;

    // ike::EventSink: a QKD round's key, fetched by the QKD key source (qkd_wiring.cpp).
    void qkd_key_request(const ike::QkdKeyRequest& req) override;
    // show ike-sa: the KME round trip of the key in use (qkd_wiring.cpp).
    void qkd_annotate(nlohmann::json& j, const ike::IkeSaInfo& sa) const;
    // show-qkd: {"profiles": {name: counters}} of the QKD key source (qkd_wiring.cpp).
    nlohmann::json qkd_json() const;

    // QKD key source and Prometheus endpoint (qkd_wiring.cpp, metrics_wiring.cpp).
    QkdKeySource* qkd_source() { return qkd_.get(); }
    MetricsSnapshot metrics_snapshot();
    std::uint16_t metrics_port() const;

private:
    DropLog drop_log_;
    Result<void, DaemonError> start_qkd();
    Result<void, DaemonError> start_metrics();
    struct Child {
        std::string gateway;
        std::uint32_t reqid = 0;
        dp::SaId in, out;
        // After a rekey of this SA: the successor's outbound SA, installed (and so made the one
        // carrying traffic) once the old SA is deleted (see child_sa_rekeyed).
        std::optional<dp::SaSpec> successor_out;
        std::uint32_t successor_spi_in = 0;
    };
    void on_udp(const UdpAddr& local, const UdpAddr& remote, std::span<const std::uint8_t> data);
    void arm_timer();
    void shutdown_poll();
    std::uint32_t reqid_for(const ike::ChildSaKeys& k);
    void install_policies(const ike::ChildSaKeys& k, std::uint32_t reqid);
    void release_reqid(std::uint32_t reqid);
    void switch_to_successor(std::uint32_t old_spi_in);
    void remove_later(const dp::SaId& id, std::chrono::milliseconds after);
    void finish_waiter(std::uint64_t ike_sa_id);
    Result<nlohmann::json, DaemonError> show_ike_sas(const ControlRequest& req) const;
    Result<nlohmann::json, DaemonError> show_child_sas(const ControlRequest& req) const;

    // Gateways: engine + sockets + keeper (start and reload); gateway_reload.cpp.
    Result<void, DaemonError> add_gateway(const GatewayEntry& g);
    void drop_gateway(const std::string& name);  // DELETE sent, keeper and engine entry gone

    // Keeping wanted gateways up (reconnect.hpp); gateway_keep.cpp.
    struct Keep {
        Keeper k;
        std::unique_ptr<boost::asio::steady_timer> timer;
        std::uint64_t gen = 0;  // events of a gateway removed by a reload do not reach its successor
    };
    void keep_add(const GatewayEntry& g);
    // want + initiate now; the new IKE SA's id.
    Result<std::uint64_t, ike::EngineError> keep_initiate(const std::string& gw);
    void keep_attempt(const std::string& gw);
    void keep_event(const ike::IkeSaInfo& sa, ike::IkeSaEvent ev, std::string_view reason);
    void keep_after_end(const std::string& gw, std::uint64_t gen, SaEnd why, const std::string& reason);
    void keep_arm(const std::string& gw, Millis d);
    bool keep_terminate(const std::string& gw);  // unwant; true when retries were pending
    void keep_rows(const ControlRequest& req, std::vector<ListRow>& rows) const;
    void keep_annotate(nlohmann::json& row) const;
    void keep_watch();  // every kKeepWatch: a wanted gateway whose SA vanished without an event
    void keep_sync(const std::string& gw, Keeper& k);  // phase from the engine's SAs (initiate said Busy)

    boost::asio::io_context& io_;
    Config cfg_;
    DaemonOptions opt_;
    std::unique_ptr<dp::DataPlane> dp_;
    std::unique_ptr<UdpSockets> udp_;
    std::unique_ptr<ike::Engine> engine_;
    std::unique_ptr<ControlServer> control_;
    boost::asio::steady_timer timer_;
    std::optional<ike::TimePoint> armed_;
    std::map<std::uint32_t, Child> children_;                         // by spi_in
    // One reqid (policies + the newest outbound SA carry the traffic, see dataplane.hpp) per
    // gateway and selector set: a gateway whose remote_id is a pattern serves several peers, each
    // with its own selectors and SAs. The first set of a gateway gets its index + 1.
    std::map<std::string, std::uint32_t> reqids_;                    // "gateway|local_ts|remote_ts" -> reqid
    std::uint32_t next_reqid_ = 0;
    std::map<std::uint32_t, std::vector<dp::PolicySpec>> policies_;  // by reqid
    bool kernel_lifetimes_ = false;
    boost::asio::steady_timer shutdown_timer_;
    std::chrono::steady_clock::time_point shutdown_deadline_{};
    std::function<void()> shutdown_done_;
    // Control requests "initiate" with "wait", by IKE SA id (at most kMaxControlClients live:
    // one request per connection at a time).
    struct Waiter {
        std::string gateway;
        ControlReply reply;
        bool up = false;
        std::string reason;
    };
    std::map<std::uint64_t, Waiter> waiters_;
    std::map<std::string, Keep> keeps_;  // by gateway name
    std::set<std::uint64_t> up_ids_;     // IKE SAs that were established (Failed of one = DPD failure)
    std::size_t up_ids_prune_at_ = 64;
    std::uint64_t keep_gen_ = 0;
    std::unique_ptr<boost::asio::steady_timer> keep_watch_;
    bool stopping_ = false;              // shutdown(): ends are not retried
    std::unique_ptr<QkdKeySource> qkd_;           // null when no [[qkd_profile]] exists
    std::unique_ptr<MetricsServer> metrics_;      // null unless [daemon] metrics_port is set
    std::map<std::string, std::uint64_t> qkd_fallbacks_;  // by gateway (mode = prefer)
    std::map<std::string, std::chrono::microseconds> qkd_rtt_;  // by gateway: KME round trip of its last QKD key
};

}  // namespace qkd::daemon
