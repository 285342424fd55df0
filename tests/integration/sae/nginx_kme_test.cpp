// The SAE client against nginx (Debian nginx-light), a TLS/HTTP stack not written by this project,
// serving canned ETSI 014 answers over mTLS on 127.0.0.1. Also: a listener that never answers
// (timeouts), a KME certificate from another CA, a certificate that is not the pinned one, and a
// KME ID that does not match.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <utility>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <memory>

#include "qkd/common/encoding.hpp"
#include "qkd/sae/client.hpp"
#include "test_pki.hpp"
#include "test_process.hpp"

namespace qkd::sae {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using testing::Child;
using testing::Issued;
using testing::SilentListener;
using testing::TestCa;

constexpr const char* kNginx = "/usr/sbin/nginx";
// 32 bytes 0x00..0x1f and 16 bytes, in Base64.
constexpr const char* kKey256 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
constexpr const char* kKey128 = "AAECAwQFBgcICQoLDA0ODw==";
constexpr const char* kKeyId = "550e8400-e29b-41d4-a716-446655440000";

std::string keys_json(const std::string& id, const char* key) {
    return std::string(R"({"keys":[{"key_ID":")") + id + R"(","key":")" + key + R"("}]})";
}

// Everything the fixture starts, shared by all tests of the suite (nginx starts once).
struct World {
    fs::path dir;
    std::unique_ptr<TestCa> ca, other_ca;
    Issued kme, kme_other_ca, kme_second, kme_noip, sae_a, sae_foreign;
    std::uint16_t port_main = 0, port_other_ca = 0, port_second = 0, port_noip = 0;
    std::unique_ptr<SilentListener> silent;
    std::unique_ptr<Child> nginx;
    std::string skip_reason;

    std::string location(const std::string& path, const std::string& body) const {
        return "    location = " + path + " {\n" + body + "\n    }\n";
    }

    std::string server(std::uint16_t port, const Issued& cert) const {
        std::string s = "  server {\n    listen 127.0.0.1:" + std::to_string(port) + " ssl;\n";
        s += "    ssl_certificate " + cert.cert.string() + ";\n    ssl_certificate_key " + cert.key.string() + ";\n";
        s += "    ssl_client_certificate " + ca->cert_path().string() + ";\n    ssl_verify_client on;\n";
        s += "    ssl_protocols TLSv1.2 TLSv1.3;\n    keepalive_timeout 60s;\n    default_type application/json;\n";
        const std::string status = R"({"source_KME_ID":"KME_A","target_KME_ID":"KME_B","master_SAE_ID":"SAE_A",)"
                                   R"("slave_SAE_ID":"SAE_B","key_size":256,"stored_key_count":25000,)"
                                   R"("max_key_count":100000,"max_key_per_request":128,"max_key_size":1024,)"
                                   R"("min_key_size":64,"max_SAE_ID_count":0})";
        s += location("/api/v1/keys/SAE_B/status", "      return 200 '" + status + "';");
        // GET and POST forms answer with different (opaque, non-UUID) key_IDs so a test can tell
        // which form reached the server.
        s += location("/api/v1/keys/SAE_B/enc_keys",
                      "      if ($request_method = GET) { return 200 '" + keys_json("enc-get-$arg_number-$arg_size", kKey256) +
                          "'; }\n      return 200 '" + keys_json("enc-post", kKey256) + "';");
        s += location("/api/v1/keys/SAE_A/dec_keys",
                      "      if ($request_method = POST) { return 200 '" + keys_json(kKeyId, kKey256) + "'; }\n" +
                          "      if ($arg_key_ID = '" + kKeyId + "') { return 200 '" + keys_json(kKeyId, kKey256) + "'; }\n" +
                          "      return 400 '{\"message\":\"one or more keys specified are not found on KME\"}';");
        s += location("/api/v1/keys/SAE_400/enc_keys",
                      R"(      return 400 '{"message":"size shall be a multiple of 8","details":[{"size_requested":"13"}]}';)");
        s += location("/api/v1/keys/SAE_401/enc_keys", "      return 401;");
        s += location("/api/v1/keys/SAE_503/enc_keys",
                      R"(      return 503 '{"message":"Error on server side","details":[{"reason":"peer KME unreachable"}]}';)");
        s += location("/api/v1/keys/SAE_503/status",
                      R"(      return 503 '{"message":"Error on server side"}';)");
        s += location("/api/v1/keys/SAE_418/enc_keys", "      return 418 'teapot';");
        // A strict KME (not ours): Get status with the caller as its own slave is a bad request.
        s += location("/api/v1/keys/SAE_A/status",
                      R"(      return 400 '{"message":"slave_SAE_ID shall differ from the master SAE ID"}';)");
        s += location("/api/v1/keys/SAE_SHORT/enc_keys", "      return 200 '" + keys_json(kKeyId, kKey128) + "';");
        s += location("/api/v1/keys/SAE_TWO/enc_keys",
                      R"(      return 200 '{"keys":[{"key_ID":"a","key":")" + std::string(kKey256) +
                          R"("},{"key_ID":"b","key":")" + kKey256 + R"("}]}';)");
        s += location("/api/v1/keys/SAE_DUP/enc_keys",
                      R"(      return 200 '{"keys":[{"key_ID":"a","key":")" + std::string(kKey256) +
                          R"("},{"key_ID":"a","key":")" + kKey256 + R"("}]}';)");
        s += location("/api/v1/keys/SAE_HTML/status", "      default_type text/html;\n      return 200 '<html></html>';");
        s += location("/api/v1/keys/SAE_WRONGID/dec_keys", "      return 200 '" + keys_json("other-id", kKey256) + "';");
        // 444: nginx closes the connection without answering (the answer is "lost").
        s += location("/api/v1/keys/SAE_LOST/enc_keys", "      return 444;");
        s += location("/api/v1/keys/SAE_LOST/dec_keys", "      return 444;");
        // The request is forwarded to a listener that never answers: a KME that hangs.
        s += location("/api/v1/keys/SAE_SLOW/enc_keys", "      proxy_pass http://127.0.0.1:" +
                                                            std::to_string(silent->port()) + ";\n      proxy_read_timeout 60s;");
        s += "  }\n";
        return s;
    }

    void start() {
        if (::access(kNginx, X_OK) != 0) {
            skip_reason = std::string(kNginx) + " not installed (Debian package nginx-light)";
            return;
        }
        char tmpl[] = "/tmp/qkd-sae-nginx-XXXXXX";
        dir = ::mkdtemp(tmpl);
        ca = std::make_unique<TestCa>(dir, "TestKmeCa");
        other_ca = std::make_unique<TestCa>(dir, "OtherCa");
        kme = ca->issue("kme_a", "KME_A", {"DNS:localhost", "IP:127.0.0.1"});
        kme_second = ca->issue("kme_a2", "KME_A", {"DNS:localhost", "IP:127.0.0.1"});
        kme_noip = ca->issue("kme_noip", "KME_A", {"DNS:kme.example"});
        kme_other_ca = other_ca->issue("kme_evil", "KME_A", {"DNS:localhost", "IP:127.0.0.1"});
        sae_a = ca->issue("sae_a", "SAE_A", {"URI:urn:qkd:sae:SAE_A"});
        sae_foreign = other_ca->issue("sae_foreign", "SAE_A", {"URI:urn:qkd:sae:SAE_A"});
        silent = std::make_unique<SilentListener>();
        port_main = testing::free_port();
        port_other_ca = testing::free_port();
        port_second = testing::free_port();
        port_noip = testing::free_port();
        fs::create_directories(dir / "logs");
        std::ofstream conf(dir / "nginx.conf");
        conf << "daemon off;\nmaster_process off;\nworker_processes 1;\npid " << (dir / "nginx.pid").string() << ";\n"
             << "error_log " << (dir / "logs/error.log").string() << " warn;\n"
             << "events { worker_connections 64; }\nhttp {\n  access_log off;\n"
             << "  client_body_temp_path " << (dir / "tmp_body").string() << ";\n"
             << "  proxy_temp_path " << (dir / "tmp_proxy").string() << ";\n"
             << server(port_main, kme) << server(port_other_ca, kme_other_ca) << server(port_second, kme_second) << server(port_noip, kme_noip) << "}\n";
        conf.close();
        nginx = std::make_unique<Child>(
            std::vector<std::string>{kNginx, "-p", dir.string(), "-c", (dir / "nginx.conf").string()});
        for (auto port : {port_main, port_other_ca, port_second, port_noip})
            if (!testing::wait_for_port(port, 5s)) {
                std::ifstream log(dir / "logs/error.log");
                skip_reason = "nginx did not start: " + std::string(std::istreambuf_iterator<char>(log), {});
                return;
            }
    }

    ~World() {
        nginx.reset();
        if (!dir.empty()) fs::remove_all(dir);
    }

    Profile profile(std::uint16_t port) const {
        Profile p;
        p.name = "test";
        p.kme_url = *parse_kme_url("https://127.0.0.1:" + std::to_string(port));
        p.local_sae_id = "SAE_A";
        p.local_cert = sae_a.cert;
        p.local_key = sae_a.key;
        p.kme_ca_cert = ca->cert_path();
        p.timeout = 3s;
        p.key_size = 256;
        p.source_file = "(test)";
        return p;
    }
};

World* world = nullptr;

class NginxKme : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        world = new World();
        world->start();
    }
    static void TearDownTestSuite() {
        delete world;
        world = nullptr;
    }
    void SetUp() override {
        if (!world->skip_reason.empty()) GTEST_SKIP() << world->skip_reason;
    }
    static BlockingClient client(const Profile& p) {
        auto c = BlockingClient::create(p);
        if (!c) throw std::runtime_error("cannot create the client: " + describe(c.error()));
        return std::move(*c);
    }
};

TEST_F(NginxKme, GetStatusReturnsEveryFieldAndTlsDetails) {
    auto c = client(world->profile(world->port_main));
    auto r = c.get_status("SAE_B", true);
    ASSERT_TRUE(r) << describe(r.error());
    EXPECT_EQ(r->value.source_KME_ID, "KME_A");
    EXPECT_EQ(r->value.target_KME_ID, "KME_B");
    EXPECT_EQ(r->value.stored_key_count, 25000);
    EXPECT_EQ(r->value.max_key_per_request, 128);
    EXPECT_EQ(r->tls.version, "TLSv1.3");
    EXPECT_FALSE(r->tls.group.empty());
    EXPECT_NE(r->tls.peer_subject.find("KME_A"), std::string::npos);
    EXPECT_GT(r->connect_time.count(), 0);
    EXPECT_FALSE(r->reused_connection);
}

TEST_F(NginxKme, KeptAliveConnectionIsReused) {
    auto c = client(world->profile(world->port_main));
    auto r1 = c.get_status("SAE_B");
    ASSERT_TRUE(r1) << describe(r1.error());
    EXPECT_FALSE(r1->reused_connection);
    auto r2 = c.get_key({.slave_SAE_ID = "SAE_B"});
    ASSERT_TRUE(r2) << describe(r2.error());
    EXPECT_TRUE(r2->reused_connection);
    EXPECT_EQ(r2->connect_time.count(), 0);
}

TEST_F(NginxKme, ReconnectsWhenTheKmeClosedTheKeptAliveConnection) {
    auto c = client(world->profile(world->port_main));
    ASSERT_TRUE(c.get_status("SAE_B"));
    ASSERT_EQ(c.client().idle_connections(), 1u);
    // A 444 closes the connection without an answer; then a new call must open a new one.
    auto lost = c.get_key_with_ids({.master_SAE_ID = "SAE_LOST", .key_IDs = {kKeyId}});
    ASSERT_FALSE(lost);
    auto r = c.get_status("SAE_B");
    ASSERT_TRUE(r) << describe(r.error());
    EXPECT_FALSE(r->reused_connection);
    EXPECT_EQ(r->attempts, 1);
}

TEST_F(NginxKme, GetKeyPostAndGetForms) {
    auto c = client(world->profile(world->port_main));
    auto post = c.get_key({.slave_SAE_ID = "SAE_B", .number = 1, .size_bits = 256, .form = Form::post});
    ASSERT_TRUE(post) << describe(post.error());
    ASSERT_EQ(post->value.keys.size(), 1u);
    EXPECT_EQ(post->value.keys[0].key_ID, "enc-post");
    auto expected = base64_decode(kKey256);
    EXPECT_TRUE(ct_equal(post->value.keys[0].key.view(), *expected));

    auto get = c.get_key({.slave_SAE_ID = "SAE_B", .number = 1, .form = Form::get});
    ASSERT_TRUE(get) << describe(get.error());
    // nginx echoes the query parameters into the (opaque) key_ID: number=1, size=256 were sent.
    EXPECT_EQ(get->value.keys[0].key_ID, "enc-get-1-256");
}

TEST_F(NginxKme, GetKeyWithIdsPostAndGetForms) {
    auto c = client(world->profile(world->port_main));
    auto post = c.get_key_with_ids({.master_SAE_ID = "SAE_A", .key_IDs = {kKeyId}, .form = Form::post});
    ASSERT_TRUE(post) << describe(post.error());
    EXPECT_EQ(post->value.keys[0].key_ID, kKeyId);
    auto get = c.get_key_with_ids({.master_SAE_ID = "SAE_A", .key_IDs = {kKeyId}, .form = Form::get});
    ASSERT_TRUE(get) << describe(get.error());
    EXPECT_EQ(get->value.keys[0].key.size(), 32u);
    auto unknown = c.get_key_with_ids({.master_SAE_ID = "SAE_A", .key_IDs = {"nope"}, .form = Form::get});
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code, Errc::bad_request);
    ASSERT_TRUE(unknown.error().etsi);
    EXPECT_EQ(unknown.error().etsi->message, "one or more keys specified are not found on KME");
}

TEST_F(NginxKme, Http400CarriesTheEtsiBodyVerbatim) {
    auto c = client(world->profile(world->port_main));
    auto r = c.get_key({.slave_SAE_ID = "SAE_400"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::bad_request);
    EXPECT_EQ(r.error().http_status, 400);
    ASSERT_TRUE(r.error().etsi);
    EXPECT_EQ(r.error().etsi->message, "size shall be a multiple of 8");
    ASSERT_EQ(r.error().etsi->details.size(), 1u);
    EXPECT_EQ(r.error().etsi->details[0].name, "size_requested");
    EXPECT_EQ(r.error().attempts, 1);  // a 400 is never retried
    EXPECT_NE(describe(r.error()).find("size shall be a multiple of 8"), std::string::npos);
}

TEST_F(NginxKme, Http401IsUnauthorized) {
    auto c = client(world->profile(world->port_main));
    auto r = c.get_key({.slave_SAE_ID = "SAE_401"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::unauthorized);
    EXPECT_EQ(r.error().http_status, 401);
    EXPECT_FALSE(r.error().etsi);  // nginx's HTML page is not an ETSI body
}

TEST_F(NginxKme, Http503IsRetriedForEncKeysThenReported) {
    auto c = client(world->profile(world->port_main));
    auto r = c.get_key({.slave_SAE_ID = "SAE_503"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::server_error);
    EXPECT_EQ(r.error().attempts, kMaxAttempts);
    ASSERT_TRUE(r.error().etsi);
    EXPECT_EQ(r.error().etsi->message, "Error on server side");
    auto s = c.get_status("SAE_503");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, Errc::server_error);
}

TEST_F(NginxKme, UndefinedHttpStatusIsReported) {
    auto c = client(world->profile(world->port_main));
    auto r = c.get_key({.slave_SAE_ID = "SAE_418"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::http_status);
    EXPECT_EQ(r.error().http_status, 418);
}

TEST_F(NginxKme, AnswersThatBreakTheRequestAreRefused) {
    auto c = client(world->profile(world->port_main));
    auto shorter = c.get_key({.slave_SAE_ID = "SAE_SHORT"});
    ASSERT_FALSE(shorter);
    EXPECT_EQ(shorter.error().code, Errc::bad_answer);
    EXPECT_NE(shorter.error().message.find("128 bits; expected 256"), std::string::npos) << shorter.error().message;
    auto two = c.get_key({.slave_SAE_ID = "SAE_TWO"});
    ASSERT_FALSE(two);
    EXPECT_NE(two.error().message.find("has 2 keys; expected 1"), std::string::npos) << two.error().message;
    auto dup = c.get_key({.slave_SAE_ID = "SAE_DUP", .number = 2});
    ASSERT_FALSE(dup);
    EXPECT_NE(dup.error().message.find("appears twice"), std::string::npos) << dup.error().message;
    auto html = c.get_status("SAE_HTML");
    ASSERT_FALSE(html);
    EXPECT_NE(html.error().message.find("expected application/json"), std::string::npos) << html.error().message;
    auto wrong = c.get_key_with_ids({.master_SAE_ID = "SAE_WRONGID", .key_IDs = {kKeyId}});
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().message.find("missing from the answer"), std::string::npos) << wrong.error().message;
}

TEST_F(NginxKme, LostDecKeysAnswerIsReportedNotRetried) {
    auto c = client(world->profile(world->port_main));
    auto r = c.get_key_with_ids({.master_SAE_ID = "SAE_LOST", .key_IDs = {kKeyId}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::answer_lost);
    EXPECT_TRUE(r.error().key_may_be_consumed);
    EXPECT_EQ(r.error().attempts, 1);
    EXPECT_NE(r.error().message.find("key may be consumed"), std::string::npos);
}

TEST_F(NginxKme, LostEncKeysAnswerIsRetried) {
    auto c = client(world->profile(world->port_main));
    auto r = c.get_key({.slave_SAE_ID = "SAE_LOST"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::transport);
    EXPECT_EQ(r.error().attempts, kMaxAttempts);
    EXPECT_FALSE(r.error().key_may_be_consumed);
}

TEST_F(NginxKme, KmeThatNeverAnswersTimesOut) {
    auto p = world->profile(world->port_main);
    p.timeout = 400ms;
    auto c = client(p);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.get_key({.slave_SAE_ID = "SAE_SLOW"});
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::timeout);
    EXPECT_GE(took, 390ms);
    EXPECT_LT(took, 1500ms);
}

TEST_F(NginxKme, AsyncCallsOverlapOnOneIoContext) {
    boost::asio::io_context io;
    auto p = world->profile(world->port_main);
    p.timeout = 600ms;
    auto c = Client::create(io.get_executor(), p);
    ASSERT_TRUE(c) << describe(c.error());
    std::vector<std::string> order;
    // A call to a hanging KME path must not hold up the others on the same client.
    (*c)->async_get_key({.slave_SAE_ID = "SAE_SLOW"}, [&](KeysResult r) {
        order.push_back(r ? "slow-ok" : std::string("slow-") + std::string(errc_name(r.error().code)));
    });
    for (int i = 0; i < 6; ++i)
        (*c)->async_get_key({.slave_SAE_ID = "SAE_B"}, [&](KeysResult r) { order.push_back(r ? "ok" : describe(r.error())); });
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
            auto s = co_await (*c)->get_status("SAE_B");
            order.push_back(s ? "status-ok" : describe(s.error()));
        },
        boost::asio::detached);
    io.run();
    ASSERT_EQ(order.size(), 8u);
    EXPECT_EQ(order.back(), "slow-timeout");  // finished last, by its deadline
    EXPECT_EQ(std::count(order.begin(), order.end(), "ok"), 6);
    EXPECT_EQ(std::count(order.begin(), order.end(), "status-ok"), 1);
    EXPECT_GE((*c)->idle_connections(), 1u);
    EXPECT_LE((*c)->idle_connections(), kMaxIdleConnections);
}

TEST_F(NginxKme, TcpListenerThatNeverAnswersTimesOutInTheHandshake) {
    auto p = world->profile(world->silent->port());
    p.timeout = 300ms;
    auto c = client(p);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.get_status("SAE_B");
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::timeout);
    EXPECT_NE(r.error().message.find("TLS handshake"), std::string::npos) << r.error().message;
    EXPECT_LT(took, 1500ms);
}

TEST_F(NginxKme, ConnectionRefusedIsRetriedThenReported) {
    auto p = world->profile(testing::free_port());
    auto c = client(p);
    auto r = c.get_status("SAE_B");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::connect);
    EXPECT_EQ(r.error().attempts, kMaxAttempts);
}

TEST_F(NginxKme, KmeCertificateFromAnotherCaIsRefused) {
    auto c = client(world->profile(world->port_other_ca));
    auto r = c.get_status("SAE_B");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::tls);
    EXPECT_NE(r.error().message.find("refused"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().attempts, 1);
}

TEST_F(NginxKme, KmeCertificateNotMatchingThePinIsRefused) {
    auto p = world->profile(world->port_second);  // same CA, same CN, another certificate
    p.kme_cert = world->kme.cert;
    auto c = client(p);
    auto r = c.get_status("SAE_B");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::identity);
    EXPECT_NE(r.error().message.find("pinned"), std::string::npos) << r.error().message;
    // The pinned server is accepted with the same pin.
    auto pinned = world->profile(world->port_main);
    pinned.kme_cert = world->kme.cert;
    pinned.kme_id = "KME_A";
    auto c2 = client(pinned);
    auto r2 = c2.get_status("SAE_B");
    EXPECT_TRUE(r2) << describe(r2.error());
}

TEST_F(NginxKme, UnexpectedKmeIdIsRefused) {
    auto p = world->profile(world->port_main);
    p.kme_id = "KME_Z";
    auto c = client(p);
    auto r = c.get_status("SAE_B");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::identity);
    EXPECT_NE(r.error().message.find("KME_Z"), std::string::npos);
}

TEST_F(NginxKme, HostNameUrlIsResolvedAndVerified) {
    auto p = world->profile(world->port_main);
    p.kme_url = *parse_kme_url("https://localhost:" + std::to_string(world->port_main));
    auto c = client(p);
    auto r = c.get_status("SAE_B");
    EXPECT_TRUE(r) << describe(r.error());
}

TEST_F(NginxKme, KmeCertificateForAnotherHostIsRefused) {
    auto c = client(world->profile(world->port_noip));  // its certificate names only kme.example
    auto r = c.get_status("SAE_B");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::tls);
    EXPECT_NE(r.error().message.find("mismatch"), std::string::npos) << r.error().message;
}

TEST_F(NginxKme, UnresolvableHostIsReported) {
    auto p = world->profile(world->port_main);
    p.kme_url = *parse_kme_url("https://no-such-kme.invalid:" + std::to_string(world->port_main));
    auto c = client(p);
    auto r = c.get_status("SAE_B");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::resolve);
}

TEST_F(NginxKme, ClientCertificateFromAnotherCaIsRejectedByTheKme) {
    auto p = world->profile(world->port_main);
    p.local_cert = world->sae_foreign.cert;
    p.local_key = world->sae_foreign.key;
    auto c = client(p);
    auto r = c.get_status("SAE_B");
    ASSERT_FALSE(r);
    // nginx finishes the handshake, then answers 400 with an HTML page.
    EXPECT_EQ(r.error().code, Errc::bad_request);
    EXPECT_FALSE(r.error().etsi);
}

TEST_F(NginxKme, MissingCertificateFileNamesTheKey) {
    auto p = world->profile(world->port_main);
    p.local_cert = world->dir / "nope.pem";
    auto c = BlockingClient::create(p);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, Errc::config);
    EXPECT_NE(c.error().message.find("local_cert"), std::string::npos);
    EXPECT_NE(c.error().message.find("nope.pem"), std::string::npos);
}

#ifdef QKDGATE_BIN
// ---- the qkdgate CLI against the same nginx KME -------------------------------------------------

struct Run {
    int exit_code = -1;
    std::string out;
};

Run qkdgate(const std::string& args) {
    const std::string cmd = std::string(QKDGATE_BIN) + " -c " + (world->dir / "site" / "qkdgate.toml").string() + " " + args + " 2>&1";
    Run r;
    FILE* f = ::popen(cmd.c_str(), "r");
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
    const int st = ::pclose(f);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

class NginxKmeCli : public NginxKme {
protected:
    void SetUp() override {
        NginxKme::SetUp();
        if (IsSkipped()) return;
        fs::create_directories(world->dir / "site");
        std::ofstream conf(world->dir / "site" / "qkdgate.toml");
        // Paths relative to the config file's folder, as qkd-kme demo writes them.
        conf << "[daemon]\nlog_level = \"info\"\n\n[[qkd_profile]]\nname = \"kme-a\"\n"
             << "kme_url = \"https://127.0.0.1:" << world->port_main << "\"\n"
             << "local_sae_id = \"SAE_A\"\nlocal_cert = \"../sae_a.pem\"\nlocal_key = \"../sae_a.key\"\n"
             << "kme_ca_cert = \"../TestKmeCa_ca.pem\"\nkme_cert = \"../kme_a.pem\"\nkme_id = \"KME_A\"\n"
             << "timeout = 3\nkey_size = 256\n";
    }
};

TEST_F(NginxKmeCli, ShowQkdListsProfilesAndCertificates) {
    auto r = qkdgate("show qkd --json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["profiles"].size(), 1u);
    EXPECT_EQ(j["profiles"][0]["name"], "kme-a");
    EXPECT_EQ(j["profiles"][0]["local_cert"]["subject"], "CN=SAE_A");
    EXPECT_EQ(j["profiles"][0]["kme_ca_cert"]["subject"], "CN=TestKmeCa");
    EXPECT_FALSE(j["profiles"][0]["local_cert"]["expired"].get<bool>());
    auto text = qkdgate("show qkd");
    EXPECT_EQ(text.exit_code, 0);
    EXPECT_NE(text.out.find("CN=SAE_A"), std::string::npos) << text.out;
}

TEST_F(NginxKmeCli, ConnectivityPrintsStatusTlsAndTimes) {
    auto r = qkdgate("test qkd connectivity kme-a --peer-sae-id SAE_B --json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["ok"].get<bool>());
    EXPECT_EQ(j["status"]["source_KME_ID"], "KME_A");
    EXPECT_EQ(j["status"]["max_SAE_ID_count"], 0);
    EXPECT_EQ(j["tls"]["version"], "TLSv1.3");
    EXPECT_GT(j["round_trip_ms"].get<double>(), 0.0);
    auto text = qkdgate("test qkd connectivity kme-a --peer-sae-id SAE_B");
    EXPECT_EQ(text.exit_code, 0);
    EXPECT_NE(text.out.find("stored_key_count"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("TLS group"), std::string::npos) << text.out;
}

// Issue 16 step 9: with no peer SAE ID anywhere, a strict KME's 400 to a status request naming the
// caller as its own slave is not a connectivity failure: TLS and HTTP are reported alone.
TEST_F(NginxKmeCli, ConnectivityWithoutPeerChecksTlsAndHttpAlone) {
    auto r = qkdgate("test qkd connectivity kme-a --json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["ok"].get<bool>());
    EXPECT_FALSE(j["status_checked"].get<bool>());
    EXPECT_EQ(j["http_status"], 400);
    EXPECT_NE(j["note"].get<std::string>().find("needs a peer SAE ID"), std::string::npos);
    auto text = qkdgate("test qkd connectivity kme-a");
    EXPECT_EQ(text.exit_code, 0) << text.out;
    EXPECT_NE(text.out.find("Get status not checked"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("shall differ"), std::string::npos) << text.out;
}

// Without --peer-sae-id, every peer of the gateways that use the profile is asked; one failing
// peer makes the test fail (exit 1) and says which.
TEST_F(NginxKmeCli, ConnectivityAsksThePeersOfTheGatewaysUsingTheProfile) {
    {
        std::ofstream conf(world->dir / "site" / "qkdgate.toml", std::ios::app);
        conf << "\n[[gateway]]\nname = \"to-b\"\nqkd = { profile = \"kme-a\", peer_sae_id = \"SAE_B\" }\n"
             << "\n[[gateway]]\nname = \"to-b-again\"\nqkd = { profile = \"kme-a\", peer_sae_id = \"SAE_B\" }\n";
    }
    auto one = qkdgate("test qkd connectivity kme-a --json");
    ASSERT_EQ(one.exit_code, 0) << one.out;
    auto j = nlohmann::json::parse(one.out);
    ASSERT_EQ(j["statuses"].size(), 1u) << "a peer named twice is asked once";
    EXPECT_EQ(j["status"]["slave_SAE_ID"], "SAE_B");
    {
        std::ofstream conf(world->dir / "site" / "qkdgate.toml", std::ios::app);
        conf << "\n[[gateway]]\nname = \"to-503\"\nqkd = { profile = \"kme-a\", peer_sae_id = \"SAE_503\" }\n";
    }
    auto two = qkdgate("test qkd connectivity kme-a --json");
    EXPECT_EQ(two.exit_code, 1) << two.out;
    auto k = nlohmann::json::parse(two.out);
    EXPECT_FALSE(k["ok"].get<bool>());
    ASSERT_EQ(k["statuses"].size(), 2u);
    EXPECT_TRUE(k["statuses"][0]["ok"].get<bool>());
    EXPECT_EQ(k["statuses"][1]["slave_SAE_ID"], "SAE_503");
    EXPECT_EQ(k["statuses"][1]["error"]["http_status"], 503);
}

TEST_F(NginxKmeCli, GetKeyHidesKeyUnlessAsked) {
    auto hidden = qkdgate("test qkd get-key --profile kme-a --peer-sae-id SAE_B");
    ASSERT_EQ(hidden.exit_code, 0) << hidden.out;
    EXPECT_NE(hidden.out.find("key_ID enc-post"), std::string::npos) << hidden.out;
    EXPECT_NE(hidden.out.find("(hidden)"), std::string::npos);
    EXPECT_EQ(hidden.out.find(kKey256), std::string::npos);
    auto shown = qkdgate("test qkd get-key --profile kme-a --peer-sae-id SAE_B --show-key --json");
    ASSERT_EQ(shown.exit_code, 0) << shown.out;
    auto j = nlohmann::json::parse(shown.out);
    EXPECT_EQ(j["keys"][0]["key"], kKey256);
    auto get = qkdgate("test qkd get-key --profile kme-a --peer-sae-id SAE_B --get --json");
    ASSERT_EQ(get.exit_code, 0) << get.out;
    EXPECT_EQ(nlohmann::json::parse(get.out)["keys"][0]["key_ID"], "enc-get-1-256");
    EXPECT_FALSE(nlohmann::json::parse(get.out)["keys"][0].contains("key"));
}

TEST_F(NginxKmeCli, GetKeyWithId) {
    auto r = qkdgate(std::string("test qkd get-key-with-id --profile kme-a --peer-sae-id SAE_A --show-key --json ") + kKeyId);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["keys"][0]["key_ID"], kKeyId);
    EXPECT_EQ(j["keys"][0]["key"], kKey256);
}

TEST_F(NginxKmeCli, ErrorsSayWhatFailedWithExitCodes) {
    auto etsi = qkdgate("test qkd get-key --profile kme-a --peer-sae-id SAE_400 --json");
    EXPECT_EQ(etsi.exit_code, 1) << etsi.out;
    auto j = nlohmann::json::parse(etsi.out);
    EXPECT_EQ(j["error"]["code"], "bad_request");
    EXPECT_EQ(j["error"]["http_status"], 400);
    EXPECT_EQ(j["error"]["etsi"]["message"], "size shall be a multiple of 8");
    auto text = qkdgate("test qkd get-key --profile kme-a --peer-sae-id SAE_503");
    EXPECT_EQ(text.exit_code, 1);
    EXPECT_NE(text.out.find("HTTP 503"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("peer KME unreachable"), std::string::npos) << text.out;
    auto lost = qkdgate(std::string("test qkd get-key-with-id --profile kme-a --peer-sae-id SAE_LOST ") + kKeyId);
    EXPECT_EQ(lost.exit_code, 1);
    EXPECT_NE(lost.out.find("key may be consumed"), std::string::npos) << lost.out;
    auto missing = qkdgate("test qkd connectivity nope");
    EXPECT_EQ(missing.exit_code, 2);
    EXPECT_NE(missing.out.find("expected one of: \"kme-a\""), std::string::npos) << missing.out;
}
#endif

}  // namespace
}  // namespace qkd::sae
