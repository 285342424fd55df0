#include "qkd/kme/demo.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "qkd/common/encoding.hpp"
#include "qkd/common/rng.hpp"
#include "qkd/kme/instance.hpp"
#include "qkd/kme/pki.hpp"
#include "qkd/kme/secrets_at_rest.hpp"
#include "demo_parts.hpp"

namespace qkd::kme {
namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace demo_detail {

std::uint16_t free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

// A secret: created with mode 0600, never readable by others for a moment.
void write_private_file(const fs::path& p, const std::string& text) {
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw std::runtime_error(fmt::format("cannot write {}: {}", p.string(), std::strerror(errno)));
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    if (!ok) throw std::runtime_error("cannot write " + p.string());
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + p.string());
}

std::string kme_config(const std::string& self, std::uint16_t port, std::uint16_t mport, const std::vector<std::string>& saes,
                       const std::string& peer, std::uint16_t peer_port, const std::vector<std::string>& peer_saes) {
    std::string lower = self == "KME_A" ? "kme_a" : "kme_b";
    std::string s = fmt::format(R"(# qkd-kme demo configuration for {0} (written by `qkd-kme demo`; paths are relative to this file)
[kme]
id = "{0}"
listen = "127.0.0.1:{1}"
cert = "pki/{2}.pem"
key = "pki/{2}.key"
ca = "pki/ca.pem"
state_db = "state/{2}.sqlite"
metrics_listen = "127.0.0.1:{3}"
tls_groups = ["X25519MLKEM768", "X25519", "P-256"]

[keys]
default_key_size = 256
min_key_size = 64
max_key_size = 1024
max_key_per_request = 128
max_key_count = 100000
max_SAE_ID_count = 4
reservation_ttl = 300

[identity]
rule = "san_uri"
uri_prefix = "urn:qkd:sae:"
)",
                                self, port, lower, mport);
    for (const auto& sae : saes) s += fmt::format("\n[[sae]]\nid = \"{}\"\n", sae);
    std::string list;
    for (const auto& p : peer_saes) list += (list.empty() ? "" : ", ") + fmt::format("\"{}\"", p);
    s += fmt::format(R"(
[[peer]]
kme_id = "{}"
url = "https://127.0.0.1:{}"
saes = [{}]
link_seed_file = "pki/link_ab.seed"
key_rate = 1000000   # secret key rate of the emulated link, bits/s (metro 10 km)
sync_timeout = 2
prefetch_keys = 256   # key IDs reserved on the peer ahead of requests (0 = off)
)",
                     peer, peer_port, list);
    return s;
}

std::string lower(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

std::string site_config(const std::string& profile, std::uint16_t port, const std::string& sae, const std::string& kme) {
    const std::string s = lower(sae), k = lower(kme);
    return fmt::format(R"(# qkdgate gateway configuration for the demo site of {2} (written by `qkd-kme demo`)
[[qkd_profile]]
name = "{0}"
kme_url = "https://127.0.0.1:{1}"
local_sae_id = "{2}"
local_cert = "../pki/{3}.pem"
local_key = "../pki/{3}.key"
kme_ca_cert = "../pki/ca.pem"
kme_cert = "../pki/{4}.pem"
kme_id = "{5}"
timeout = 10
key_size = 256
)",
                       profile, port, sae, s, k, kme);
}

// One real mTLS Get status, as an SAE would do it; true when the KME answers 200.
bool probe(std::uint16_t port, const fs::path& pki, const std::string& sae_file, const std::string& slave) {
    try {
        asio::io_context io;
        asio::ssl::context ctx(asio::ssl::context::tls_client);
        ctx.load_verify_file((pki / "ca.pem").string());
        ctx.use_certificate_chain_file((pki / (sae_file + ".pem")).string());
        ctx.use_private_key_file((pki / (sae_file + ".key")).string(), asio::ssl::context::pem);
        ctx.set_verify_mode(asio::ssl::verify_peer);
        beast::ssl_stream<beast::tcp_stream> s(io, ctx);
        beast::get_lowest_layer(s).expires_after(std::chrono::seconds(2));
        beast::get_lowest_layer(s).connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        s.handshake(asio::ssl::stream_base::client);
        http::request<http::empty_body> req{http::verb::get, fmt::format("/api/v1/keys/{}/status", slave), 11};
        req.set(http::field::host, "127.0.0.1");
        http::write(s, req);
        beast::flat_buffer b;
        http::response<http::string_body> res;
        http::read(s, b, res);
        return res.result() == http::status::ok;
    } catch (const std::exception& e) {
        spdlog::debug("demo probe: {}", e.what());
        return false;
    }
}

}  // namespace demo_detail

using namespace demo_detail;

std::pair<std::string, std::string> prepare_demo(const DemoOptions& o) {
    fs::path dir = fs::absolute(o.dir);
    fs::path pki = dir / "pki";
    // The PKI folder holds private keys and the link seed, the state folder the databases:
    // owner-only (secrets_at_rest.hpp).
    make_private_dirs(pki.string());
    make_private_dirs((dir / "state").string());
    fs::create_directories(dir / "site-a");
    fs::create_directories(dir / "site-b");
    if (!fs::exists(pki / "ca.pem")) {
        spdlog::info("demo: creating test PKI in {}", pki.string());
        pki::make_ca(pki.string(), "qkdgate demo CA");
        for (auto [name, cn] : {std::pair{"kme_a", "KME_A"}, std::pair{"kme_b", "KME_B"}})
            pki::make_leaf(pki.string(), name, {cn, {"DNS:localhost", "IP:127.0.0.1", fmt::format("URI:urn:qkd:kme:{}", cn)}, true});
        for (auto [name, cn] : {std::pair{"sae_a", "SAE_A"}, std::pair{"sae_b", "SAE_B"}, std::pair{"sae_c", "SAE_C"}})
            pki::make_leaf(pki.string(), name, {cn, {fmt::format("URI:urn:qkd:sae:{}", cn)}, false});
    }
    if (!fs::exists(pki / "link_ab.seed")) {
        std::vector<std::uint8_t> seed(32);
        random_bytes(seed);
        write_private_file(pki / "link_ab.seed", hex_encode(seed) + "\n");
    }
    const std::uint16_t pa = o.port_a ? o.port_a : free_port(), pb = o.port_b ? o.port_b : free_port();
    const std::uint16_t ma = free_port(), mb = free_port();
    write_file(dir / "kme_a.toml", kme_config("KME_A", pa, ma, {"SAE_A", "SAE_C"}, "KME_B", pb, {"SAE_B"}));
    write_file(dir / "kme_b.toml", kme_config("KME_B", pb, mb, {"SAE_B"}, "KME_A", pa, {"SAE_A", "SAE_C"}));
    write_file(dir / "site-a" / "qkdgate.toml", site_config("kme-a", pa, "SAE_A", "KME_A"));
    write_file(dir / "site-b" / "qkdgate.toml", site_config("kme-b", pb, "SAE_B", "KME_B"));
    return {(dir / "kme_a.toml").string(), (dir / "kme_b.toml").string()};
}

int run_demo(const DemoOptions& o) {
    auto [ca, cb] = prepare_demo(o);
    fs::path dir = fs::absolute(o.dir);
    asio::io_context io;
    Instance a(io, load_config(ca));
    Instance b(io, load_config(cb));
    a.start();
    b.start();
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](auto, int sig) {
        spdlog::info("demo: signal {}, stopping", sig);
        io.stop();
    });
    const unsigned n = std::max(2u, std::thread::hardware_concurrency());
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < n; ++i) threads.emplace_back([&] { io.run(); });

    bool ready = false;
    for (int i = 0; i < 100 && !ready && !io.stopped(); ++i) {
        ready = probe(a.api_port(), dir / "pki", "sae_a", "SAE_B") && probe(b.api_port(), dir / "pki", "sae_b", "SAE_A");
        if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!ready) {
        spdlog::error("demo: the KMEs did not answer Get status over mTLS");
        io.stop();
        for (auto& t : threads) t.join();
        return 1;
    }
    nlohmann::json j = {
        {"ca", "pki/ca.pem"},
        {"kmes", {{{"kme_id", "KME_A"}, {"url", fmt::format("https://127.0.0.1:{}", a.api_port())}},
                  {{"kme_id", "KME_B"}, {"url", fmt::format("https://127.0.0.1:{}", b.api_port())}}}},
        {"metrics", {{{"kme_id", "KME_A"}, {"url", fmt::format("http://127.0.0.1:{}/metrics", a.metrics_port())}},
                     {{"kme_id", "KME_B"}, {"url", fmt::format("http://127.0.0.1:{}/metrics", b.metrics_port())}}}},
        {"saes", {{{"sae_id", "SAE_A"}, {"kme_id", "KME_A"}, {"cert", "pki/sae_a.pem"}, {"key", "pki/sae_a.key"}},
                  {{"sae_id", "SAE_B"}, {"kme_id", "KME_B"}, {"cert", "pki/sae_b.pem"}, {"key", "pki/sae_b.key"}},
                  {{"sae_id", "SAE_C"}, {"kme_id", "KME_A"}, {"cert", "pki/sae_c.pem"}, {"key", "pki/sae_c.key"}}}},
        {"sites", {{{"sae_id", "SAE_A"}, {"config", "site-a/qkdgate.toml"}}, {{"sae_id", "SAE_B"}, {"config", "site-b/qkdgate.toml"}}}}};
    write_file(dir / "demo.json.tmp", j.dump(2) + "\n");
    fs::rename(dir / "demo.json.tmp", dir / "demo.json");  // readers never see a half-written file

    if (!o.quiet) {
        const std::string d = dir.string();
        const std::string sa = fmt::format("--cacert {0}/pki/ca.pem --cert {0}/pki/sae_a.pem --key {0}/pki/sae_a.key", d);
        const std::string sb = fmt::format("--cacert {0}/pki/ca.pem --cert {0}/pki/sae_b.pem --key {0}/pki/sae_b.key", d);
        std::cout << fmt::format(R"(
qkd-kme demo is running: KME_A https://127.0.0.1:{0} (SAE_A, SAE_C)  KME_B https://127.0.0.1:{1} (SAE_B)
Metrics: http://127.0.0.1:{2}/metrics  http://127.0.0.1:{3}/metrics    Details: {4}/demo.json

# SAE_A asks KME_A for the status of its link to SAE_B
curl {5} https://127.0.0.1:{0}/api/v1/keys/SAE_B/status
# SAE_A (master) gets a 256-bit key for SAE_B
curl {5} -H 'Content-Type: application/json' -d '{{"number":1,"size":256}}' https://127.0.0.1:{0}/api/v1/keys/SAE_B/enc_keys
# SAE_B (slave) fetches the same key from KME_B by its key_ID (paste the key_ID printed above)
curl {6} "https://127.0.0.1:{1}/api/v1/keys/SAE_A/dec_keys?key_ID=KEY_ID"
# the same with the gateway CLI
qkdgate -c {4}/site-a/qkdgate.toml test qkd get-key --profile kme-a --peer-sae-id SAE_B --show-key
qkdgate -c {4}/site-b/qkdgate.toml test qkd get-key-with-id --profile kme-b --peer-sae-id SAE_A --show-key KEY_ID

Ctrl-C stops the demo.
)",
                                 a.api_port(), b.api_port(), a.metrics_port(), b.metrics_port(), d, sa, sb)
                  << std::flush;
    }
    for (auto& t : threads) t.join();
    return 0;
}

}  // namespace qkd::kme
