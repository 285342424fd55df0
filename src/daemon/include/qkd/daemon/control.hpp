#pragma once
// The control socket: a UNIX stream socket; one JSON request per line, one JSON response per
// line. Requests and responses are bounded (kMaxControlLine); a connection that sends nothing
// for kControlIdleTimeout is closed.
//
//   request:  {"cmd": "show-ike-sa" | "show-child-sa" | "initiate" | "terminate" | "rekey" | "reload",
//              "gateway": "NAME",           (initiate, terminate, rekey; show: only this gateway)
//              "what": "child" | "ike",     (rekey; default "child")
//              "wait": true,                (initiate: answer when the IKE SA and its child SA
//                                            are up, or it failed; like vici's blocking initiate)
//              "peer": "TEXT",              (show: only SAs whose peer address or identity is
//                                            TEXT; '*' matches any characters)
//              "after": ID, "limit": N}     (show: one page, see below)
//   response: {"ok": true, "result": ...}  or  {"ok": false, "error": "text"}
// Paging (a hub may hold thousands of SAs, more than one kMaxControlLine response): a show request
// with "after" (0 for the first page) is answered with {"items": [...], "next": ID | null,
// "total": N}: the SAs with an id above "after", in id order, as many as fit in kPageBudget bytes
// (at most "limit" when given); "next" is the "after" of the following page. An SA set up
// between two pages appears on a later page (ids grow); one that ends is simply not listed. A
// show request without "after" gets a plain array, or an error when it does not fit.
// A connection carries one request at a time; a waiting request is answered within
// kControlWaitTimeout (an error when nothing happened by then).
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "qkd/common/result.hpp"
#include "qkd/daemon/error.hpp"

namespace boost::asio {
class io_context;
}

namespace qkd::daemon {

inline constexpr std::size_t kMaxControlLine = 64 * 1024;
inline constexpr std::chrono::seconds kControlIdleTimeout{10};
inline constexpr std::size_t kMaxControlClients = 16;
inline constexpr std::chrono::seconds kControlWaitTimeout{60};

inline constexpr std::size_t kPageBudget = 48 * 1024;  // bytes of rows per page
inline constexpr std::size_t kMaxPageLimit = 10000;

enum class ControlCmd { show_ike_sa, show_child_sa, initiate, terminate, rekey, reload, show_qkd };
enum class RekeyWhat { child, ike };

struct ControlRequest {
    ControlCmd cmd = ControlCmd::show_ike_sa;
    std::string gateway;  // empty for the show commands
    RekeyWhat what = RekeyWhat::child;
    bool wait = false;  // initiate: answer once the gateway is up (or failed)
    std::string peer{};                  // show: filter
    std::optional<std::uint64_t> after{};  // show: paged answer from this id on
    std::size_t limit = 0;               // show: at most this many rows per page (0 = budget only)
};

// Pure decoding of one request line (without the newline): rejects bad JSON, unknown commands,
// wrong types, missing or superfluous fields.
Result<ControlRequest, DaemonError> decode_request(std::string_view line);
nlohmann::json encode_request(const ControlRequest& req);
std::string_view cmd_name(ControlCmd c);

// The daemon's answer to a decoded request: a result value or an error text.
using ControlResult = Result<nlohmann::json, DaemonError>;
using ControlHandler = std::function<ControlResult(const ControlRequest&)>;
// Or later: the handler keeps `reply` and calls it once (on the server's io_context), e.g. when
// the IKE SA an initiate with "wait" started is up. Calls after the first are ignored.
using ControlReply = std::function<void(ControlResult)>;
using DeferredControlHandler = std::function<void(const ControlRequest&, ControlReply)>;

// The response line (without newline) for one result.
std::string encode_response(const ControlResult& r);
// Builds the response line (without newline) for one request line: a pure function.
std::string handle_control_line(std::string_view line, const ControlHandler& handler);

class ControlServer {
public:
    ControlServer(boost::asio::io_context& io, std::string path, ControlHandler handler);
    ControlServer(boost::asio::io_context& io, std::string path, DeferredControlHandler handler);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Creates the parent directory (0755) if needed, removes a stale socket, binds, chmod 0660.
    Result<void, DaemonError> start();
    void stop();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// Client side (used by the qkdgate CLI): one request, one response, with a timeout.
Result<nlohmann::json, DaemonError> control_call(const std::string& socket_path, const ControlRequest& req,
                                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace qkd::daemon
