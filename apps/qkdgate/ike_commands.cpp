// The IKE commands of qkdgate: show ike-sa, show child-sa, initiate, terminate, rekey, reload.
// They talk to qkdgated over its control socket (qkd/daemon/control.hpp) and print either a
// readable table or, with --json, the daemon's JSON result unchanged.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "qkd/daemon/config.hpp"
#include "qkd/daemon/control.hpp"

namespace qkdgate {

namespace {

using qkd::daemon::ControlCmd;
using qkd::daemon::ControlRequest;
using json = nlohmann::json;

// CLI11 2.1 has no get_subcommand_no_throw: find or create a shared parent ("show").
CLI::App* get_or_add(CLI::App& app, const std::string& name, const std::string& help) {
    for (auto* s : app.get_subcommands([&](CLI::App* c) { return c->get_name() == name; })) return s;
    return app.add_subcommand(name, help);
}

std::string str(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return "-";
    if (it->is_string()) return it->get<std::string>();
    if (it->is_boolean()) return it->get<bool>() ? "yes" : "no";
    return it->dump();
}

std::string secs(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return "-";
    long s = it->get<long>();
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%lds", s);
    return buf;
}

std::string join(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_array()) return "-";
    std::string out;
    for (auto& e : *it) out += (out.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
    return out.empty() ? "-" : out;
}

void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> w(head.size());
    for (std::size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
    for (auto& r : rows)
        for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string>& r) {
        std::string s;
        for (std::size_t i = 0; i < r.size(); ++i) {
            s += r[i];
            if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
        }
        std::cout << s << "\n";
    };
    line(head);
    for (auto& r : rows) line(r);
}

// The socket named in the config's [daemon] table wins over the built-in default, unless -s was given.
std::string socket_path(const GlobalOptions& opts) {
    if (opts.socket_path != qkd::daemon::kDefaultControlSocket) return opts.socket_path;
    auto cfg = qkd::daemon::load_config(opts.config_path, qkd::daemon::LoadOptions{.read_psks = false});
    return cfg ? cfg->daemon.control_socket : opts.socket_path;
}

int call(GlobalOptions& opts, const ControlRequest& req, json& out) {
    // initiate --wait: the daemon answers once the SA is up or failed, within kControlWaitTimeout.
    const auto timeout = req.wait ? std::chrono::milliseconds(qkd::daemon::kControlWaitTimeout) + std::chrono::seconds(5)
                                  : std::chrono::milliseconds(std::chrono::seconds(30));
    auto r = qkd::daemon::control_call(socket_path(opts), req, timeout);
    if (!r) {
        std::cerr << "qkdgate: " << r.error().message << "\n";
        return r.error().code == qkd::daemon::Errc::engine ? 1 : 2;
    }
    out = std::move(*r);
    return 0;
}

// Filters of the show commands (a hub may list thousands of SAs).
struct ShowFilter {
    std::string gateway, peer;
};

// Every row of a show command, page by page (control.hpp: "after"/"next"), so that any number
// of SAs can be listed; rows arrive in id order.
int fetch_all(GlobalOptions& opts, ControlCmd cmd, const ShowFilter& f, json& rows) {
    rows = json::array();
    ControlRequest req{cmd, f.gateway, {}};
    req.peer = f.peer;
    req.after = 0;
    for (int page = 0; page < 100000; ++page) {
        json res;
        if (int rc = call(opts, req, res); rc != 0) return rc;
        if (!res.is_object() || !res.contains("items") || !res["items"].is_array()) {
            std::cerr << "qkdgate: qkdgated sent a show answer without \"items\" (an older qkdgated?)\n";
            return 2;
        }
        for (auto& r : res["items"]) rows.push_back(std::move(r));
        if (!res.contains("next") || !res["next"].is_number_unsigned()) return 0;
        req.after = res["next"].get<std::uint64_t>();
    }
    return 0;
}

// "attempt 3, next try 12:00:05Z (in 4.1s): peer did not answer 6 transmissions"
std::string note(const json& sa) {
    std::string out;
    if (sa.contains("attempt") && sa["attempt"].is_number()) out = "attempt " + sa["attempt"].dump();
    if (sa.value("gave_up", false)) out += out.empty() ? "gave up" : ", gave up (keyingtries)";
    if (sa.contains("next_try") && sa["next_try"].is_string()) {
        std::string t = sa["next_try"].get<std::string>();
        if (t.size() > 11) t = t.substr(11);  // the time of day
        char in[32] = "";
        if (sa.contains("next_try_in_ms") && sa["next_try_in_ms"].is_number())
            std::snprintf(in, sizeof in, " (in %.1fs)", sa["next_try_in_ms"].get<double>() / 1000.0);
        out += ", next try " + t + in;
    }
    if (sa.contains("last_error") && sa["last_error"].is_string() && !sa["last_error"].get<std::string>().empty())
        out += (out.empty() ? "" : ": ") + sa["last_error"].get<std::string>();
    return out.empty() ? "-" : out;
}

void show_ike_sa(GlobalOptions& opts, const ShowFilter& f) {
    json res;
    if ((opts.exit_code = fetch_all(opts, ControlCmd::show_ike_sa, f, res)) != 0) return;
    if (opts.json) {
        std::cout << res.dump(2) << "\n";
        return;
    }
    if (res.empty()) {
        std::cout << "no IKE SAs\n";
        return;
    }
    std::vector<std::vector<std::string>> rows;
    rows.reserve(res.size());
    for (auto& sa : res)
        rows.push_back({str(sa, "gateway"), str(sa, "state"), str(sa, "role"), str(sa, "remote"), str(sa, "remote_id"),
                        str(sa, "spi_i") + "/" + str(sa, "spi_r"), str(sa, "algorithm"), secs(sa, "age_s"),
                        secs(sa, "rekey_in_s"), str(sa, "child_sas"), note(sa)});
    print_table({"GATEWAY", "STATE", "ROLE", "PEER", "PEER-ID", "SPI-I/SPI-R", "ALGORITHM", "AGE", "REKEY-IN", "CHILDREN", "NOTE"},
                rows);
}

void show_child_sa(GlobalOptions& opts, const ShowFilter& f) {
    json res;
    if ((opts.exit_code = fetch_all(opts, ControlCmd::show_child_sa, f, res)) != 0) return;
    if (opts.json) {
        std::cout << res.dump(2) << "\n";
        return;
    }
    if (res.empty()) {
        std::cout << "no child SAs\n";
        return;
    }
    std::vector<std::vector<std::string>> rows;
    rows.reserve(res.size());
    for (auto& sa : res)
        rows.push_back({str(sa, "gateway"), str(sa, "spi_in") + "/" + str(sa, "spi_out"), join(sa, "local_ts"),
                        join(sa, "remote_ts"), str(sa, "algorithm"), str(sa, "bytes_in") + "/" + str(sa, "packets_in"),
                        str(sa, "bytes_out") + "/" + str(sa, "packets_out"), secs(sa, "age_s"), secs(sa, "rekey_in_s")});
    print_table({"GATEWAY", "SPI-IN/SPI-OUT", "LOCAL-TS", "REMOTE-TS", "ALGORITHM", "IN(B/PKT)", "OUT(B/PKT)", "AGE",
                 "REKEY-IN"},
                rows);
}

void action(GlobalOptions& opts, ControlRequest req) {
    json res;
    if ((opts.exit_code = call(opts, req, res)) != 0) return;
    if (opts.json) {
        std::cout << res.dump(2) << "\n";
        return;
    }
    std::cout << (res.is_object() && res.contains("message") ? res["message"].get<std::string>() : res.dump()) << "\n";
}

}  // namespace

void register_ike_commands(CLI::App& app, GlobalOptions& opts) {
    auto* show = get_or_add(app, "show", "show state of the gateway");
    show->require_subcommand(1);

    static ShowFilter filter;
    auto* ike = show->add_subcommand("ike-sa", "IKE SAs: state, peer, SPIs, algorithms, age, rekey time; gateways retrying");
    ike->add_option("GATEWAY", filter.gateway, "only this gateway");
    ike->add_option("--peer", filter.peer, "only SAs with this peer address or identity ('*' matches any characters)");
    ike->add_flag("--json", opts.json, "machine-readable JSON output");
    ike->callback([&opts] { show_ike_sa(opts, filter); });

    auto* child = show->add_subcommand("child-sa", "child (IPsec) SAs: SPIs, selectors, bytes/packets");
    child->add_option("GATEWAY", filter.gateway, "only this gateway");
    child->add_option("--peer", filter.peer, "only SAs with this peer address or identity ('*' matches any characters)");
    child->add_flag("--json", opts.json, "machine-readable JSON output");
    child->callback([&opts] { show_child_sa(opts, filter); });

    static std::string gw;
    static bool rekey_ike = false;
    auto* init = app.add_subcommand("initiate", "bring up the IKE SA and child SAs of a gateway");
    init->add_option("GATEWAY", gw, "gateway name from the config")->required();
    static bool wait = false;
    init->add_flag("--wait", wait, "answer once the IKE SA is established (exit 0) or has failed (exit 1), at most 60 s");
    init->add_flag("--json", opts.json, "machine-readable JSON output");
    init->callback([&opts] {
        ControlRequest req{ControlCmd::initiate, gw, {}};
        req.wait = wait;
        action(opts, req);
    });

    auto* term = app.add_subcommand("terminate", "delete the IKE SA (and its child SAs) of a gateway; no retries until initiate");
    term->add_option("GATEWAY", gw, "gateway name from the config")->required();
    term->add_flag("--json", opts.json, "machine-readable JSON output");
    term->callback([&opts] { action(opts, ControlRequest{ControlCmd::terminate, gw, {}}); });

    auto* reload = app.add_subcommand("reload",
                                       "re-read the config: new gateways start, removed ones stop, changed ones are "
                                       "re-established, the others keep their SAs (an invalid config is refused)");
    reload->add_flag("--json", opts.json, "machine-readable JSON output");
    reload->callback([&opts] { action(opts, ControlRequest{ControlCmd::reload, {}, {}}); });

    auto* rekey = app.add_subcommand("rekey", "rekey the child SAs of a gateway (--ike: the IKE SA)");
    rekey->add_option("GATEWAY", gw, "gateway name from the config")->required();
    rekey->add_flag("--ike", rekey_ike, "rekey the IKE SA instead of the child SAs");
    rekey->add_flag("--json", opts.json, "machine-readable JSON output");
    rekey->callback([&opts] {
        action(opts, ControlRequest{ControlCmd::rekey, gw, rekey_ike ? qkd::daemon::RekeyWhat::ike : qkd::daemon::RekeyWhat::child});
    });
}

}  // namespace qkdgate
