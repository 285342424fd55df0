// `qkd-kme demo DIR --relay [--relays N]`: a chain KME_A - KME_R - KME_C (or KME_A - KME_R1 - ... -
// KME_RN - KME_C) joined by emulated links, with static routes, so SAE_A (on KME_A) and SAE_C (on
// KME_C) share keys through trusted relays (docs/kme.md "Relay").
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/signal_set.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "demo_parts.hpp"
#include "qkd/common/encoding.hpp"
#include "qkd/common/rng.hpp"
#include "qkd/kme/config.hpp"
#include "qkd/kme/demo.hpp"
#include "qkd/kme/instance.hpp"
#include "qkd/kme/pki.hpp"
#include "qkd/kme/secrets_at_rest.hpp"

namespace qkd::kme {
namespace fs = std::filesystem;
using namespace demo_detail;

namespace {

struct Node {
    std::string kme, sae;
    std::uint16_t port = 0, mport = 0;
};

std::vector<Node> chain_of(const DemoOptions& o) {
    std::vector<Node> n{{"KME_A", "SAE_A"}};
    if (o.relays == 1) n.push_back({"KME_R", "SAE_R"});
    else
        for (int i = 1; i <= o.relays; ++i) n.push_back({fmt::format("KME_R{}", i), fmt::format("SAE_R{}", i)});
    n.push_back({"KME_C", "SAE_C"});
    return n;
}

std::string seed_file(const Node& a, const Node& b) { return fmt::format("pki/link_{}_{}.seed", lower(a.kme), lower(b.kme)); }

// KME i of the chain: its neighbours are [[peer]]s, every other KME a [[route]] via the neighbour
// towards it. A hop's sync_timeout grows with the hops behind it, so a relay answers (naming the
// failed hop) before the hop before it gives up.
std::string node_config(const std::vector<Node>& c, std::size_t i) {
    const auto& me = c[i];
    std::string s = fmt::format(R"(# qkd-kme relay demo configuration for {0} (written by `qkd-kme demo --relay`; paths are relative to this file)
[kme]
id = "{0}"
listen = "127.0.0.1:{1}"
cert = "pki/{2}.pem"
key = "pki/{2}.key"
ca = "pki/ca.pem"
state_db = "state/{2}.sqlite"
metrics_listen = "127.0.0.1:{3}"

[keys]
max_key_count = 100000
reservation_ttl = 300

[identity]
rule = "san_uri"
uri_prefix = "urn:qkd:sae:"

[[sae]]
id = "{4}"
)",
                                me.kme, me.port, lower(me.kme), me.mport, me.sae);
    auto peer = [&](std::size_t j) {
        const std::size_t behind = j > i ? c.size() - 1 - j : j;  // hops beyond that neighbour
        s += fmt::format(R"(
[[peer]]
kme_id = "{}"
url = "https://127.0.0.1:{}"
saes = ["{}"]
link_seed_file = "{}"
key_rate = 1000000
sync_timeout = {}
prefetch_keys = 0      # every Get key crosses the chain, so each hop's material count shows it
)",
                         c[j].kme, c[j].port, c[j].sae, seed_file(c[std::min(i, j)], c[std::max(i, j)]), 2 + behind);
    };
    if (i > 0) peer(i - 1);
    if (i + 1 < c.size()) peer(i + 1);
    for (std::size_t j = 0; j < c.size(); ++j) {
        if (j + 1 >= i && j <= i + 1) continue;  // itself and its neighbours
        s += fmt::format("\n[[route]]\nkme_id = \"{}\"\nvia = \"{}\"\nsaes = [\"{}\"]\n", c[j].kme, c[j < i ? i - 1 : i + 1].kme, c[j].sae);
    }
    return s;
}

}  // namespace

std::vector<std::string> prepare_relay_demo(DemoOptions o) {
    if (o.relays < 1 || o.relays > 4) throw std::invalid_argument(fmt::format("--relays takes 1 to 4, got {}", o.relays));
    fs::path dir = fs::absolute(o.dir);
    fs::path pki = dir / "pki";
    make_private_dirs(pki.string());
    make_private_dirs((dir / "state").string());
    fs::create_directories(dir / "site-a");
    fs::create_directories(dir / "site-c");
    auto c = chain_of(o);
    if (!fs::exists(pki / "ca.pem")) pki::make_ca(pki.string(), "qkdgate relay demo CA");
    for (const auto& n : c) {
        if (!fs::exists(pki / (lower(n.kme) + ".pem")))
            pki::make_leaf(pki.string(), lower(n.kme), {n.kme, {"DNS:localhost", "IP:127.0.0.1", fmt::format("URI:urn:qkd:kme:{}", n.kme)}, true});
        if (!fs::exists(pki / (lower(n.sae) + ".pem")))
            pki::make_leaf(pki.string(), lower(n.sae), {n.sae, {fmt::format("URI:urn:qkd:sae:{}", n.sae)}, false});
    }
    for (std::size_t i = 0; i + 1 < c.size(); ++i) {
        if (fs::exists(dir / seed_file(c[i], c[i + 1]))) continue;
        std::vector<std::uint8_t> seed(32);
        random_bytes(seed);
        write_private_file(dir / seed_file(c[i], c[i + 1]), hex_encode(seed) + "\n");
    }
    for (auto& n : c) {
        n.port = free_port();
        n.mport = free_port();
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < c.size(); ++i) {
        write_file(dir / (lower(c[i].kme) + ".toml"), node_config(c, i));
        out.push_back((dir / (lower(c[i].kme) + ".toml")).string());
    }
    write_file(dir / "site-a" / "qkdgate.toml", site_config("kme-a", c.front().port, c.front().sae, c.front().kme));
    write_file(dir / "site-c" / "qkdgate.toml", site_config("kme-c", c.back().port, c.back().sae, c.back().kme));
    return out;
}

int run_relay_demo(const DemoOptions& o) {
    auto files = prepare_relay_demo(o);
    fs::path dir = fs::absolute(o.dir);
    auto c = chain_of(o);
    boost::asio::io_context io;
    std::vector<std::unique_ptr<Instance>> kmes;
    for (const auto& f : files) kmes.push_back(std::make_unique<Instance>(io, load_config(f)));
    for (auto& k : kmes) k->start();
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](auto, int sig) {
        spdlog::info("demo: signal {}, stopping", sig);
        io.stop();
    });
    const unsigned nthreads = std::max(2u, std::thread::hardware_concurrency());
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < nthreads; ++i) threads.emplace_back([&] { io.run(); });
    bool ready = false;
    for (int i = 0; i < 100 && !ready && !io.stopped(); ++i) {
        ready = true;
        for (std::size_t k = 0; k < c.size() && ready; ++k)
            ready = probe(kmes[k]->api_port(), dir / "pki", lower(c[k].sae), k == 0 ? c.back().sae : c.front().sae);
        if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!ready) {
        spdlog::error("demo: the KMEs did not answer Get status over mTLS");
        io.stop();
        for (auto& t : threads) t.join();
        return 1;
    }
    nlohmann::json kj = nlohmann::json::array(), mj = nlohmann::json::array(), sj = nlohmann::json::array();
    for (std::size_t k = 0; k < c.size(); ++k) {
        kj.push_back({{"kme_id", c[k].kme}, {"url", fmt::format("https://127.0.0.1:{}", kmes[k]->api_port())}});
        mj.push_back({{"kme_id", c[k].kme}, {"url", fmt::format("http://127.0.0.1:{}/metrics", kmes[k]->metrics_port())}});
        sj.push_back({{"sae_id", c[k].sae}, {"kme_id", c[k].kme}, {"cert", "pki/" + lower(c[k].sae) + ".pem"},
                      {"key", "pki/" + lower(c[k].sae) + ".key"}});
    }
    nlohmann::json j = {{"ca", "pki/ca.pem"}, {"kmes", kj}, {"metrics", mj}, {"saes", sj},
                        {"sites", {{{"sae_id", "SAE_A"}, {"config", "site-a/qkdgate.toml"}}, {{"sae_id", "SAE_C"}, {"config", "site-c/qkdgate.toml"}}}}};
    write_file(dir / "demo.json.tmp", j.dump(2) + "\n");
    fs::rename(dir / "demo.json.tmp", dir / "demo.json");
    if (!o.quiet) {
        std::string chain;
        for (const auto& n : c) chain += (chain.empty() ? "" : " - ") + n.kme;
        const std::string d = dir.string();
        std::cout << fmt::format(R"(
qkd-kme relay demo is running: {0}   (SAE_A on KME_A, SAE_C on KME_C)   Details: {1}/demo.json

# SAE_A (master) gets a key for SAE_C, whose KME is reached through the relay(s)
curl --cacert {1}/pki/ca.pem --cert {1}/pki/sae_a.pem --key {1}/pki/sae_a.key -H 'Content-Type: application/json' -d '{{"number":1}}' https://127.0.0.1:{2}/api/v1/keys/SAE_C/enc_keys
# SAE_C (slave) fetches the same key from KME_C by its key_ID (paste the key_ID printed above)
curl --cacert {1}/pki/ca.pem --cert {1}/pki/sae_c.pem --key {1}/pki/sae_c.key "https://127.0.0.1:{3}/api/v1/keys/SAE_A/dec_keys?key_ID=KEY_ID"

Ctrl-C stops the demo.
)",
                                 chain, d, kmes.front()->api_port(), kmes.back()->api_port())
                  << std::flush;
    }
    for (auto& t : threads) t.join();
    return 0;
}

}  // namespace qkd::kme
