// QKD commands of the operator CLI, stand-alone from the config file (no daemon needed):
//   show qkd                                   the [[qkd_profile]] tables, certificate subjects/expiry
//   test qkd connectivity PROFILE              ETSI 014 Get status, TLS details, round-trip time
//   test qkd get-key --profile P --peer-sae-id ID [--number N] [--size BITS] [--show-key]
//   test qkd get-key-with-id --profile P --peer-sae-id ID KEY_ID...
// Exit codes: 0 success, 1 the KME call failed (network, TLS, HTTP, answer), 2 bad config/arguments.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <iostream>

#include "commands.hpp"
#include "qkd/common/encoding.hpp"
#include "qkd/common/log.hpp"
#include "qkd/daemon/config.hpp"
#include "qkd/daemon/control.hpp"
#include "qkd/sae/cert_info.hpp"
#include "qkd/sae/client.hpp"
#include "qkd/sae/profile.hpp"

namespace qkdgate {
namespace {

using json = nlohmann::json;
namespace sae = qkd::sae;

constexpr int kExitOk = 0;
constexpr int kExitCallFailed = 1;
constexpr int kExitConfig = 2;

struct KeyArgs {
    std::string profile;
    std::string peer_sae_id;
    int number = 1;
    int size = 0;  // 0: the profile's key_size
    bool show_key = false;
    bool get_form = false;
    std::vector<std::string> key_ids;
};

CLI::App* get_or_add(CLI::App& app, const std::string& name, const std::string& help) {
    for (auto* s : app.get_subcommands([&](CLI::App* c) { return c->get_name() == name; })) return s;
    return app.add_subcommand(name, help);
}

void quiet_logs() {
    // Library warnings go to stderr only on errors, so --json output stays clean.
    if (!spdlog::get("qkdgate")) qkd::log_init("qkdgate", "error");
}

double ms(std::chrono::microseconds us) { return static_cast<double>(us.count()) / 1000.0; }

int fail_config(const GlobalOptions& o, const std::string& msg) {
    if (o.json) std::cout << json{{"ok", false}, {"error", {{"code", "config"}, {"message", msg}}}}.dump(2) << "\n";
    else std::cerr << "qkdgate: " << msg << "\n";
    return kExitConfig;
}

json error_json(const sae::Error& e) {
    json j{{"code", sae::errc_name(e.code)}, {"message", e.message}, {"attempts", e.attempts}};
    if (e.http_status != 0) j["http_status"] = e.http_status;
    if (e.key_may_be_consumed) j["key_may_be_consumed"] = true;
    if (e.etsi) {
        json d = json::array();
        for (const auto& x : e.etsi->details) d.push_back({{x.name, x.value}});
        j["etsi"] = {{"message", e.etsi->message}, {"details", d}};
    }
    return j;
}

int fail_call(const GlobalOptions& o, const sae::Profile& p, const sae::Error& e) {
    if (o.json) {
        std::cout << json{{"ok", false}, {"profile", p.name}, {"kme_url", p.kme_url.text}, {"error", error_json(e)}}.dump(2)
                  << "\n";
    } else {
        std::cerr << "qkdgate: profile \"" << p.name << "\" (" << p.kme_url.text << "): " << sae::describe(e) << "\n";
    }
    return e.code == sae::Errc::config ? kExitConfig : kExitCallFailed;
}

json tls_json(const sae::TlsInfo& t) {
    return {{"version", t.version}, {"group", t.group}, {"cipher", t.cipher}, {"kme_subject", t.peer_subject}};
}

// Loads the config and picks the profile; on error prints it and returns the exit code.
std::variant<sae::Profile, int> load_profile(const GlobalOptions& o, const std::string& name) {
    auto all = sae::load_profiles_file(o.config_path);
    if (!all) return fail_config(o, all.error());
    auto p = sae::find_profile(*all, name, o.config_path);
    if (!p) return fail_config(o, p.error());
    return std::move(*p);
}

json cert_json(const std::filesystem::path& path) {
    json j{{"file", path.string()}};
    auto c = sae::read_cert_info(path);
    if (!c) {
        j["error"] = c.error();
        return j;
    }
    j["subject"] = c->subject;
    j["issuer"] = c->issuer;
    j["not_after"] = c->not_after;
    j["days_left"] = c->days_left;
    j["expired"] = c->expired;
    return j;
}

std::string cert_line(const json& c) {
    if (c.contains("error")) return c["error"].get<std::string>();
    return fmt::format("{}  (expires {}, {})", c["subject"].get<std::string>(), c["not_after"].get<std::string>(),
                       c["expired"].get<bool>() ? "EXPIRED" : std::to_string(c["days_left"].get<long long>()) + " days left");
}

// The running qkdgated's per-profile key counters (control command show-qkd), or null when no
// daemon answers on the config's control socket.
json daemon_qkd_counters(const GlobalOptions& o) {
    std::string sock = o.socket_path;
    if (sock == qkd::daemon::kDefaultControlSocket) {
        auto cfg = qkd::daemon::load_config(o.config_path, qkd::daemon::LoadOptions{.read_psks = false});
        if (cfg) sock = cfg->daemon.control_socket;
    }
    auto r = qkd::daemon::control_call(sock, qkd::daemon::ControlRequest{qkd::daemon::ControlCmd::show_qkd, {}, {}},
                                       std::chrono::seconds(3));
    if (!r || !r->contains("profiles")) return nullptr;
    return (*r)["profiles"];
}

std::string counters_line(const json& c) {
    std::string fails;
    for (auto& [kind, n] : c["failures"].items())
        if (n.get<std::uint64_t>() > 0) fails += (fails.empty() ? "" : ", ") + kind + " " + std::to_string(n.get<std::uint64_t>());
    return fmt::format("{} as master, {} as slave; failures: {}; KME round trip last {:.1f} ms, mean {:.1f} ms",
                       c["keys_master"].get<std::uint64_t>(), c["keys_slave"].get<std::uint64_t>(),
                       fails.empty() ? "none" : fails, c["last_kme_rtt_ms"].get<double>(), c["kme_rtt_avg_ms"].get<double>());
}

int show_qkd(const GlobalOptions& o) {
    auto all = sae::load_profiles_file(o.config_path);
    if (!all) return fail_config(o, all.error());
    const json counters = daemon_qkd_counters(o);
    json out = json::array();
    for (const auto& p : *all) {
        json j{{"name", p.name},
               {"kme_url", p.kme_url.text},
               {"local_sae_id", p.local_sae_id},
               {"local_cert", cert_json(p.local_cert)},
               {"local_key", p.local_key.string()},
               {"kme_ca_cert", cert_json(p.kme_ca_cert)},
               {"timeout_s", static_cast<double>(p.timeout.count()) / 1000.0},
               {"key_size", p.key_size},
               {"pq_only", p.pq_only}};
        j["kme_cert"] = p.kme_cert ? cert_json(*p.kme_cert) : json(nullptr);
        j["kme_id"] = p.kme_id ? json(*p.kme_id) : json(nullptr);
        j["tls_groups"] = p.tls_groups;
        // Keys fetched by the running qkdgated (null: no daemon, or the profile is not in use).
        j["counters"] = counters.is_object() && counters.contains(p.name) ? counters[p.name] : json(nullptr);
        out.push_back(std::move(j));
    }
    if (o.json) {
        std::cout << json{{"config", o.config_path}, {"profiles", out}}.dump(2) << "\n";
        return kExitOk;
    }
    std::cout << "QKD profiles in " << o.config_path << ": " << out.size() << "\n";
    for (const auto& j : out) {
        std::cout << "\nprofile " << j["name"].get<std::string>() << "\n";
        std::cout << fmt::format("  {:<14}{}\n", "KME URL", j["kme_url"].get<std::string>());
        std::cout << fmt::format("  {:<14}{}\n", "local SAE ID", j["local_sae_id"].get<std::string>());
        std::cout << fmt::format("  {:<14}{}\n", "KME ID", j["kme_id"].is_null() ? "(not checked)" : j["kme_id"].get<std::string>());
        std::cout << fmt::format("  {:<14}{}\n", "local cert", cert_line(j["local_cert"]));
        std::cout << fmt::format("  {:<14}{}\n", "KME CA", cert_line(j["kme_ca_cert"]));
        std::cout << fmt::format("  {:<14}{}\n", "KME pin", j["kme_cert"].is_null() ? "(none)" : cert_line(j["kme_cert"]));
        std::string groups;
        for (const auto& g : j["tls_groups"]) groups += (groups.empty() ? "" : ", ") + g.get<std::string>();
        std::cout << fmt::format("  {:<14}{} bits, timeout {} s, TLS groups {}{}\n", "keys", j["key_size"].get<int>(),
                                 j["timeout_s"].get<double>(), groups.empty() ? "(default)" : groups,
                                 j["pq_only"].get<bool>() ? " (pq_only)" : "");
        std::cout << fmt::format("  {:<14}{}\n", "QKD keys",
                                 !j["counters"].is_null() ? counters_line(j["counters"])
                                 : counters.is_null()     ? std::string("(qkdgated not running: no counters)")
                                                          : std::string("(not used by a gateway)"));
        if (!j["counters"].is_null() && !j["counters"]["last_error"].get<std::string>().empty())
            std::cout << fmt::format("  {:<14}{}\n", "last error", j["counters"]["last_error"].get<std::string>());
    }
    return kExitOk;
}

// The peer SAE IDs of the [[gateway]]s whose qkd.profile is `profile`, in config order, without
// repeats (config errors are reported by the profile loader, not here).
std::vector<std::string> gateway_peers(const std::string& file, const std::string& profile) {
    std::vector<std::string> out;
    try {
        toml::table root = toml::parse_file(file);
        if (const auto* gws = root["gateway"].as_array())
            for (const auto& gw : *gws)
                if (const auto* t = gw.as_table())
                    if (const auto* q = (*t)["qkd"].as_table())
                        if ((*q)["profile"].value_or(std::string()) == profile) {
                            auto peer = (*q)["peer_sae_id"].value_or(std::string());
                            if (!peer.empty() && std::find(out.begin(), out.end(), peer) == out.end()) out.push_back(peer);
                        }
    } catch (const toml::parse_error&) {
    }
    return out;
}

json status_json(const qkd::etsi014::Status& s) {
    json status{{"source_KME_ID", s.source_KME_ID},       {"target_KME_ID", s.target_KME_ID},
                {"master_SAE_ID", s.master_SAE_ID},       {"slave_SAE_ID", s.slave_SAE_ID},
                {"key_size", s.key_size},                 {"stored_key_count", s.stored_key_count},
                {"max_key_count", s.max_key_count},       {"max_key_per_request", s.max_key_per_request},
                {"max_key_size", s.max_key_size},         {"min_key_size", s.min_key_size},
                {"max_SAE_ID_count", s.max_SAE_ID_count}};
    if (s.status_extension) status["status_extension"] = *s.status_extension;
    return status;
}

void print_tls(const sae::Profile& p, const sae::Answer<qkd::etsi014::Status>& r) {
    std::cout << fmt::format("KME {} reachable from profile \"{}\" (SAE {})\n", p.kme_url.text, p.name, p.local_sae_id);
    std::cout << fmt::format("  {:<22}{}\n", "TLS version", r.tls.version);
    std::cout << fmt::format("  {:<22}{}\n", "TLS group", r.tls.group.empty() ? "(unknown)" : r.tls.group);
    std::cout << fmt::format("  {:<22}{}\n", "TLS cipher", r.tls.cipher);
    std::cout << fmt::format("  {:<22}{}\n", "KME certificate", r.tls.peer_subject);
    std::cout << fmt::format("  {:<22}{:.3f} ms\n", "TCP+TLS handshake", ms(r.connect_time));
    std::cout << fmt::format("  {:<22}{:.3f} ms\n", "round-trip (status)", ms(r.round_trip));
}

constexpr const char* kNeedsPeer =
    "Get status needs a peer SAE ID (ETSI 014 5.2: the slave SAE of the pair): pass --peer-sae-id, or name this "
    "profile in the qkd section of a [[gateway]]";

// No peer SAE ID known: check TLS (mutual, with the profile's certificates) and HTTP alone. Any HTTP
// answer over a verified connection shows the KME is reachable; Get status itself is not checked,
// since a KME may refuse a status request whose slave is the caller (400, "slave_SAE_ID shall differ
// from the master SAE ID").
int reachability_only(const GlobalOptions& o, const sae::Profile& p, sae::BlockingClient& client) {
    auto r = client.get_status(p.local_sae_id, /*fresh_connection=*/true);
    if (!r && r.error().http_status == 0) return fail_call(o, p, r.error());
    const int http = r ? 200 : r.error().http_status;
    const std::string answer = r ? std::string("200 (a status of this SAE as its own slave)") : sae::describe(r.error());
    if (o.json) {
        json j{{"ok", true},          {"profile", p.name},       {"kme_url", p.kme_url.text},
               {"tls_ok", true},      {"http_status", http},     {"status_checked", false},
               {"note", kNeedsPeer}};
        if (r) {
            j["tls"] = tls_json(r->tls);
            j["connect_ms"] = ms(r->connect_time);
            j["round_trip_ms"] = ms(r->round_trip);
        }
        std::cout << j.dump(2) << "\n";
        return kExitOk;
    }
    if (r) print_tls(p, *r);
    else std::cout << fmt::format("KME {} reachable from profile \"{}\" (SAE {}): mutual TLS and HTTP answer\n", p.kme_url.text, p.name, p.local_sae_id);
    std::cout << fmt::format("  {:<22}{}\n", "HTTP answer", answer);
    std::cout << "Get status not checked: " << kNeedsPeer << ".\n";
    return kExitOk;
}

int test_connectivity(const GlobalOptions& o, const std::string& name, const std::string& peer) {
    auto loaded = load_profile(o, name);
    if (auto* code = std::get_if<int>(&loaded)) return *code;
    auto& p = std::get<sae::Profile>(loaded);
    auto client = sae::BlockingClient::create(p);
    if (!client) return fail_call(o, p, client.error());
    // Get status names a slave SAE: --peer-sae-id, else every peer of the [[gateway]]s using this
    // profile; with none, only TLS and HTTP can be checked (asking with our own SAE ID as the slave
    // is refused by other KMEs, so it cannot tell a broken KME from a strict one).
    std::vector<std::string> slaves = peer.empty() ? gateway_peers(o.config_path, name) : std::vector<std::string>{peer};
    if (slaves.empty()) return reachability_only(o, p, *client);

    json statuses = json::array();
    std::optional<sae::StatusResult> first_ok;
    bool all_ok = true;
    for (std::size_t i = 0; i < slaves.size(); ++i) {
        auto r = client->get_status(slaves[i], /*fresh_connection=*/i == 0);
        if (!r) {
            if (slaves.size() == 1) return fail_call(o, p, r.error());
            all_ok = false;
            statuses.push_back({{"slave_SAE_ID", slaves[i]}, {"ok", false}, {"error", error_json(r.error())}});
            if (!o.json)
                std::cerr << "qkdgate: profile \"" << p.name << "\": Get status for slave " << slaves[i] << ": "
                          << sae::describe(r.error()) << "\n";
            continue;
        }
        statuses.push_back({{"slave_SAE_ID", slaves[i]}, {"ok", true}, {"status", status_json(r->value)}});
        if (!first_ok) first_ok = std::move(r);
    }
    if (!first_ok) {
        // Every Get status failed: report as one failed call (the first error) plus the list.
        if (o.json) {
            std::cout << json{{"ok", false}, {"profile", p.name}, {"kme_url", p.kme_url.text}, {"statuses", statuses},
                              {"error", statuses[0]["error"]}}.dump(2) << "\n";
        }
        return kExitCallFailed;
    }
    const auto& r = **first_ok;
    if (o.json) {
        json first_status;
        for (const auto& s : statuses)
            if (s["ok"].get<bool>()) {
                first_status = s["status"];
                break;
            }
        std::cout << json{{"ok", all_ok},
                          {"profile", p.name},
                          {"kme_url", p.kme_url.text},
                          {"tls", tls_json(r.tls)},
                          {"connect_ms", ms(r.connect_time)},
                          {"round_trip_ms", ms(r.round_trip)},
                          {"total_ms", ms(r.total)},
                          {"attempts", r.attempts},
                          {"status", first_status},
                          {"statuses", statuses}}
                         .dump(2)
                  << "\n";
        return all_ok ? kExitOk : kExitCallFailed;
    }
    print_tls(p, r);
    for (const auto& s : statuses) {
        if (!s["ok"].get<bool>()) continue;
        std::cout << (statuses.size() > 1 ? "Get status (slave " + s["slave_SAE_ID"].get<std::string>() + "):\n" : std::string("Get status:\n"));
        for (const auto& [k, v] : s["status"].items())
            std::cout << fmt::format("  {:<22}{}\n", k, v.is_string() ? v.get<std::string>() : v.dump());
    }
    return all_ok ? kExitOk : kExitCallFailed;
}

int print_keys(const GlobalOptions& o, const sae::Profile& p, const KeyArgs& a, const sae::KeysResult& r,
               std::string_view call) {
    const auto& keys = r->value.keys;
    if (o.json) {
        json arr = json::array();
        for (const auto& k : keys) {
            json e{{"key_ID", k.key_ID}, {"size_bits", k.key.size() * 8}};
            if (a.show_key) e["key"] = qkd::base64_encode(k.key.view());
            arr.push_back(std::move(e));
        }
        std::string text = json{{"ok", true},
                                 {"profile", p.name},
                                 {"kme_url", p.kme_url.text},
                                 {"call", call},
                                 {"local_sae_id", p.local_sae_id},
                                 {"peer_sae_id", a.peer_sae_id},
                                 {"tls", tls_json(r->tls)},
                                 {"round_trip_ms", ms(r->round_trip)},
                                 {"total_ms", ms(r->total)},
                                 {"attempts", r->attempts},
                                 {"keys", std::move(arr)}}
                               .dump(2);
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fputc('\n', stdout);
        qkd::wipe_string(text);
        return kExitOk;
    }
    std::cout << fmt::format("{} from KME {} (profile \"{}\", {} -> {}): {} key(s), {:.3f} ms, {} {}\n", call,
                             p.kme_url.text, p.name, p.local_sae_id, a.peer_sae_id, keys.size(), ms(r->total),
                             r->tls.version, r->tls.group);
    for (const auto& k : keys) {
        std::string shown = a.show_key ? qkd::base64_encode(k.key.view()) : std::string("(hidden)");
        std::cout << fmt::format("  key_ID {}  size {} bits  key {}\n", k.key_ID, k.key.size() * 8, shown);
        qkd::wipe_string(shown);
    }
    return kExitOk;
}

int test_get_key(const GlobalOptions& o, const KeyArgs& a) {
    auto loaded = load_profile(o, a.profile);
    if (auto* code = std::get_if<int>(&loaded)) return *code;
    auto& p = std::get<sae::Profile>(loaded);
    auto client = sae::BlockingClient::create(p);
    if (!client) return fail_call(o, p, client.error());
    sae::GetKeyParams params;
    params.slave_SAE_ID = a.peer_sae_id;
    params.number = a.number;
    if (a.size != 0) params.size_bits = a.size;
    params.form = a.get_form ? sae::Form::get : sae::Form::post;
    auto r = client->get_key(params);
    if (!r) return fail_call(o, p, r.error());
    return print_keys(o, p, a, r, "enc_keys");
}

int test_get_key_with_id(const GlobalOptions& o, const KeyArgs& a) {
    auto loaded = load_profile(o, a.profile);
    if (auto* code = std::get_if<int>(&loaded)) return *code;
    auto& p = std::get<sae::Profile>(loaded);
    auto client = sae::BlockingClient::create(p);
    if (!client) return fail_call(o, p, client.error());
    sae::GetKeyWithIdsParams params;
    params.master_SAE_ID = a.peer_sae_id;
    params.key_IDs = a.key_ids;
    if (a.size != 0) params.size_bits = a.size;
    params.form = a.get_form ? sae::Form::get : sae::Form::post;
    auto r = client->get_key_with_ids(params);
    if (!r) return fail_call(o, p, r.error());
    return print_keys(o, p, a, r, "dec_keys");
}

void add_key_options(CLI::App* c, KeyArgs& a, GlobalOptions& opts) {
    c->add_option("--profile", a.profile, "QKD profile name")->required();
    c->add_option("--size", a.size, "key size in bits (default: the profile's key_size)")->check(CLI::PositiveNumber);
    c->add_flag("--show-key", a.show_key, "print the key material (Base64); hidden by default");
    c->add_flag("--get", a.get_form, "use the GET form of the ETSI 014 call instead of POST");
    c->add_flag("--json", opts.json, "machine-readable JSON output");
}

}  // namespace

void register_qkd_commands(CLI::App& app, GlobalOptions& opts) {
    auto* show = get_or_add(app, "show", "show state of the gateway");
    auto* show_qkd_cmd = show->add_subcommand("qkd", "QKD profiles: KME URL, local SAE ID, certificates and expiry");
    show_qkd_cmd->add_flag("--json", opts.json, "machine-readable JSON output");
    show_qkd_cmd->callback([&opts] {
        quiet_logs();
        opts.exit_code = show_qkd(opts);
    });

    auto* test = get_or_add(app, "test", "test the gateway's external services");
    test->require_subcommand(1);
    auto* qkd = test->add_subcommand("qkd", "test a QKD profile against its KME (ETSI GS QKD 014)");
    qkd->require_subcommand(1);

    static std::string conn_profile, conn_peer;
    auto* conn = qkd->add_subcommand("connectivity", "ETSI 014 Get status: status fields, TLS version/group, RTT");
    conn->add_option("PROFILE", conn_profile, "QKD profile name")->required();
    conn->add_option("--peer-sae-id", conn_peer,
                     "slave SAE ID named in Get status (default: the peer_sae_id of every [[gateway]] using the "
                     "profile; with none, only TLS and HTTP are checked)");
    conn->add_flag("--json", opts.json, "machine-readable JSON output");
    conn->callback([&opts] {
        quiet_logs();
        opts.exit_code = test_connectivity(opts, conn_profile, conn_peer);
    });

    static KeyArgs enc, dec;
    auto* gk = qkd->add_subcommand("get-key", "ETSI 014 Get key (master side): prints key_IDs, key hidden");
    add_key_options(gk, enc, opts);
    gk->add_option("--peer-sae-id", enc.peer_sae_id, "slave SAE ID (the peer gateway)")->required();
    gk->add_option("--number", enc.number, "number of keys")->check(CLI::Range(1, sae::kMaxKeysPerCall));
    gk->callback([&opts] {
        quiet_logs();
        opts.exit_code = test_get_key(opts, enc);
    });

    auto* gkid = qkd->add_subcommand("get-key-with-id", "ETSI 014 Get key with key IDs (slave side)");
    add_key_options(gkid, dec, opts);
    gkid->add_option("--peer-sae-id", dec.peer_sae_id, "master SAE ID (the gateway that called get-key)")->required();
    gkid->add_option("KEY_ID", dec.key_ids, "key_IDs printed by get-key on the master side")->required();
    gkid->callback([&opts] {
        quiet_logs();
        opts.exit_code = test_get_key_with_id(opts, dec);
    });
}

}  // namespace qkdgate
