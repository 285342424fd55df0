#pragma once
// One running KME: config, state store, key manager, peer clients, HTTPS server, expiry timer.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>

#include "qkd/kme/config.hpp"
#include "qkd/kme/key_manager.hpp"
#include "qkd/kme/metrics.hpp"
#include "qkd/kme/server.hpp"
#include "qkd/kme/store.hpp"

namespace qkd::kme {

class Instance {
public:
    // Throws ConfigError / std::runtime_error with a clear message on any start-up problem.
    Instance(boost::asio::io_context& io, Config cfg);
    ~Instance();
    void start();
    std::uint16_t api_port() const { return server_->api_port(); }
    std::uint16_t metrics_port() const { return server_->metrics_port(); }
    const Config& config() const { return cfg_; }
    KeyManager& keys() { return *km_; }

private:
    void schedule_expiry();
    boost::asio::io_context& io_;
    Config cfg_;
    std::unique_ptr<StateStore> store_;
    std::unique_ptr<boost::asio::ssl::context> client_ctx_;
    std::unique_ptr<KeyManager> km_;
    Metrics metrics_;
    std::unique_ptr<Server> server_;
    boost::asio::steady_timer expiry_;
};

}  // namespace qkd::kme
