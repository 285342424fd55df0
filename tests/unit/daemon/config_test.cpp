#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "qkd/daemon/config.hpp"
#include "qkd/daemon/convert.hpp"

using namespace qkd::daemon;

namespace {

class TmpDir {
public:
    TmpDir() {
        char t[] = "/tmp/qkd-daemon-test-XXXXXX";
        path_ = ::mkdtemp(t);
    }
    ~TmpDir() { std::filesystem::remove_all(path_); }
    std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) {
        auto p = path_ + "/" + name;
        std::ofstream(p) << text;
        ::chmod(p.c_str(), mode);
        return p;
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

std::string gateway_toml(const std::string& psk_path, const std::string& extra = "") {
    return "[[gateway]]\nname = \"east\"\nlocal_address = \"10.77.0.1\"\nremote_address = \"10.77.0.2\"\n"
           "local_id = \"west.example\"\nremote_id = \"east.example\"\npsk_file = \"" +
           psk_path + "\"\nlocal_ts = [\"10.88.1.0/24\"]\nremote_ts = [\"10.88.2.0/24\"]\n" + extra;
}

// gateway_toml with another remote_id line (a TOML value, e.g. "[\"a\", \"*@b\"]"); "" drops it.
std::string with_remote_id(const std::string& psk_path, const std::string& value, const std::string& extra = "") {
    auto t = gateway_toml(psk_path, extra);
    const std::string line = "remote_id = \"east.example\"\n";
    t.replace(t.find(line), line.size(), value.empty() ? "" : "remote_id = " + value + "\n");
    return t;
}

}  // namespace

TEST(ConfigValues, Ipv4AndCidr) {
    EXPECT_EQ(*parse_ipv4("10.77.0.1"), 0x0a4d0001u);
    EXPECT_FALSE(parse_ipv4("10.77.0"));
    EXPECT_FALSE(parse_ipv4("10.77.0.256"));
    EXPECT_FALSE(parse_ipv4("10.077.0.1"));
    EXPECT_FALSE(parse_ipv4("10.77.0.1 "));
    auto c = parse_cidr("10.88.0.0/16");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->prefix, 16);
    EXPECT_EQ(c->to_string(), "10.88.0.0/16");
    EXPECT_EQ(parse_cidr("10.1.2.3")->prefix, 32);
    auto bad = parse_cidr("10.88.1.0/16");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("host bits"), std::string::npos);
    EXPECT_FALSE(parse_cidr("10.0.0.0/33"));
}

TEST(ConfigValues, Durations) {
    EXPECT_EQ(parse_duration("3600")->count(), 3600);
    EXPECT_EQ(parse_duration("90s")->count(), 90);
    EXPECT_EQ(parse_duration("45m")->count(), 2700);
    EXPECT_EQ(parse_duration("4h")->count(), 14400);
    EXPECT_EQ(parse_duration("1d")->count(), 86400);
    EXPECT_FALSE(parse_duration("4x"));
    EXPECT_FALSE(parse_duration("h"));
    EXPECT_FALSE(parse_duration(""));
}

TEST(PskFile, FormsAndPermissions) {
    TmpDir d;
    auto raw = read_psk_file(d.write("raw", "this-is-a-long-enough-psk\n"));
    ASSERT_TRUE(raw) << raw.error().message;
    EXPECT_EQ(raw->size(), 25u);
    auto hex = read_psk_file(d.write("hex", "0x00112233445566778899aabbccddeeff\n"));
    ASSERT_TRUE(hex) << hex.error().message;
    ASSERT_EQ(hex->size(), 16u);
    EXPECT_EQ((*hex)[15], 0xff);
    auto b64 = read_psk_file(d.write("b64", "base64:AAECAwQFBgcICQoLDA0ODw==\n"));
    ASSERT_TRUE(b64) << b64.error().message;
    EXPECT_EQ(b64->size(), 16u);
    EXPECT_EQ((*b64)[1], 1);

    auto badhex = read_psk_file(d.write("badhex", "0x00112233445566778899aabbccddeefg\n"));
    ASSERT_FALSE(badhex);
    EXPECT_NE(badhex.error().message.find("non-hex"), std::string::npos);
    auto shortk = read_psk_file(d.write("short", "short\n"));
    ASSERT_FALSE(shortk);
    EXPECT_NE(shortk.error().message.find("at least 16"), std::string::npos);
    auto open = read_psk_file(d.write("open", "this-is-a-long-enough-psk\n", 0644));
    ASSERT_FALSE(open);
    EXPECT_NE(open.error().message.find("0644"), std::string::npos);
    EXPECT_TRUE(read_psk_file(d.path() + "/open", /*strict_permissions=*/false));
    auto missing = read_psk_file(d.path() + "/nope");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("cannot open"), std::string::npos);
    auto big = read_psk_file(d.write("big", std::string(kMaxPskBytes + 10, 'a')));
    ASSERT_FALSE(big);
    EXPECT_NE(big.error().message.find("larger than"), std::string::npos);
}

TEST(Config, FullGatewayParses) {
    TmpDir d;
    auto psk = d.write("psk", "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    std::string text = "[daemon]\ncontrol_socket = \"/tmp/x.sock\"\nlog_level = \"debug\"\ndataplane = \"userspace\"\n"
                       "tun_name = \"qkdt0\"\n\n[[qkd_profile]]\nname = \"kme-a\"\nkme_url = \"https://x\"\n\n" +
                       gateway_toml(psk, "ike_lifetime = \"4h\"\nike_rekey_margin = 300\nchild_lifetime = \"1h\"\n"
                                         "child_rekey_margin = \"2m\"\nstart_action = \"start\"\nencap = true\n"
                                         "esp_proposals = \"aes256gcm16-ecp521\"\n"
                                         "qkd = { profile = \"kme-a\", peer_sae_id = \"SAE_B\", key_size = 256, timeout = 5, mode = \"prefer\", transform_id = 65000 }\n");
    text.insert(text.find("tun_name"), "metrics_port = 9469\n");
    auto c = parse_config(text, "t.toml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->daemon.control_socket, "/tmp/x.sock");
    EXPECT_EQ(c->daemon.dataplane, "userspace");
    ASSERT_EQ(c->gateways.size(), 1u);
    auto& g = c->gateways[0];
    EXPECT_EQ(g.name, "east");
    EXPECT_EQ(g.local_address, 0x0a4d0001u);
    EXPECT_EQ(g.ike_lifetime.count(), 14400);
    EXPECT_EQ(g.ike_rekey_margin.count(), 300);
    EXPECT_EQ(g.child_rekey_margin.count(), 120);
    EXPECT_EQ(g.start_action, StartAction::start);
    EXPECT_TRUE(g.force_encap);
    EXPECT_EQ(g.psk.size(), 32u);
    ASSERT_TRUE(g.qkd);
    EXPECT_EQ(g.qkd->peer_sae_id, "SAE_B");
    EXPECT_EQ(g.qkd->mode, QkdMode::prefer);
    EXPECT_EQ(g.qkd->timeout.count(), 5);
    EXPECT_EQ(g.qkd->transform_id, 65000);
    EXPECT_EQ(c->daemon.metrics_port, 9469);
    EXPECT_EQ(c->find("east"), &g);
    EXPECT_EQ(c->find("west"), nullptr);
    // Issue 16 step 0: until QKD keys are mixed into IKEv2, a gateway with a qkd section must not
    // come up on DH and PSK alone (fail closed), whatever its mode.
    auto gc = to_gateway_config(g, c->daemon);
    ASSERT_FALSE(gc);
    EXPECT_NE(gc.error().message.find("qkd section"), std::string::npos) << gc.error().message;
    EXPECT_NE(gc.error().message.find("kme-a"), std::string::npos) << gc.error().message;
    g.qkd.reset();
    EXPECT_TRUE(to_gateway_config(g, c->daemon)) << "the same gateway without its qkd section starts";
}

// One negative test per rule: each error names the problem.
TEST(Config, Rejections) {
    TmpDir d;
    auto psk = d.write("psk", "this-is-a-long-enough-psk\n");
    struct Case {
        std::string text, expect;
    } cases[] = {
        {"[daemon\n", "t.toml:1"},
        {"bogus = 1\n", "unknown top-level key 'bogus'"},
        {"[daemon]\nfoo = 1\n", "unknown key 'foo'"},
        {"[daemon]\nlog_level = \"loud\"\n", "expected trace, debug"},
        {"[daemon]\ndataplane = \"dpdk\"\n", "expected auto, userspace or xfrm"},
        {"[daemon]\nike_port = 70000\n", "out of range"},
        {"[daemon]\nike_port = 4500\n", "two different ports"},
        {"[daemon]\ntun_name = \"a-very-long-tun-device-name\"\n", "1..15 characters"},
        {"[daemon]\nlog_level = 3\n", "is integer 3, expected a string"},
        {gateway_toml(psk, "extra = 1\n"), "unknown key 'extra'"},
        {gateway_toml(psk, "ike_lifetime = \"4y\"\n"), "duration \"4y\" is invalid"},
        {gateway_toml(psk, "ike_lifetime = 100\nike_rekey_margin = 100\n"), "must be smaller than ike_lifetime"},
        {gateway_toml(psk, "child_lifetime = 5\n"), "at least 10 seconds"},
        {gateway_toml(psk, "start_action = \"trap\"\n"), "expected \"none\" or \"start\""},
        {gateway_toml(psk, "encap = \"yes\"\n"), "expected true or false"},
        {gateway_toml(psk, "qkd = { profile = \"nope\", peer_sae_id = \"B\" }\n"), "no [[qkd_profile]] has that name"},
        {gateway_toml(psk, "qkd = { profile = \"p\" }\n"), "missing key 'peer_sae_id'"},
        {"[[qkd_profile]]\nname=\"p\"\n" + gateway_toml(psk, "qkd = { profile = \"p\", peer_sae_id = \"B\", mode = \"maybe\" }\n"),
         "expected \"require\" or \"prefer\""},
        {"[[qkd_profile]]\nname=\"p\"\n" + gateway_toml(psk, "qkd = { profile = \"p\", peer_sae_id = \"B\", key_size = 260 }\n"),
         "multiple of 8"},
        {"[[qkd_profile]]\nname=\"p\"\n" + gateway_toml(psk, "qkd = { profile = \"p\", peer_sae_id = \"B\", transform_id = 36 }\n"),
         "'transform_id' = 36 is out of range, expected 1024..65535"},
        {"[daemon]\nmetrics_port = 70000\n", "'metrics_port' = 70000 is out of range"},
        {gateway_toml(psk) + gateway_toml(psk), "used twice"},
        {gateway_toml(d.path() + "/missing"), "cannot open"},
        {"[[gateway]]\nname = \"a b\"\n", "is invalid"},
        {"[[gateway]]\nname = \"x\"\nlocal_address = \"1.2.3\"\nremote_address = \"1.2.3.4\"\n", "local_address"},
        {"[[gateway]]\nname = \"x\"\nlocal_address = \"1.2.3.4\"\nremote_address = \"1.2.3.5\"\npsk_file = \"/x\"\n", "needs local_ts"},
        {"[[gateway]]\nname = \"x\"\nlocal_address = \"1.2.3.4\"\nremote_address = \"1.2.3.5\"\npsk_file = \"/x\"\n"
         "local_ts = [1]\nremote_ts = [\"10.0.0.0/8\"]\n", "expected a CIDR string"},
        {"[[gateway]]\nname = \"x\"\nlocal_address = \"1.2.3.4\"\nremote_address = \"1.2.3.5\"\npsk_file = \"/x\"\n"
         "local_ts = [\"10.0.0.1/8\"]\nremote_ts = [\"10.0.0.0/8\"]\n", "host bits"},
        {"gateway = 3\n", "[[gateway]] tables"},
    };
    for (auto& c : cases) {
        auto r = parse_config(c.text, "t.toml");
        ASSERT_FALSE(r) << "accepted: " << c.text;
        EXPECT_NE(r.error().message.find(c.expect), std::string::npos)
            << "config:\n" << c.text << "\nerror: " << r.error().message << "\nexpected to contain: " << c.expect;
    }
}

// remote_id: one identity, a list, '*' patterns; the remote address when absent.
TEST(Config, RemoteIdForms) {
    TmpDir d;
    auto psk = d.write("psk", "this-is-a-long-enough-psk\n");
    struct Case {
        std::string value;
        std::vector<std::string> expect;
    } cases[] = {
        {"\"east.example\"", {"east.example"}},
        {"[\"east.example\", \"*@bench.example\"]", {"east.example", "*@bench.example"}},
        {"\"bench-*\"", {"bench-*"}},
        {"\"%any\"", {"%any"}},
        {"", {"10.77.0.2"}},
    };
    for (auto& c : cases) {
        auto r = parse_config(with_remote_id(psk, c.value), "t.toml");
        ASSERT_TRUE(r) << c.value << ": " << r.error().message;
        EXPECT_EQ(r->gateways[0].remote_id, c.expect) << c.value;
    }
    // One exact identity in a list may still initiate.
    auto one = parse_config(with_remote_id(psk, "[\"east.example\"]", "start_action = \"start\"\n"), "t.toml");
    ASSERT_TRUE(one) << one.error().message;
}

// Each remote_id error names the file, the line of the key and the key.
TEST(Config, RemoteIdRejections) {
    TmpDir d;
    auto psk = d.write("psk", "this-is-a-long-enough-psk\n");
    const std::string start = "start_action = \"start\"\n";
    struct Case {
        std::string text, expect;
    } cases[] = {
        {with_remote_id(psk, "[]"), "'remote_id' is an empty list"},
        {with_remote_id(psk, "[\"a.example\", 3]"), "'remote_id' entry is integer 3, expected a string"},
        {with_remote_id(psk, "5"), "'remote_id' is integer 5, expected a string or a list of strings"},
        {with_remote_id(psk, "\"\""), "'remote_id' entry \"\" must have 1..255 characters"},
        {with_remote_id(psk, "[\"a.example\", \"A.example\"]"), "remote_id lists \"A.example\" twice"},
        {with_remote_id(psk, "\"10.0.*.1\""), "remote_id \"10.0.*.1\": IP address identities cannot be patterns"},
        {with_remote_id(psk, "\"2001:db8::*\""), "IP address identities cannot be patterns"},
        {with_remote_id(psk, "\"@#01*\""), "a KEY_ID identity cannot contain '*'"},
        {with_remote_id(psk, "\"*@bench.example\"", start),
         "remote_id pattern \"*@bench.example\" cannot be used to initiate (start_action = \"start\")"},
        {with_remote_id(psk, "[\"a.example\", \"b.example\"]", start),
         "remote_id pattern \"a.example, b.example\" cannot be used to initiate"},
        {with_remote_id(psk, "\"%any\"", start), "cannot be used to initiate"},
    };
    for (auto& c : cases) {
        auto r = parse_config(c.text, "t.toml");
        ASSERT_FALSE(r) << "accepted: " << c.text;
        EXPECT_NE(r.error().message.find(c.expect), std::string::npos)
            << "config:\n" << c.text << "\nerror: " << r.error().message << "\nexpected to contain: " << c.expect;
        EXPECT_EQ(r.error().message.rfind("t.toml:6: gateway 'east' ", 0) == 0 ||
                      r.error().message.rfind("t.toml:6: 'remote_id'", 0) == 0,
                  true)
            << r.error().message;
    }
    std::string many = "[";
    for (int i = 0; i <= 64; ++i) many += (i ? ", \"" : "\"") + std::to_string(i) + ".example\"";
    auto r = parse_config(with_remote_id(psk, many + "]"), "t.toml");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("'remote_id' has 65 entries, at most 64"), std::string::npos) << r.error().message;
}

TEST(Config, CliModeSkipsPsks) {
    auto c = parse_config(gateway_toml("/nonexistent/psk"), "t.toml", LoadOptions{.read_psks = false});
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_TRUE(c->gateways[0].psk.empty());
}

TEST(Config, LoadFromFileAndSampleConfig) {
    EXPECT_FALSE(load_config("/nonexistent/qkdgate.toml"));
#ifdef QKD_SAMPLE_CONFIG
    auto c = load_config(QKD_SAMPLE_CONFIG, LoadOptions{.read_psks = false});
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_FALSE(c->gateways.empty());
#endif
}

// Regression (issue 15): the config took 64 selectors per side while the IKE decoder took 32; both
// now use qkd::ike::kMaxTrafficSelectors (64).
TEST(Config, TrafficSelectorLimitIsTheDecoders) {
    TmpDir d;
    auto psk = d.write("psk", "this-is-a-long-enough-psk\n");
    auto with_local_ts = [&](int n) {
        std::string list = "[";
        for (int i = 0; i < n; ++i) list += std::string(i ? ", " : "") + "\"10.77." + std::to_string(i) + ".0/24\"";
        auto t = gateway_toml(psk);
        const std::string line = "local_ts = [\"10.88.1.0/24\"]";
        return t.replace(t.find(line), line.size(), "local_ts = " + list + "]");
    };
    static_assert(kMaxSelectors == qkd::ike::kMaxTrafficSelectors);
    for (int n : {33, 64}) {
        auto r = parse_config(with_local_ts(n), "t.toml");
        ASSERT_TRUE(r) << n << ": " << r.error().message;
        EXPECT_EQ(r->gateways[0].local_ts.size(), static_cast<std::size_t>(n));
    }
    auto r = parse_config(with_local_ts(65), "t.toml");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("'local_ts' has 65 entries, at most 64 allowed"), std::string::npos) << r.error().message;
}

// Issue 16: a gateway with a qkd section starts only when this qkdgated can keep its promise
// (mode = require: a mandatory QKD round in every IKE proposal); everything else is refused.
TEST(Config, QkdSectionIsEnforcedOrRefused) {
    TmpDir d;
    auto psk = d.write("psk", "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    auto gw = [&](const std::string& ike, const std::string& qkd, const std::string& esp = "aes256gcm16") {
        std::string text = "[[qkd_profile]]\nname = \"kme-a\"\n" +
                           gateway_toml(psk, "ike_proposals = \"" + ike + "\"\nesp_proposals = \"" + esp + "\"\n" + qkd);
        auto c = parse_config(text, "t.toml");
        EXPECT_TRUE(c) << c.error().message;
        return to_gateway_config(c->gateways[0], c->daemon);
    };
    const std::string q = "qkd = { profile = \"kme-a\", peer_sae_id = \"SAE_B\" }\n";
    EXPECT_TRUE(gw("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_qkd", q));
    EXPECT_TRUE(gw("aes256gcm16-prfsha512-ecp521-ke1_qkd", q));
    EXPECT_TRUE(gw("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke2_qkd", q, "aes256gcm16-ecp521-ke1_mlkem768-ke2_qkd"));
    struct Bad {
        std::string ike, qkd, esp, expect;
    } cases[] = {
        {"aes256gcm16-prfsha512-ecp521", q, "aes256gcm16", "has no mandatory QKD round"},
        {"aes256gcm16-prfsha512-ecp521-ke1_qkd-ke1_none", q, "aes256gcm16", "has no mandatory QKD round"},
        {"aes256gcm16-prfsha512-ecp521-ke1_qkd,aes256gcm16-prfsha512-ecp521", q, "aes256gcm16", "IKE proposal 2"},
        {"aes256gcm16-prfsha512-ecp521-ke1_qkd", "qkd = { profile = \"kme-a\", peer_sae_id = \"B\", mode = \"prefer\" }\n",
         "aes256gcm16", "mode = \"prefer\""},
        {"aes256gcm16-prfsha512-ecp521-ke1_qkd", "qkd = { profile = \"kme-a\", peer_sae_id = \"B\", transform_id = 65000 }\n",
         "aes256gcm16", "transform_id = 65000"},
        {"aes256gcm16-prfsha512-ecp521-ke1_qkd", "", "aes256gcm16", "has no qkd section"},
        {"aes256gcm16-prfsha512-ecp521-ke1_qkd", q, "aes256gcm16-qkd", "as the first key exchange"},
        {"aes256gcm16-prfsha512-ecp521", "", "aes256gcm16-ecp521-ke1_qkd", "has no qkd section"},
    };
    for (const auto& c : cases) {
        auto r = gw(c.ike, c.qkd, c.esp);
        ASSERT_FALSE(r) << c.ike << " / " << c.qkd;
        EXPECT_NE(r.error().message.find(c.expect), std::string::npos) << r.error().message;
        EXPECT_NE(r.error().message.find("gateway 'east'"), std::string::npos) << r.error().message;
    }
}
