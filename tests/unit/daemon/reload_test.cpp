// Reload: the new keep-up keys of a gateway, the gateway diff of two configs, the [daemon] keys
// that need a restart.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "qkd/daemon/config_diff.hpp"

using namespace qkd::daemon;
using namespace std::chrono_literals;

namespace {

struct Files {
    std::string dir;
    Files() {
        char t[] = "/tmp/qkd-reload-test-XXXXXX";
        dir = ::mkdtemp(t);
        psk("a.psk", "0x00112233445566778899aabbccddeeff");
        psk("b.psk", "0x00112233445566778899aabbccddeef0");  // differs in the last octet only
    }
    ~Files() { std::filesystem::remove_all(dir); }
    void psk(const std::string& name, const std::string& text) {
        auto p = dir + "/" + name;
        std::ofstream(p) << text << "\n";
        ::chmod(p.c_str(), 0600);
    }
    std::string gw(const std::string& name, int n, const std::string& extra = "", const std::string& psk = "a.psk") const {
        return "[[gateway]]\nname = \"" + name + "\"\nlocal_address = \"10.77.0.1\"\nremote_address = \"10.77.0.2\"\n"
               "local_id = \"west.example\"\nremote_id = \"" + name + ".example\"\npsk_file = \"" + dir + "/" + psk +
               "\"\nlocal_ts = [\"10.88.0.0/24\"]\nremote_ts = [\"10.89." + std::to_string(n) + ".0/24\"]\n" + extra + "\n";
    }
    Config parse(const std::string& text) const {
        auto c = parse_config(text, dir + "/qkdgate.toml");
        EXPECT_TRUE(c) << (c ? "" : c.error().message);
        return c ? std::move(*c) : Config{};
    }
};

}  // namespace

TEST(KeepKeys, DefaultsGiveAPermanentTunnel) {
    Files f;
    auto c = f.parse(f.gw("a", 1));
    ASSERT_EQ(c.gateways.size(), 1u);
    auto& g = c.gateways[0];
    EXPECT_EQ(g.dpd_action, DpdAction::restart);
    EXPECT_EQ(g.close_action, CloseAction::start);
    EXPECT_EQ(g.keyingtries, 0u);
    EXPECT_EQ(g.retry_delay, 1s);
    EXPECT_EQ(g.retry_delay_max, 60s);
    EXPECT_EQ(c.daemon.retransmit_tries, 5u);
    EXPECT_DOUBLE_EQ(c.daemon.retransmit_timeout, 1.0);
    EXPECT_DOUBLE_EQ(c.daemon.retransmit_base, 1.8);
}

TEST(KeepKeys, Parsed) {
    Files f;
    auto c = f.parse("[daemon]\nretransmit_timeout = 0.5\nretransmit_base = 2\nretransmit_tries = 3\n" +
                     f.gw("a", 1, "dpd_action = \"clear\"\nclose_action = \"none\"\nkeyingtries = 5\nretry_delay = \"2s\"\n"
                                  "retry_delay_max = \"5m\""));
    ASSERT_EQ(c.gateways.size(), 1u);
    auto& g = c.gateways[0];
    EXPECT_EQ(g.dpd_action, DpdAction::clear);
    EXPECT_EQ(g.close_action, CloseAction::none);
    EXPECT_EQ(g.keyingtries, 5u);
    EXPECT_EQ(g.retry_delay, 2s);
    EXPECT_EQ(g.retry_delay_max, 300s);
    EXPECT_DOUBLE_EQ(c.daemon.retransmit_timeout, 0.5);
    EXPECT_DOUBLE_EQ(c.daemon.retransmit_base, 2.0);
    EXPECT_EQ(c.daemon.retransmit_tries, 3u);
}

TEST(KeepKeys, Rejections) {
    Files f;
    struct Case {
        std::string text, needle;
    } cases[] = {
        {f.gw("a", 1, "dpd_action = \"hold\""), "expected \"restart\" or \"clear\""},
        {f.gw("a", 1, "close_action = \"restart\""), "expected \"start\" or \"none\""},
        {f.gw("a", 1, "keyingtries = -1"), "keyingtries"},
        {f.gw("a", 1, "retry_delay = 0"), "retry_delay is 0"},
        {f.gw("a", 1, "retry_delay = 10\nretry_delay_max = 5"), "is below retry_delay"},
        {"[daemon]\nretransmit_tries = 0\n", "retransmit_tries"},
        {"[daemon]\nretransmit_timeout = 0.01\n", "out of range"},
        {"[daemon]\nretransmit_base = \"fast\"\n", "expected a number"},
    };
    for (auto& c : cases) {
        auto r = parse_config(c.text, f.dir + "/x.toml");
        ASSERT_FALSE(r) << c.text;
        EXPECT_NE(r.error().message.find(c.needle), std::string::npos) << r.error().message;
    }
}

TEST(ReloadDiff, AddedRemovedChangedRetunedUnchanged) {
    Files f;
    auto old_cfg = f.parse(f.gw("keep", 1) + f.gw("gone", 2) + f.gw("change", 3) + f.gw("tune", 4) + f.gw("newpsk", 5));
    auto new_cfg = f.parse(f.gw("keep", 1) + f.gw("change", 3, "dpd_interval = 5") + f.gw("tune", 4, "close_action = \"none\"") +
                           f.gw("newpsk", 5, "", "b.psk") + f.gw("fresh", 6));
    auto d = diff_gateways(old_cfg, new_cfg);
    EXPECT_EQ(d.unchanged, std::vector<std::string>{"keep"});
    EXPECT_EQ(d.removed, std::vector<std::string>{"gone"});
    EXPECT_EQ(d.changed, (std::vector<std::string>{"change", "newpsk"}));
    EXPECT_EQ(d.retuned, std::vector<std::string>{"tune"});
    EXPECT_EQ(d.added, std::vector<std::string>{"fresh"});
    // The same config: all unchanged.
    auto same = diff_gateways(old_cfg, old_cfg);
    EXPECT_EQ(same.unchanged.size(), 5u);
    EXPECT_TRUE(same.added.empty() && same.removed.empty() && same.changed.empty() && same.retuned.empty());
}

TEST(ReloadDiff, EverySettingOfTheIkeSaCounts) {
    Files f;
    const std::string edits[] = {
        "local_port = 1500", "remote_port = 1500", "ike_proposals = \"aes128gcm16-prfsha256-ecp256\"",
        "esp_proposals = \"aes128gcm16\"", "ike_lifetime = \"2h\"", "ike_rekey_margin = \"5m\"", "child_lifetime = \"30m\"",
        "child_rekey_margin = \"1m\"", "dpd_interval = 0", "encap = true",
    };
    auto base = f.parse(f.gw("g", 1));
    for (auto& e : edits) {
        auto next = f.parse(f.gw("g", 1, e));
        auto d = diff_gateways(base, next);
        EXPECT_EQ(d.changed, std::vector<std::string>{"g"}) << e;
    }
    auto ts = f.parse(f.gw("g", 2));
    EXPECT_EQ(diff_gateways(base, ts).changed, std::vector<std::string>{"g"});
    for (auto& e : {"start_action = \"start\"", "keyingtries = 3", "retry_delay = 5", "retry_delay_max = 10", "dpd_action = \"clear\""}) {
        auto next = f.parse(f.gw("g", 1, e));
        EXPECT_EQ(diff_gateways(base, next).retuned, std::vector<std::string>{"g"}) << e;
    }
}

TEST(ReloadDiff, DaemonSettingsNeedingARestart) {
    DaemonSettings a, b;
    EXPECT_TRUE(daemon_settings_needing_restart(a, b).empty());
    b.log_level = "debug";  // applied at once
    EXPECT_TRUE(daemon_settings_needing_restart(a, b).empty());
    b.ike_port = 1500;
    b.retransmit_tries = 3;
    EXPECT_EQ(daemon_settings_needing_restart(a, b), (std::vector<std::string>{"ike_port", "retransmit_tries"}));
}
