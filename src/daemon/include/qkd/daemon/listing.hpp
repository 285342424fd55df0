#pragma once
// The answers of the show commands: filtering by gateway and peer, and paging (control.hpp), so a
// hub with thousands of IKE SAs can list them within kMaxControlLine per answer. Pure functions.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string_view>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/daemon/control.hpp"
#include "qkd/daemon/error.hpp"

namespace qkd::daemon {

// '*' matches any run of characters; ASCII case-insensitive (identities compare that way, see
// qkd/ike/identity.hpp).
bool glob_match(std::string_view pattern, std::string_view text);

// Does an SA with this peer pass the request's "peer" filter? The filter matches the peer's
// address ("10.99.0.2"), address and port ("10.99.0.2:4500") or identity ("r1.peers.test").
// An empty filter passes everything.
bool peer_matches(std::string_view filter, std::string_view remote_endpoint, std::string_view remote_id);

struct ListRow {
    std::uint64_t id = 0;  // paging key; 0 = a row without an SA (a gateway waiting to retry): first page only
    nlohmann::json row;
};

// Without req.after: every row as an array, or an error naming the way out when it would not fit
// in one answer. With req.after: one page {"items", "next", "total"} (control.hpp).
Result<nlohmann::json, DaemonError> list_answer(std::vector<ListRow> rows, const ControlRequest& req);

}  // namespace qkd::daemon
