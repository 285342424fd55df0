#pragma once
// KME-to-KME reservations over mutual TLS (DESIGN.md §4 "Sync"). Requests queued while every
// connection to the peer is busy go out together as one batch (up to four batches in flight, each
// on its own connection), so the peer round trip is shared under load. A batch that
// is not confirmed within the peer's sync_timeout fails; the caller burns the material.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <memory>

#include "qkd/kme/config.hpp"
#include "qkd/kme/key_manager.hpp"

namespace qkd::kme {

std::shared_ptr<PeerClient> make_https_peer_client(boost::asio::io_context& io, boost::asio::ssl::context& ctx, const PeerConfig& peer);

}  // namespace qkd::kme
