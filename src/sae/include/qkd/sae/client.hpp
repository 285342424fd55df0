#pragma once
// Asynchronous ETSI GS QKD 014 client (the SAE side), over mutually authenticated TLS.
//
// - One Client per profile, used from one io_context thread (or strand). Calls may overlap: each
//   takes an idle kept-alive connection or opens a new one (at most kMaxInFlight at once).
// - Every call is bounded by the profile's timeout (resolve, connect, handshake, write, read and
//   retries together); when it passes, the call fails with Errc::timeout and nothing hangs.
// - Retries with capped exponential back-off, only where a retry cannot lose a key:
//     status:   any transport failure and 503.
//     enc_keys: any transport failure and 503. If the answer of a sent request is lost, the KME may
//               have reserved a key that nobody will use: that key is wasted, never duplicated.
//     dec_keys: only failures before the request was written. Once written, a lost answer is
//               reported (Errc::answer_lost / Errc::timeout with key_may_be_consumed), never
//               retried: the KME deletes a key when it delivers it (ETSI 014 5.4 post-condition).
// - Keys come back as qkd::SecretBytes inside qkd::etsi014::KeyContainer; the HTTP body that held
//   them in Base64 is wiped.
#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "qkd/common/result.hpp"
#include "qkd/etsi014/model.hpp"
#include "qkd/sae/error.hpp"
#include "qkd/sae/profile.hpp"
#include "qkd/sae/request.hpp"
#include "qkd/sae/tls.hpp"

namespace qkd::sae {

inline constexpr int kMaxAttempts = 3;
inline constexpr std::chrono::milliseconds kBackoffInitial{100};
inline constexpr std::chrono::milliseconds kBackoffCap{1000};
inline constexpr std::size_t kMaxInFlight = 32;
inline constexpr std::size_t kMaxIdleConnections = 4;
inline constexpr std::chrono::seconds kMaxIdleTime{30};   // older idle connections are not reused
inline constexpr std::size_t kMaxHeaderBytes = 16 * 1024;

template <class T>
struct Answer {
    T value;
    TlsInfo tls;                                  // of the connection that carried the answer
    std::chrono::microseconds connect_time{0};    // TCP + TLS handshake; 0 when reused
    std::chrono::microseconds round_trip{0};      // request written -> answer read
    std::chrono::microseconds total{0};           // whole call, retries included
    bool reused_connection = false;
    int attempts = 1;
};

template <class T>
using CallResult = qkd::Result<Answer<T>, Error>;

using StatusResult = CallResult<qkd::etsi014::Status>;
using KeysResult = CallResult<qkd::etsi014::KeyContainer>;

class Client : public std::enable_shared_from_this<Client> {
public:
    // Reads the certificates and keys of the profile (errors name the file and the key).
    static qkd::Result<std::shared_ptr<Client>, Error> create(boost::asio::any_io_executor ex, Profile profile);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // ETSI 014 5.2 Get status of the pair (this SAE as master, slave_SAE_ID). fresh_connection:
    // do not reuse a kept-alive connection (to measure the handshake).
    boost::asio::awaitable<StatusResult> get_status(std::string slave_SAE_ID, bool fresh_connection = false);
    // ETSI 014 5.3 Get key (master SAE).
    boost::asio::awaitable<KeysResult> get_key(GetKeyParams params);
    // ETSI 014 5.4 Get key with key IDs (slave SAE).
    boost::asio::awaitable<KeysResult> get_key_with_ids(GetKeyWithIdsParams params);

    // Callback forms of the same calls; `done` runs on the client's executor.
    void async_get_status(std::string slave_SAE_ID, std::function<void(StatusResult)> done);
    void async_get_key(GetKeyParams params, std::function<void(KeysResult)> done);
    void async_get_key_with_ids(GetKeyWithIdsParams params, std::function<void(KeysResult)> done);

    // Closes the idle connections (calls in flight finish normally).
    void close_idle();
    std::size_t idle_connections() const;
    const Profile& profile() const;

private:
    struct Impl;
    explicit Client(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Blocking wrapper for the CLI and tests: owns an io_context; connections are reused between calls.
class BlockingClient {
public:
    static qkd::Result<BlockingClient, Error> create(Profile profile);
    BlockingClient(BlockingClient&&) noexcept;
    BlockingClient& operator=(BlockingClient&&) noexcept;
    ~BlockingClient();

    StatusResult get_status(const std::string& slave_SAE_ID, bool fresh_connection = false);
    KeysResult get_key(const GetKeyParams& params);
    KeysResult get_key_with_ids(const GetKeyWithIdsParams& params);
    Client& client() { return *client_; }

private:
    struct Io;
    BlockingClient(std::unique_ptr<Io> io, std::shared_ptr<Client> c);
    std::unique_ptr<Io> io_;
    std::shared_ptr<Client> client_;
};

}  // namespace qkd::sae
