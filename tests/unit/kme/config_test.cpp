#include <gtest/gtest.h>

#include <thread>

#include "qkd/kme/affinity.hpp"
#include "qkd/kme/config.hpp"
#include "test_util.hpp"

using qkd::kme::ConfigError;
using qkd::kme::parse_config;

namespace {
const char* kGood = R"(
[kme]
id = "KME_A"
listen = "127.0.0.1:8443"
cert = "pki/a.pem"
key = "pki/a.key"
ca = "pki/ca.pem"
state_db = "state/a.db"
[[sae]]
id = "SAE_A"
[[peer]]
kme_id = "KME_B"
url = "https://127.0.0.1:9443"
saes = ["SAE_B"]
link_seed_file = "seed"
key_rate = 5000
outages = [{ start = 10, duration = 5, every = 60 }]
)";

// kGood with one more line in its [kme] table.
std::string with_kme_key(const std::string& line) {
    std::string t = kGood;
    return t.replace(t.find("[kme]\n"), 6, "[kme]\n" + line + "\n");
}

std::string error_of(const std::string& text) {
    try {
        parse_config(text, "/etc/kme/a.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST(KmeConfig, ParsesAndResolvesPathsRelativeToTheFile) {
    auto c = parse_config(kGood, "/etc/kme/a.toml");
    EXPECT_EQ(c.kme_id, "KME_A");
    EXPECT_EQ(c.listen_port, 8443);
    EXPECT_EQ(c.cert, "/etc/kme/pki/a.pem");
    EXPECT_EQ(c.limits.default_key_size, 256);
    ASSERT_EQ(c.peers.size(), 1u);
    EXPECT_EQ(c.peers[0].link.seed_file, "/etc/kme/seed");
    EXPECT_DOUBLE_EQ(c.peers[0].link.key_rate_bps, 5000);
    ASSERT_EQ(c.peers[0].link.outages.size(), 1u);
    EXPECT_DOUBLE_EQ(c.peers[0].link.outages[0].every_s, 60);
    EXPECT_EQ(c.peers[0].prefetch_keys, 256u);  // on by default from TOML
    auto off = parse_config(std::string(kGood).replace(std::string(kGood).find("key_rate = 5000"), 15, "key_rate = 5000\nprefetch_keys = 0"),
                            "/etc/kme/a.toml");
    EXPECT_EQ(off.peers[0].prefetch_keys, 0u);
}

TEST(KmeConfig, ErrorsNameFileKeyAndExpectation) {
    struct Case {
        std::string text, expect;
    } cases[] = {
        {"[kme\n", "/etc/kme/a.toml:1"},
        {std::string(kGood) + "\n[extra]\n", "key 'extra': unknown key"},
        {std::string(kGood).replace(std::string(kGood).find("127.0.0.1:8443"), 14, "localhost"), "key 'kme.listen': expected HOST:PORT"},
        {std::string(kGood).replace(std::string(kGood).find("key_rate = 5000"), 15, "key_rate = \"fast\""), "key 'peer[0].key_rate': must be a number"},
        {std::string(kGood) + "\n[keys]\ndefault_key_size = 100\n", "key 'keys.default_key_size': must be a multiple of 8"},
        {std::string(kGood) + "\n[keys]\nmax_key_per_request = 0\n", "key 'keys.max_key_per_request': must be between 1 and 1024"},
        {std::string(kGood) + "\n[identity]\nrule = \"serial\"\n", "expected san_uri, san_dns, cn or fingerprint"},
        {std::string(kGood) + "\n[[sae]]\nid = \"SAE_B\"\n", "SAE ID \"SAE_B\" is already attached"},
        {std::string(kGood).replace(std::string(kGood).find("https://"), 8, "http://"), "key 'peer[0].url': expected https://"},
        {std::string(kGood).replace(std::string(kGood).find("key_rate = 5000"), 15, "key_rate = 5000\nprefetch_keys = 5000"),
         "key 'peer[0].prefetch_keys': must be between 0 and 4096"},
        {std::string(kGood).replace(std::string(kGood).find("key_rate = 5000"), 15, "key_rate = 5000\nprefetch_keys = -1"),
         "key 'peer[0].prefetch_keys'"},
        {with_kme_key("state_sync = \"always\""),
         "key 'kme.state_sync': expected \"normal\" (survives kill -9) or \"full\" (fsync every commit; survives a power loss), got \"always\""},
        {with_kme_key("max_connections = 0"), "key 'kme.max_connections': must be between 1 and 1000000, got 0"},
        {with_kme_key("cpu_affinity = 0"), "key 'kme.cpu_affinity': must be a non-empty array of CPU numbers"},
        {with_kme_key("cpu_affinity = []"), "key 'kme.cpu_affinity': must be a non-empty array of CPU numbers"},
        {with_kme_key("cpu_affinity = [0, -1]"), "key 'kme.cpu_affinity': must be an array of CPU numbers 0-1023, got -1"},
        {with_kme_key("cpu_affinity = [1024]"), "key 'kme.cpu_affinity': must be an array of CPU numbers 0-1023, got 1024"},
        {with_kme_key("cpu_affinity = [\"0\"]"), "key 'kme.cpu_affinity': must be an array of CPU numbers 0-1023, got '0'"},
        {with_kme_key("cpu_affinity = [0.5]"), "key 'kme.cpu_affinity': must be an array of CPU numbers 0-1023, got 0.5"},
    };
    for (const auto& c : cases) {
        auto e = error_of(c.text);
        EXPECT_NE(e.find(c.expect), std::string::npos) << "expected \"" << c.expect << "\" in \"" << e << "\"";
        EXPECT_NE(e.find("/etc/kme/a.toml"), std::string::npos) << e;
    }
}

TEST(KmeConfig, KeyDirTakesAPeerLinkFromKeyFilesInsteadOfASeed) {
    // kGood's [[peer]] with key_dir instead of the emulation keys.
    std::string files = kGood;
    files.replace(files.find("link_seed_file"), std::string::npos, "key_dir = \"keys/ab\"\n");
    auto c = parse_config(files, "/etc/kme/a.toml");
    ASSERT_EQ(c.peers.size(), 1u);
    EXPECT_EQ(c.peers[0].link.key_dir, "/etc/kme/keys/ab");
    EXPECT_EQ(c.peers[0].link.seed_file, "");
    EXPECT_EQ(c.peers[0].prefetch_keys, 0u);  // no stock of scarce real keys unless asked for
    EXPECT_EQ(parse_config(files + "prefetch_keys = 16\n", "/etc/kme/a.toml").peers[0].prefetch_keys, 16u);
    EXPECT_EQ(parse_config(kGood, "/etc/kme/a.toml").peers[0].link.key_dir, "");
    for (const char* k : {"link_seed_file = \"seed\"", "key_rate = 5000", "start_full = false", "outages = []"}) {
        auto e = error_of(files + k + "\n");
        const std::string key = std::string(k).substr(0, std::string(k).find(' '));
        EXPECT_NE(e.find("/etc/kme/a.toml: key 'peer[0]." + key + "': cannot be combined with 'key_dir'"), std::string::npos) << e;
    }
    EXPECT_NE(error_of(files + "\n[local_link]\nkey_dir = \"x\"\n").find("key 'local_link.key_dir': unknown key"), std::string::npos);
    EXPECT_NE(error_of(std::string(files).replace(files.find("\"keys/ab\""), 9, "\"\"")).find("key 'peer[0].key_dir': must be a non-empty path"),
              std::string::npos);
    EXPECT_NE(error_of(std::string(files).replace(files.find("\"keys/ab\""), 9, "7")).find("key 'peer[0].key_dir': must be a string"),
              std::string::npos);    // Which way the files go.
    EXPECT_EQ(c.peers[0].link.key_dir_direction, qkd::kme::KeyDirDirection::Both);
    EXPECT_EQ(parse_config(files + "key_dir_direction = \"outgoing\"\n", "/etc/kme/a.toml").peers[0].link.key_dir_direction, qkd::kme::KeyDirDirection::Outgoing);
    EXPECT_EQ(parse_config(files + "key_dir_direction = \"incoming\"\n", "/etc/kme/a.toml").peers[0].link.key_dir_direction, qkd::kme::KeyDirDirection::Incoming);
    auto e = error_of(files + "key_dir_direction = \"out\"\n");
    EXPECT_NE(e.find("/etc/kme/a.toml: key 'peer[0].key_dir_direction': expected \"both\""), std::string::npos) << e;
    EXPECT_NE(e.find("got \"out\""), std::string::npos) << e;
    e = error_of(std::string(kGood) + "key_dir_direction = \"outgoing\"\n");
    EXPECT_NE(e.find("key 'peer[0].key_dir_direction': applies to key files only"), std::string::npos) << e;
}

TEST(KmeConfig, EachKeyDirIsAFolderOfItsOwn) {
    // Two links on one folder, or a folder that also holds the KME's own files, would take the same
    // (or non-key) bytes as key material: refused, naming the file, the key and what was expected.
    namespace fs = std::filesystem;
    const fs::path d = kmetest::temp_dir("keydirs");
    fs::create_directories(d / "keys/ab");
    fs::create_directories(d / "keys/ac");
    fs::create_directories(d / "state");
    fs::create_directory_symlink(d / "keys/ab", d / "keys/ab-alias");
    kmetest::write(d / "keys/plain-file", "x");
    std::string two = kGood;
    two.replace(two.find("link_seed_file"), std::string::npos, "key_dir = \"keys/ab\"\n");
    two += "[[peer]]\nkme_id = \"KME_C\"\nurl = \"https://127.0.0.1:9444\"\nsaes = [\"SAE_C\"]\nkey_dir = \"keys/ac\"\n";
    auto load = [&](const std::string& text) -> std::string {
        kmetest::write(d / "a.toml", text);
        try {
            qkd::kme::load_config((d / "a.toml").string());
        } catch (const ConfigError& e) {
            return e.what();
        }
        return "";
    };
    auto with = [&](const std::string& from, const std::string& to) { return std::string(two).replace(two.find(from), from.size(), to); };
    EXPECT_EQ(load(two), "");
    // The same folder by the same name (found without touching the disk) ...
    auto e = error_of(with("\"keys/ac\"", "\"./keys/ab\""));
    EXPECT_NE(e.find("/etc/kme/a.toml: key 'peer[1].key_dir': \"/etc/kme/keys/ab\" is also the key_dir of peer[0] (KME_B)"), std::string::npos) << e;
    // ... or through a symbolic link.
    e = load(with("\"keys/ac\"", "\"keys/ab-alias\""));
    EXPECT_NE(e.find("a.toml: key 'peer[1].key_dir': \"" + (d / "keys/ab-alias").string() + "\" is the same folder as peer[0].key_dir (KME_B)"),
              std::string::npos) << e;
    e = load(with("\"keys/ac\"", "\"state\""));
    EXPECT_NE(e.find("key 'peer[1].key_dir': \"" + (d / "state").string() + "\" also holds kme.state_db"), std::string::npos) << e;
    e = load(with("\"keys/ac\"", "\".\""));
    EXPECT_NE(e.find("key 'peer[1].key_dir'"), std::string::npos) << e;
    EXPECT_NE(e.find("also holds the configuration file"), std::string::npos) << e;
    e = load(with("\"keys/ac\"", "\"keys/missing\""));
    EXPECT_NE(e.find("key 'peer[1].key_dir': cannot use \"" + (d / "keys/missing").string() + "\": No such file or directory"), std::string::npos) << e;
    e = load(with("\"keys/ac\"", "\"keys/plain-file\""));
    EXPECT_NE(e.find("key 'peer[1].key_dir': \"" + (d / "keys/plain-file").string() + "\" is not a directory"), std::string::npos) << e;
    fs::remove_all(d);
}

TEST(KmeConfig, AKeyDirThatAnIndexOfAnotherPeerListsIsRefused) {
    // The peer KME renamed: the link gets a new, empty index (named after the peer), which would
    // take the files still in key_dir from their first byte again.
    namespace fs = std::filesystem;
    const fs::path d = kmetest::temp_dir("staleindex");
    fs::create_directories(d / "keys/ab");
    fs::create_directories(d / "state");
    kmetest::write(d / "keys/ab/000001", std::string(16, 'k'));
    kmetest::write(d / "keys/ab/000002", std::string(16, 'k'));
    std::string text = kGood;
    text.replace(text.find("link_seed_file"), std::string::npos, "key_dir = \"keys/ab\"\n");
    kmetest::write(d / "a.toml", text);
    auto load = [&]() -> std::string {
        try {
            qkd::kme::load_config((d / "a.toml").string());
        } catch (const ConfigError& e) {
            return e.what();
        }
        return "";
    };
    EXPECT_EQ(load(), "");  // a first start: no index anywhere
    const fs::path stale = d / "state/a.db.keyfiles-KME_OLD";
    kmetest::write(stale, "qkd-kme key-file index v1\n16 000000\n");
    EXPECT_EQ(load(), "");  // another link's index that lists none of these files
    kmetest::write(stale, "qkd-kme key-file index v1\n16 000000\n16 000001\nmark 4112\n");
    auto e = load();
    EXPECT_NE(e.find("a.toml: key 'peer[0].key_dir': \"" + (d / "keys/ab").string() + "\" holds the key file \"000001\""), std::string::npos) << e;
    EXPECT_NE(e.find(stale.string()), std::string::npos) << e;
    EXPECT_NE(e.find("peer KME \"KME_OLD\" (was the peer KME renamed?)"), std::string::npos) << e;
    // A link that has its index keeps its offsets: nothing to fear.
    kmetest::write(d / "state/a.db.keyfiles-KME_B", "qkd-kme key-file index v1\n");
    EXPECT_EQ(load(), "");
    fs::remove_all(d);
}

TEST(KmeConfig, CpuAffinityIsAListOfCpus) {
    EXPECT_TRUE(parse_config(kGood, "/etc/kme/a.toml").cpu_affinity.empty());  // not pinned unless asked
    EXPECT_EQ(parse_config(kGood, "/etc/kme/a.toml").max_connections, 10000u);
    EXPECT_EQ(parse_config(with_kme_key("max_connections = 5"), "/etc/kme/a.toml").max_connections, 5u);
    EXPECT_EQ(parse_config(kGood, "/etc/kme/a.toml").state_sync, "normal");
    EXPECT_EQ(parse_config(with_kme_key("state_sync = \"full\""), "/etc/kme/a.toml").state_sync, "full");
    EXPECT_EQ(parse_config(with_kme_key("cpu_affinity = [1, 0, 1023]"), "/etc/kme/a.toml").cpu_affinity, (std::vector<int>{1, 0, 1023}));
}

TEST(KmeAffinity, CpuListsArePrintedAsRanges) {
    using qkd::kme::cpu_list_text;
    EXPECT_EQ(cpu_list_text({}), "");
    EXPECT_EQ(cpu_list_text({0}), "0");
    EXPECT_EQ(cpu_list_text({0, 1, 2, 3, 6}), "0-3,6");
    EXPECT_EQ(cpu_list_text({1, 3, 4}), "1,3-4");
}

TEST(KmeAffinity, ACpuThisProcessMayNotUseIsRefusedWithTheAllowedList) {
    auto cfg = parse_config(kGood, "/etc/kme/a.toml");
    const auto allowed = qkd::kme::allowed_cpus();
    ASSERT_FALSE(allowed.empty());
    cfg.cpu_affinity = {allowed.front()};
    EXPECT_NO_THROW(qkd::kme::check_cpu_affinity(cfg));
    cfg.cpu_affinity = {allowed.front(), 1023};  // no test machine has 1024 CPUs
    try {
        qkd::kme::check_cpu_affinity(cfg);
        FAIL() << "CPU 1023 accepted";
    } catch (const ConfigError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("/etc/kme/a.toml: key 'kme.cpu_affinity': CPU 1023 is not available to this process; it may run on CPUs "),
                  std::string::npos) << m;
        EXPECT_NE(m.find(qkd::kme::cpu_list_text(allowed)), std::string::npos) << m;
    }
}

TEST(KmeAffinity, PinningMovesOnlyTheCallingThread) {
    auto cfg = parse_config(kGood, "/etc/kme/a.toml");
    const auto allowed = qkd::kme::allowed_cpus();
    if (allowed.size() < 2) GTEST_SKIP() << "one CPU: a pinned thread cannot differ from the others";
    cfg.cpu_affinity = {allowed.back(), allowed.front()};
    std::vector<int> in_thread, after;
    std::thread t([&] {
        qkd::kme::pin_event_loop_thread(cfg, 1);  // thread 1 -> the second entry
        in_thread = qkd::kme::allowed_cpus();
    });
    t.join();
    after = qkd::kme::allowed_cpus();
    EXPECT_EQ(in_thread, std::vector<int>{allowed.front()});
    EXPECT_EQ(after, allowed);  // this thread was not moved
    cfg.cpu_affinity.clear();
    std::thread u([&] {
        qkd::kme::pin_event_loop_thread(cfg, 0);  // no cpu_affinity: nothing changes
        in_thread = qkd::kme::allowed_cpus();
    });
    u.join();
    EXPECT_EQ(in_thread, allowed);
}

TEST(KmeConfig, RoutesNameAPeerAsNextHopAndNeverLoop) {
    // Trusted-node relay (issue 17): [[route]] kme_id / via / saes.
    const std::string route = "[[route]]\nkme_id = \"KME_C\"\nvia = \"KME_B\"\nsaes = [\"SAE_C\"]\n";
    auto cfg = parse_config(std::string(kGood) + route, "/etc/kme/a.toml");
    ASSERT_EQ(cfg.routes.size(), 1u);
    EXPECT_EQ(cfg.routes[0].kme_id, "KME_C");
    EXPECT_EQ(cfg.routes[0].via, "KME_B");
    EXPECT_EQ(cfg.routes[0].saes, std::vector<std::string>{"SAE_C"});
    auto with = [&](const std::string& from, const std::string& to) { return std::string(kGood) + std::string(route).replace(route.find(from), from.size(), to); };
    auto e = error_of(with("via = \"KME_B\"", "via = \"KME_X\""));
    EXPECT_NE(e.find("/etc/kme/a.toml: key 'route[0].via': \"KME_X\" is not a [[peer]] of this KME; the next hop must be one (KME_B)"),
              std::string::npos) << e;
    e = error_of(with("via = \"KME_B\"", "via = \"KME_A\""));
    EXPECT_NE(e.find("key 'route[0].via': the next hop cannot be this KME itself"), std::string::npos) << e;
    e = error_of(with("kme_id = \"KME_C\"", "kme_id = \"KME_A\""));
    EXPECT_NE(e.find("key 'route[0].kme_id': a route to this KME itself would loop"), std::string::npos) << e;
    e = error_of(with("kme_id = \"KME_C\"", "kme_id = \"KME_B\""));
    EXPECT_NE(e.find("key 'route[0].kme_id': KME_B is a [[peer]]"), std::string::npos) << e;
    e = error_of(std::string(kGood) + route + route);
    EXPECT_NE(e.find("key 'route[1].kme_id': a second route to KME_C"), std::string::npos) << e;
    e = error_of(with("saes = [\"SAE_C\"]", "saes = [\"SAE_B\"]"));
    EXPECT_NE(e.find("key 'route[0].saes': SAE ID \"SAE_B\" is already attached to KME_B"), std::string::npos) << e;
    e = error_of(with("saes = [\"SAE_C\"]", "bogus = 1"));
    EXPECT_NE(e.find("route[0]"), std::string::npos) << e;
    // A relay peer may list no SAEs of its own when a route goes through it.
    std::string relay_only = std::string(kGood).replace(std::string(kGood).find("saes = [\"SAE_B\"]"), 16, "saes = []");
    EXPECT_EQ(error_of(relay_only + route), "");
    e = error_of(relay_only);
    EXPECT_NE(e.find("key 'peer[0].saes'"), std::string::npos) << e;
}
