#pragma once
// The control socket: a UNIX stream socket; one JSON request per line, one JSON response per
// line. Requests and responses are bounded (kMaxControlLine); a connection that sends nothing
// for kControlIdleTimeout is closed.
//
//   request:  {"cmd": "show-ike-sa" | "show-child-sa" | "initiate" | "terminate" | "rekey",
//              "gateway": "NAME",           (initiate, terminate, rekey)
//              "what": "child" | "ike",     (rekey; default "child")
//              "wait": true}                (initiate: answer when the IKE SA and its child SA
//                                            are up, or it failed; like vici's blocking initiate)
//   response: {"ok": true, "result": ...}  or  {"ok": false, "error": "text"}
// A connection carries one request at a time; a waiting request is answered within
// kControlWaitTimeout (an error when nothing happened by then).
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
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

enum class ControlCmd { show_ike_sa, show_child_sa, initiate, terminate, rekey };
enum class RekeyWhat { child, ike };

struct ControlRequest {
    ControlCmd cmd = ControlCmd::show_ike_sa;
    std::string gateway;  // empty for the show commands
    RekeyWhat what = RekeyWhat::child;
    bool wait = false;  // initiate: answer once the gateway is up (or failed)
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
