#include "qkd/kme/instance.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <filesystem>

#include "qkd/kme/peer_client.hpp"
#include "qkd/kme/secrets_at_rest.hpp"
#include "qkd/kme/tls.hpp"

namespace qkd::kme {

Instance::Instance(boost::asio::io_context& io, Config cfg) : io_(io), cfg_(std::move(cfg)), expiry_(io) {
    // Refuses secrets others can read before anything is created or read (secrets_at_rest.hpp);
    // the state folder is created owner-only.
    check_secrets_at_rest(cfg_);
    make_private_dirs(std::filesystem::path(cfg_.state_db).parent_path().string());
    const bool full = cfg_.state_sync == "full";
    store_ = std::make_unique<Store>(cfg_.state_db, full ? StateSync::Full : StateSync::Normal);
    // Group commits run on the event loop: no thread hand-off between a request and its commit.
    // With state_sync = "full" each commit waits for an fsync (0.5 ms or more), so they stay on the
    // store's writer thread: the event loop serves other connections meanwhile, and the requests
    // that arrive during one fsync share the next.
    if (!full) store_->run_commits_on([this](std::function<void()> f) { boost::asio::post(io_, std::move(f)); });
    client_ctx_ = std::make_unique<boost::asio::ssl::context>(make_peer_client_context(cfg_));
    std::map<std::string, std::shared_ptr<PeerClient>> peers;
    for (const auto& p : cfg_.peers) peers[p.kme_id] = make_https_peer_client(io_, *client_ctx_, p);
    km_ = std::make_unique<KeyManager>(cfg_, *store_, SystemClock::instance(), std::move(peers));
    server_ = std::make_unique<Server>(io_, cfg_, *km_, metrics_);
}

Instance::~Instance() {
    if (store_) store_->flush();
}

void Instance::start() {
    server_->start();
    spdlog::info("{} listening on https://{}:{}{}", cfg_.kme_id, cfg_.listen_host, api_port(),
                 metrics_port() ? " (metrics on http://" + *cfg_.metrics_host + ":" + std::to_string(metrics_port()) + "/metrics)" : "");
    schedule_expiry();
}

void Instance::schedule_expiry() {
    expiry_.expires_after(std::chrono::seconds(1));
    expiry_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        if (auto n = km_->expire_reservations()) spdlog::info("{}: {} unclaimed reservations expired", cfg_.kme_id, n);
        schedule_expiry();
    });
}

}  // namespace qkd::kme
