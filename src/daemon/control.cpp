// Control socket: request decoding (pure), the Asio server, and the blocking client.
#include "qkd/daemon/control.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange
#include <boost/asio.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "qkd/common/log.hpp"

namespace qkd::daemon {

namespace {
using Fail = Err<DaemonError>;
namespace asio = boost::asio;
using local = asio::local::stream_protocol;

DaemonError req_err(std::string m) { return DaemonError{Errc::control_request, std::move(m)}; }
DaemonError io_err(std::string m) { return DaemonError{Errc::control_io, std::move(m)}; }

struct CmdInfo {
    ControlCmd cmd;
    std::string_view name;
    bool needs_gateway;
};
constexpr CmdInfo kCmds[] = {
    {ControlCmd::show_ike_sa, "show-ike-sa", false},  {ControlCmd::show_child_sa, "show-child-sa", false},
    {ControlCmd::initiate, "initiate", true},         {ControlCmd::terminate, "terminate", true},
    {ControlCmd::rekey, "rekey", true},           {ControlCmd::reload, "reload", false},
    {ControlCmd::show_qkd, "show-qkd", false},  // per-profile QKD key counters (qkd_wiring.cpp)
};
}  // namespace

std::string_view cmd_name(ControlCmd c) {
    for (auto& i : kCmds)
        if (i.cmd == c) return i.name;
    return "?";
}

Result<ControlRequest, DaemonError> decode_request(std::string_view line) {
    if (line.size() > kMaxControlLine)
        return Fail{req_err("request of " + std::to_string(line.size()) + " bytes, expected at most " + std::to_string(kMaxControlLine))};
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Fail{req_err("request is not valid JSON, expected one JSON object per line")};
    if (!j.is_object()) return Fail{req_err("request is a JSON " + std::string(j.type_name()) + ", expected an object")};
    auto it = j.find("cmd");
    if (it == j.end() || !it->is_string()) return Fail{req_err("request has no string \"cmd\"")};
    const auto cmd = it->get<std::string>();
    const CmdInfo* info = nullptr;
    for (auto& i : kCmds)
        if (i.name == cmd) info = &i;
    if (!info)
        return Fail{req_err("unknown cmd \"" + cmd.substr(0, 64) +
                            "\", expected show-ike-sa, show-child-sa, initiate, terminate, rekey or reload")};
    ControlRequest r;
    r.cmd = info->cmd;
    const bool show = info->cmd == ControlCmd::show_ike_sa || info->cmd == ControlCmd::show_child_sa;
    for (auto& [k, v] : j.items()) {
        if (k == "cmd") continue;
        if (k == "gateway" && show) {
            if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 64)
                return Fail{req_err("\"gateway\" must be a gateway name (1..64 characters)")};
            r.gateway = v.get<std::string>();
            continue;
        }
        if (k == "peer" && show) {
            if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 255)
                return Fail{req_err("\"peer\" must be an address or identity (1..255 characters)")};
            r.peer = v.get<std::string>();
            continue;
        }
        if (k == "after" && show) {
            if (!v.is_number_unsigned()) return Fail{req_err("\"after\" must be an IKE/child SA id (an unsigned integer)")};
            r.after = v.get<std::uint64_t>();
            continue;
        }
        if (k == "limit" && show) {
            if (!v.is_number_unsigned() || v.get<std::uint64_t>() < 1 || v.get<std::uint64_t>() > kMaxPageLimit)
                return Fail{req_err("\"limit\" must be 1.." + std::to_string(kMaxPageLimit))};
            r.limit = v.get<std::size_t>();
            continue;
        }
        if (k == "gateway" && info->needs_gateway) {
            if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 64)
                return Fail{req_err("\"gateway\" must be a gateway name (1..64 characters)")};
            r.gateway = v.get<std::string>();
        } else if (k == "wait" && info->cmd == ControlCmd::initiate) {
            if (!v.is_boolean()) return Fail{req_err("\"wait\" must be true or false")};
            r.wait = v.get<bool>();
        } else if (k == "what" && info->cmd == ControlCmd::rekey) {
            if (v == "child") r.what = RekeyWhat::child;
            else if (v == "ike") r.what = RekeyWhat::ike;
            else return Fail{req_err("\"what\" must be \"child\" or \"ike\"")};
        } else {
            return Fail{req_err("unexpected field \"" + k.substr(0, 64) + "\" for cmd " + cmd)};
        }
    }
    if (info->needs_gateway && r.gateway.empty()) return Fail{req_err("cmd " + cmd + " needs \"gateway\"")};
    return r;
}

nlohmann::json encode_request(const ControlRequest& req) {
    nlohmann::json j{{"cmd", std::string(cmd_name(req.cmd))}};
    if (!req.gateway.empty()) j["gateway"] = req.gateway;
    if (req.cmd == ControlCmd::rekey) j["what"] = req.what == RekeyWhat::ike ? "ike" : "child";
    if (req.cmd == ControlCmd::initiate && req.wait) j["wait"] = true;
    if (!req.peer.empty()) j["peer"] = req.peer;
    if (req.after) j["after"] = *req.after;
    if (req.limit) j["limit"] = req.limit;
    return j;
}

std::string encode_response(const ControlResult& r) {
    nlohmann::json resp;
    if (r) resp = {{"ok", true}, {"result", *r}};
    else resp = {{"ok", false}, {"error", r.error().message}};
    auto s = resp.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (s.size() > kMaxControlLine) s = R"({"ok":false,"error":"response too large"})";
    return s;
}

std::string handle_control_line(std::string_view line, const ControlHandler& handler) {
    auto req = decode_request(line);
    if (!req) return encode_response(Fail{req.error()});
    return encode_response(handler(*req));
}

// ---- server ---------------------------------------------------------------------------------

struct ControlServer::Impl : std::enable_shared_from_this<ControlServer::Impl> {
    asio::io_context& io;
    std::string path;
    DeferredControlHandler handler;
    local::acceptor acceptor;
    std::set<std::shared_ptr<local::socket>> clients;
    bool stopped = false;

    Impl(asio::io_context& i, std::string p, DeferredControlHandler h) : io(i), path(std::move(p)), handler(std::move(h)), acceptor(i) {}

    void accept() {
        auto self = shared_from_this();
        acceptor.async_accept([self](boost::system::error_code ec, local::socket s) {
            if (self->stopped) return;
            if (!ec) {
                if (self->clients.size() >= kMaxControlClients) {
                    spdlog::warn("control: {} clients connected, refusing another", self->clients.size());
                } else {
                    self->serve(std::make_shared<local::socket>(std::move(s)));
                }
            }
            self->accept();
        });
    }

    struct Conn {
        std::shared_ptr<local::socket> sock;
        asio::steady_timer timer;
        asio::streambuf buf;
        std::string out;
        explicit Conn(std::shared_ptr<local::socket> s) : sock(std::move(s)), timer(sock->get_executor()), buf(kMaxControlLine + 1) {}
    };

    void serve(std::shared_ptr<local::socket> s) {
        clients.insert(s);
        auto c = std::make_shared<Conn>(s);
        read_one(c);
    }

    void close(const std::shared_ptr<Conn>& c) {
        boost::system::error_code ec;
        c->timer.cancel();
        c->sock->close(ec);
        clients.erase(c->sock);
    }

    void read_one(const std::shared_ptr<Conn>& c) {
        auto self = shared_from_this();
        c->timer.expires_after(kControlIdleTimeout);
        c->timer.async_wait([c](boost::system::error_code ec) {
            if (!ec) {
                boost::system::error_code e2;
                c->sock->close(e2);
            }
        });
        asio::async_read_until(*c->sock, c->buf, '\n', [self, c](boost::system::error_code ec, std::size_t n) {
            if (self->stopped) return;
            if (ec) {
                if (ec == asio::error::not_found) {  // the streambuf limit: the line is too long
                    c->out = R"({"ok":false,"error":"request longer than )" + std::to_string(kMaxControlLine) + R"( bytes"})" "\n";
                    asio::async_write(*c->sock, asio::buffer(c->out), [self, c](boost::system::error_code, std::size_t) { self->close(c); });
                    return;
                }
                self->close(c);
                return;
            }
            std::string line(asio::buffers_begin(c->buf.data()), asio::buffers_begin(c->buf.data()) + static_cast<std::ptrdiff_t>(n - 1));
            c->buf.consume(n);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            auto req = decode_request(line);
            if (!req) {
                self->answer(c, encode_response(Fail{req.error()}));
                return;
            }
            // The answer may come later (initiate with "wait"): bounded by kControlWaitTimeout.
            auto answered = std::make_shared<bool>(false);
            auto reply = [self, c, answered](ControlResult r) {
                if (*answered || self->stopped) return;
                *answered = true;
                self->answer(c, encode_response(r));
            };
            c->timer.expires_after(kControlWaitTimeout);  // replaces the idle timeout
            c->timer.async_wait([reply](boost::system::error_code ec) {
                if (!ec)
                    reply(Fail{DaemonError{Errc::control_io, "no answer within " + std::to_string(kControlWaitTimeout.count()) + " s"}});
            });
            self->handler(*req, reply);
        });
    }

    void answer(const std::shared_ptr<Conn>& c, std::string line) {
        auto self = shared_from_this();
        c->timer.cancel();
        c->out = std::move(line) + "\n";
        asio::async_write(*c->sock, asio::buffer(c->out), [self, c](boost::system::error_code wec, std::size_t) {
            if (wec || self->stopped) {
                self->close(c);
                return;
            }
            self->read_one(c);
        });
    }
};

ControlServer::ControlServer(asio::io_context& io, std::string path, ControlHandler handler)
    : ControlServer(io, std::move(path), DeferredControlHandler{[h = std::move(handler)](const ControlRequest& r, ControlReply reply) {
          reply(h(r));
      }}) {}

ControlServer::ControlServer(asio::io_context& io, std::string path, DeferredControlHandler handler)
    : impl_(std::make_shared<Impl>(io, std::move(path), std::move(handler))) {}

ControlServer::~ControlServer() { stop(); }

Result<void, DaemonError> ControlServer::start() {
    auto& p = impl_->path;
    if (p.empty() || p.size() >= sizeof(sockaddr_un::sun_path))
        return Fail{io_err("control socket path \"" + p + "\" must have 1..107 characters")};
    std::error_code fec;
    auto dir = std::filesystem::path(p).parent_path();
    if (!dir.empty() && !std::filesystem::exists(dir, fec)) {
        std::filesystem::create_directories(dir, fec);
        if (fec) return Fail{io_err("cannot create " + dir.string() + ": " + fec.message())};
        ::chmod(dir.c_str(), 0755);
    }
    // A stale socket from a previous run would make bind fail; refuse to remove anything else.
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return Fail{io_err(p + " exists and is not a socket; refusing to replace it")};
        ::unlink(p.c_str());
    }
    boost::system::error_code ec;
    impl_->acceptor.open(local(), ec);
    if (!ec) impl_->acceptor.bind(local::endpoint(p), ec);
    if (!ec) impl_->acceptor.listen(8, ec);
    if (ec) return Fail{io_err("cannot listen on " + p + ": " + ec.message())};
    ::chmod(p.c_str(), 0660);
    impl_->accept();
    return {};
}

void ControlServer::stop() {
    if (!impl_ || impl_->stopped) return;
    impl_->stopped = true;
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
    for (auto& s : impl_->clients) s->close(ec);
    impl_->clients.clear();
    ::unlink(impl_->path.c_str());
}

// ---- client ---------------------------------------------------------------------------------

Result<nlohmann::json, DaemonError> control_call(const std::string& socket_path, const ControlRequest& req,
                                                 std::chrono::milliseconds timeout) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof sa.sun_path)
        return Fail{io_err("control socket path \"" + socket_path + "\" must have 1..107 characters")};
    std::memcpy(sa.sun_path, socket_path.data(), socket_path.size());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Fail{io_err(std::string("socket: ") + std::strerror(errno))};
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        return Fail{io_err("cannot connect to " + socket_path + ": " + std::strerror(errno) + " (is qkdgated running?)")};
    std::string line = encode_request(req).dump() + "\n";
    std::size_t off = 0;
    while (off < line.size()) {
        ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return Fail{io_err(std::string("write to control socket: ") + std::strerror(errno))};
        off += static_cast<std::size_t>(n);
    }
    std::string in;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (in.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return Fail{io_err("no answer from qkdgated within " + std::to_string(timeout.count()) + " ms")};
        pollfd p{fd, POLLIN, 0};
        int pr = ::poll(&p, 1, static_cast<int>(left.count()));
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return Fail{io_err("qkdgated closed the control connection without an answer")};
        in.append(buf, static_cast<std::size_t>(n));
        if (in.size() > kMaxControlLine + 1) return Fail{io_err("answer longer than " + std::to_string(kMaxControlLine) + " bytes")};
    }
    in.resize(in.find('\n'));
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("ok") || !j["ok"].is_boolean())
        return Fail{io_err("qkdgated sent a malformed answer, expected {\"ok\": ..., ...}")};
    if (!j["ok"].get<bool>()) {
        std::string e = j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "unknown error";
        return Fail{DaemonError{Errc::engine, e}};
    }
    return j.contains("result") ? j["result"] : nlohmann::json(nullptr);
}

}  // namespace qkd::daemon
