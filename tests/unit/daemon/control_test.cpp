#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <thread>

#include "qkd/daemon/control.hpp"

using namespace qkd::daemon;

TEST(ControlDecode, ValidRequests) {
    auto r = decode_request(R"({"cmd":"show-ike-sa"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->cmd, ControlCmd::show_ike_sa);
    auto i = decode_request(R"({"cmd":"initiate","gateway":"east"})");
    ASSERT_TRUE(i);
    EXPECT_EQ(i->gateway, "east");
    auto k = decode_request(R"({"cmd":"rekey","gateway":"east","what":"ike"})");
    ASSERT_TRUE(k);
    EXPECT_EQ(k->what, RekeyWhat::ike);
    // encode/decode round trip
    auto again = decode_request(encode_request(*k).dump());
    ASSERT_TRUE(again);
    EXPECT_EQ(again->gateway, "east");
    EXPECT_EQ(again->what, RekeyWhat::ike);
    auto w = decode_request(R"({"cmd":"initiate","gateway":"east","wait":true})");
    ASSERT_TRUE(w);
    EXPECT_TRUE(w->wait);
    EXPECT_TRUE(decode_request(encode_request(*w).dump())->wait);
    EXPECT_FALSE(i->wait);
    EXPECT_FALSE(encode_request(*i).contains("wait"));
}

TEST(ControlDecode, Rejections) {
    struct Case {
        std::string line, expect;
    } cases[] = {
        {"not json", "not valid JSON"},
        {"[1,2]", "expected an object"},
        {R"({"gateway":"x"})", "no string \"cmd\""},
        {R"({"cmd":5})", "no string \"cmd\""},
        {R"({"cmd":"reboot"})", "unknown cmd \"reboot\""},
        {R"({"cmd":"initiate"})", "needs \"gateway\""},
        {R"({"cmd":"initiate","gateway":7})", "gateway name"},
        {R"({"cmd":"initiate","gateway":""})", "gateway name"},
        {R"({"cmd":"show-ike-sa","wait":true})", "unexpected field \"wait\""},
        {R"({"cmd":"show-ike-sa","after":-1})", "\"after\" must be"},
        {R"({"cmd":"show-child-sa","limit":0})", "\"limit\" must be"},
        {R"({"cmd":"reload","gateway":"x"})", "unexpected field \"gateway\""},
        {R"({"cmd":"rekey","gateway":"x","what":"all"})", "\"child\" or \"ike\""},
        {R"({"cmd":"initiate","gateway":"x","wait":"yes"})", "\"wait\" must be true or false"},
        {R"({"cmd":"terminate","gateway":"x","wait":true})", "unexpected field \"wait\""},
        {std::string(kMaxControlLine + 1, ' '), "at most"},
    };
    for (auto& c : cases) {
        auto r = decode_request(c.line);
        ASSERT_FALSE(r) << c.line.substr(0, 80);
        EXPECT_NE(r.error().message.find(c.expect), std::string::npos) << r.error().message;
    }
}

TEST(ControlHandle, ResponseShape) {
    ControlHandler h = [](const ControlRequest& r) -> qkd::Result<nlohmann::json, DaemonError> {
        if (r.cmd == ControlCmd::terminate) return qkd::Err{DaemonError{Errc::engine, "no IKE SA for gateway x"}};
        return nlohmann::json{{"gateway", r.gateway}};
    };
    auto ok = nlohmann::json::parse(handle_control_line(R"({"cmd":"initiate","gateway":"x"})", h));
    EXPECT_EQ(ok["ok"], true);
    EXPECT_EQ(ok["result"]["gateway"], "x");
    auto bad = nlohmann::json::parse(handle_control_line(R"({"cmd":"terminate","gateway":"x"})", h));
    EXPECT_EQ(bad["ok"], false);
    EXPECT_EQ(bad["error"], "no IKE SA for gateway x");
    auto garbage = nlohmann::json::parse(handle_control_line("{", h));
    EXPECT_EQ(garbage["ok"], false);
}

// A real server on a real UNIX socket, and the real client.
TEST(ControlServer, RoundTripOverSocket) {
    boost::asio::io_context io;
    std::string path = "/tmp/qkd-ctl-test-" + std::to_string(::getpid()) + "/ctl.sock";
    int calls = 0;
    ControlServer srv(io, path, [&](const ControlRequest& r) -> qkd::Result<nlohmann::json, DaemonError> {
        ++calls;
        return nlohmann::json{{"cmd", std::string(cmd_name(r.cmd))}, {"gateway", r.gateway}};
    });
    auto st = srv.start();
    ASSERT_TRUE(st) << st.error().message;
    std::thread t([&] { io.run(); });

    auto r = control_call(path, ControlRequest{ControlCmd::rekey, "east", RekeyWhat::ike});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ((*r)["cmd"], "rekey");
    EXPECT_EQ((*r)["gateway"], "east");

    // Two requests on one connection, and an oversized line that gets an error, by hand.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    std::string two = "{\"cmd\":\"show-ike-sa\"}\n{\"cmd\":\"bogus\"}\n";
    ASSERT_EQ(::write(fd, two.data(), two.size()), static_cast<ssize_t>(two.size()));
    std::string got;
    char buf[1024];
    while (std::count(got.begin(), got.end(), '\n') < 2) {
        auto n = ::read(fd, buf, sizeof buf);
        ASSERT_GT(n, 0);
        got.append(buf, static_cast<size_t>(n));
    }
    EXPECT_NE(got.find("\"ok\":true"), std::string::npos);
    EXPECT_NE(got.find("unknown cmd"), std::string::npos);
    std::string huge(kMaxControlLine + 100, 'x');
    huge += "\n";
    (void)::write(fd, huge.data(), huge.size());
    got.clear();
    while (got.find('\n') == std::string::npos) {
        auto n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    EXPECT_NE(got.find("longer than"), std::string::npos) << got;
    ::close(fd);
    EXPECT_EQ(calls, 2);

    boost::asio::post(io, [&] { srv.stop(); io.stop(); });
    t.join();
    EXPECT_FALSE(control_call(path, ControlRequest{}));  // socket removed on stop
}

#include "qkd/daemon/udp_io.hpp"

// RFC 3948 2.2: the non-ESP marker separates IKE from ESP on the NAT-T port.
TEST(UdpDemux, NattPort) {
    std::vector<std::uint8_t> ike(4 + 28, 0);
    EXPECT_EQ(demux(ike, true), UdpKind::ike);
    EXPECT_EQ(demux(std::span(ike).first(20), true), UdpKind::invalid);  // marker but no IKE header
    std::vector<std::uint8_t> esp{0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 0xaa};
    EXPECT_EQ(demux(esp, true), UdpKind::esp);
    EXPECT_EQ(demux(std::span(esp).first(7), true), UdpKind::invalid);
    std::vector<std::uint8_t> ka{0xff};
    EXPECT_EQ(demux(ka, true), UdpKind::keepalive);
    // On port 500 everything of header size is IKE; a keepalive there is invalid.
    EXPECT_EQ(demux(std::span(ike).first(28), false), UdpKind::ike);
    EXPECT_EQ(demux(ka, false), UdpKind::invalid);
}

// Real sockets on loopback: bind, receive through the io_context, send with the thread-safe path.
TEST(UdpSockets, LoopbackRoundTrip) {
    boost::asio::io_context io;
    std::vector<std::uint8_t> got;
    UdpAddr from{};
    UdpSockets a(io, [&](const UdpAddr&, const UdpAddr& r, std::span<const std::uint8_t> d) {
        got.assign(d.begin(), d.end());
        from = r;
        io.stop();
    });
    UdpSockets b(io, [](const UdpAddr&, const UdpAddr&, std::span<const std::uint8_t>) {});
    const std::uint32_t lo = 0x7f000001;
    std::uint16_t pa = static_cast<std::uint16_t>(20000 + ::getpid() % 20000), pb = static_cast<std::uint16_t>(pa + 1);
    ASSERT_TRUE(a.bind({lo, pa}));
    ASSERT_TRUE(b.bind({lo, pb}));
    auto dup = a.bind({lo, pa});  // already bound by us: no-op
    EXPECT_TRUE(dup);
    std::vector<std::uint8_t> msg{1, 2, 3, 4, 5};
    std::thread t([&] { EXPECT_TRUE(b.send({lo, pb}, {lo, pa}, msg)); });
    io.run_for(std::chrono::seconds(5));
    t.join();
    EXPECT_EQ(got, msg);
    EXPECT_EQ(from.port, pb);
    EXPECT_FALSE(b.send({lo, 1}, {lo, pa}, msg));  // no socket on that port
}

// A deferred answer: the handler keeps the reply and answers later on the io_context (as
// qkdgated does for "initiate" with "wait"); the connection then carries the next request.
TEST(ControlServer, DeferredAnswer) {
    boost::asio::io_context io;
    std::string path = "/tmp/qkd-ctl-test-" + std::to_string(::getpid()) + "-d/ctl.sock";
    boost::asio::steady_timer later(io);
    ControlServer srv(io, path, DeferredControlHandler{[&](const ControlRequest& r, ControlReply reply) {
        if (!r.wait) {
            reply(nlohmann::json{{"now", true}});
            return;
        }
        later.expires_after(std::chrono::milliseconds(50));
        later.async_wait([reply, gw = r.gateway](boost::system::error_code) {
            reply(nlohmann::json{{"up", gw}});
            reply(qkd::Err{DaemonError{Errc::engine, "a second answer is ignored"}});
        });
    }});
    auto st = srv.start();
    ASSERT_TRUE(st) << st.error().message;
    std::thread t([&] { io.run(); });

    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    std::string two = "{\"cmd\":\"initiate\",\"gateway\":\"east\",\"wait\":true}\n{\"cmd\":\"show-ike-sa\"}\n";
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::write(fd, two.data(), two.size()), static_cast<ssize_t>(two.size()));
    std::string got;
    char buf[1024];
    while (std::count(got.begin(), got.end(), '\n') < 2) {
        auto n = ::read(fd, buf, sizeof buf);
        ASSERT_GT(n, 0);
        got.append(buf, static_cast<size_t>(n));
    }
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(50));
    EXPECT_EQ(got, "{\"ok\":true,\"result\":{\"up\":\"east\"}}\n{\"ok\":true,\"result\":{\"now\":true}}\n");
    ::close(fd);

    boost::asio::post(io, [&] { srv.stop(); io.stop(); });
    t.join();
}
