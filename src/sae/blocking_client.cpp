// Blocking wrapper: runs the asynchronous client on a private io_context until the call completes.
#include <utility>  // before Boost 1.74 asio/awaitable.hpp (std::exchange)

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <optional>

#include "qkd/sae/client.hpp"

namespace qkd::sae {

namespace net = boost::asio;

struct BlockingClient::Io {
    net::io_context ctx;
};

BlockingClient::BlockingClient(std::unique_ptr<Io> io, std::shared_ptr<Client> c) : io_(std::move(io)), client_(std::move(c)) {}
BlockingClient::BlockingClient(BlockingClient&&) noexcept = default;
BlockingClient& BlockingClient::operator=(BlockingClient&&) noexcept = default;
BlockingClient::~BlockingClient() {
    // The client (and its sockets) must go before the io_context they are bound to.
    client_.reset();
}

qkd::Result<BlockingClient, Error> BlockingClient::create(Profile profile) {
    auto io = std::make_unique<Io>();
    auto c = Client::create(io->ctx.get_executor(), std::move(profile));
    if (!c) return qkd::Err{std::move(c.error())};
    return BlockingClient(std::move(io), std::move(*c));
}

namespace {

template <class R, class Make>
R run_blocking(net::io_context& io, Make make) {
    std::optional<R> out;
    net::co_spawn(io, [&]() -> net::awaitable<void> { out.emplace(co_await make()); }, net::detached);
    io.restart();
    io.run();
    if (!out) std::abort();  // the io_context ran out of work before the call finished: a bug
    return std::move(*out);
}

}  // namespace

StatusResult BlockingClient::get_status(const std::string& slave_SAE_ID, bool fresh_connection) {
    return run_blocking<StatusResult>(io_->ctx, [&] { return client_->get_status(slave_SAE_ID, fresh_connection); });
}

KeysResult BlockingClient::get_key(const GetKeyParams& params) {
    return run_blocking<KeysResult>(io_->ctx, [&] { return client_->get_key(params); });
}

KeysResult BlockingClient::get_key_with_ids(const GetKeyWithIdsParams& params) {
    return run_blocking<KeysResult>(io_->ctx, [&] { return client_->get_key_with_ids(params); });
}

}  // namespace qkd::sae
