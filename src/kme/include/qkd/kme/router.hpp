#pragma once
// Request handling as a function from (request, caller) to response; the only suspension points
// are the key manager's durable commits and peer reservations.
#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>

#include "qkd/kme/metrics.hpp"
#include "qkd/kme/server.hpp"

namespace qkd::kme {

struct Routed {
    HttpResponse response;
    Endpoint endpoint = Endpoint::Other;
};

boost::asio::awaitable<Routed> route(HttpRequest req, const Caller& caller, KeyManager& km);

// The parts of a request target: path segments (percent-decoded) and query pairs.
struct Target {
    std::vector<std::string> segments;
    std::vector<std::pair<std::string, std::string>> query;
};
std::optional<Target> parse_target(std::string_view target);

}  // namespace qkd::kme
