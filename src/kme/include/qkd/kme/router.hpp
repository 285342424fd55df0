#pragma once
// Request handling as a function from (request, caller) to response. The answer comes through a
// callback: at once, or after the key manager's durable commits and peer reservations (then on
// whichever thread finished them).
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkd/kme/metrics.hpp"
#include "qkd/kme/server.hpp"

namespace qkd::kme {

// An HTTP response as the router builds it; the server writes the status line and headers
// (Server, Content-Type: application/json, Content-Length, Allow when set, Connection).
struct Response {
    unsigned status = 200;
    unsigned version = 11;  // of the request: 10 or 11
    bool keep_alive = true;
    std::string body;  // may hold Base64 key material: wiped by the server after writing
    const char* allow = nullptr;
};

struct Routed {
    Response response;
    Endpoint endpoint = Endpoint::Other;
};

using RouteDone = std::function<void(Routed)>;
void route(HttpRequest req, const Caller& caller, KeyManager& km, RouteDone done);

// The parts of a request target: path segments (percent-decoded) and query pairs.
struct Target {
    std::vector<std::string> segments;
    std::vector<std::pair<std::string, std::string>> query;
};
std::optional<Target> parse_target(std::string_view target);

}  // namespace qkd::kme
