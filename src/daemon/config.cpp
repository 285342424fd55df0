// TOML -> Config. Strict: every key is known, every value typed and ranged; errors quote the
// bad value, name file:line and say what was expected.
#include "qkd/daemon/config.hpp"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

namespace qkd::daemon {

namespace {

using Fail = Err<DaemonError>;

DaemonError cfg_err(const std::string& path, const toml::source_region& src, std::string msg) {
    std::string where = path;
    if (src.begin.line > 0) where += ":" + std::to_string(src.begin.line);
    return DaemonError{Errc::config_value, where + ": " + std::move(msg)};
}

std::string describe(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string: return "string \"" + std::string(*n.value<std::string_view>()) + "\"";
        case toml::node_type::integer: return "integer " + std::to_string(*n.value<int64_t>());
        case toml::node_type::boolean: return std::string("boolean ") + (*n.value<bool>() ? "true" : "false");
        case toml::node_type::floating_point: return "float";
        case toml::node_type::table: return "table";
        case toml::node_type::array: return "array";
        default: return "date/time";
    }
}

// Reads the keys of one table, remembering which were consumed, so unknown keys can be refused.
class TableReader {
public:
    TableReader(const toml::table& t, const std::string& path, std::string ctx)
        : t_(t), path_(path), ctx_(std::move(ctx)) {}

    const toml::node* get(std::string_view key) {
        seen_.insert(std::string(key));
        return t_.get(key);
    }

    Result<void, DaemonError> str(std::string_view key, std::string& out, bool required = false) {
        auto* n = get(key);
        if (!n) {
            if (required) return Fail{err(t_.source(), "missing key '" + std::string(key) + "' (a string)")};
            return {};
        }
        auto v = n->value<std::string>();
        if (!n->is_string() || !v)
            return Fail{err(n->source(), "'" + std::string(key) + "' is " + describe(*n) + ", expected a string")};
        if (v->size() > 4096) return Fail{err(n->source(), "'" + std::string(key) + "' is longer than 4096 characters")};
        out = *v;
        return {};
    }

    Result<void, DaemonError> integer(std::string_view key, int64_t lo, int64_t hi, int64_t& out) {
        auto* n = get(key);
        if (!n) return {};
        if (!n->is_integer())
            return Fail{err(n->source(), "'" + std::string(key) + "' is " + describe(*n) + ", expected an integer")};
        int64_t v = *n->value<int64_t>();
        if (v < lo || v > hi)
            return Fail{err(n->source(), "'" + std::string(key) + "' = " + std::to_string(v) + " is out of range, expected " +
                                             std::to_string(lo) + ".." + std::to_string(hi))};
        out = v;
        return {};
    }

    Result<void, DaemonError> port(std::string_view key, std::uint16_t& out) {
        int64_t v = out;
        if (auto r = integer(key, 1, 65535, v); !r) return r;
        out = static_cast<std::uint16_t>(v);
        return {};
    }

    Result<void, DaemonError> boolean(std::string_view key, bool& out) {
        auto* n = get(key);
        if (!n) return {};
        if (!n->is_boolean())
            return Fail{err(n->source(), "'" + std::string(key) + "' is " + describe(*n) + ", expected true or false")};
        out = *n->value<bool>();
        return {};
    }

    // An integer or a float in [lo, hi].
    Result<void, DaemonError> number(std::string_view key, double lo, double hi, double& out) {
        auto* n = get(key);
        if (!n) return {};
        double v = 0;
        if (n->is_integer()) v = static_cast<double>(*n->value<int64_t>());
        else if (n->is_floating_point()) v = *n->value<double>();
        else return Fail{err(n->source(), "'" + std::string(key) + "' is " + describe(*n) + ", expected a number")};
        if (!(v >= lo && v <= hi)) {
            std::ostringstream m;
            m << "'" << key << "' = " << v << " is out of range, expected " << lo << ".." << hi;
            return Fail{err(n->source(), m.str())};
        }
        out = v;
        return {};
    }

    // Integer seconds or a string such as "90s", "45m", "4h", "1d".
    Result<void, DaemonError> duration(std::string_view key, std::chrono::seconds& out, int64_t max_s = 365 * 86400) {
        auto* n = get(key);
        if (!n) return {};
        std::chrono::seconds v{};
        if (n->is_integer()) {
            v = std::chrono::seconds(*n->value<int64_t>());
        } else if (n->is_string()) {
            auto r = parse_duration(*n->value<std::string_view>());
            if (!r) return Fail{err(n->source(), "'" + std::string(key) + "': " + r.error().message)};
            v = *r;
        } else {
            return Fail{err(n->source(), "'" + std::string(key) + "' is " + describe(*n) +
                                             ", expected seconds as an integer or a string like \"4h\"")};
        }
        if (v.count() < 0 || v.count() > max_s)
            return Fail{err(n->source(), "'" + std::string(key) + "' = " + std::to_string(v.count()) +
                                             "s is out of range, expected 0.." + std::to_string(max_s) + "s")};
        out = v;
        return {};
    }

    Result<void, DaemonError> cidrs(std::string_view key, std::vector<Cidr>& out) {
        auto* n = get(key);
        if (!n) return {};
        std::vector<std::string_view> items;
        if (n->is_string()) {
            items.push_back(*n->value<std::string_view>());
        } else if (auto* a = n->as_array()) {
            if (a->size() > kMaxSelectors)
                return Fail{err(n->source(), "'" + std::string(key) + "' has " + std::to_string(a->size()) +
                                                 " entries, at most " + std::to_string(kMaxSelectors) + " allowed")};
            for (auto& e : *a) {
                if (!e.is_string())
                    return Fail{err(e.source(), "'" + std::string(key) + "' entry is " + describe(e) +
                                                    ", expected a CIDR string like \"10.1.0.0/16\"")};
                items.push_back(*e.value<std::string_view>());
            }
        } else {
            return Fail{err(n->source(), "'" + std::string(key) + "' is " + describe(*n) + ", expected a list of CIDR strings")};
        }
        out.clear();
        for (auto s : items) {
            auto c = parse_cidr(s);
            if (!c) return Fail{err(n->source(), "'" + std::string(key) + "': " + c.error().message)};
            out.push_back(*c);
        }
        return {};
    }

    // A string or a non-empty list of strings (at most `max`).
    Result<void, DaemonError> strings(std::string_view key, std::vector<std::string>& out, std::size_t max) {
        auto* n = get(key);
        if (!n) return {};
        std::vector<std::string> items;
        if (n->is_string()) {
            items.emplace_back(*n->value<std::string_view>());
        } else if (auto* a = n->as_array()) {
            if (a->empty()) return Fail{err(n->source(), "'" + std::string(key) + "' is an empty list, expected at least one string")};
            if (a->size() > max)
                return Fail{err(n->source(), "'" + std::string(key) + "' has " + std::to_string(a->size()) + " entries, at most " +
                                                 std::to_string(max) + " allowed")};
            for (auto& e : *a) {
                if (!e.is_string())
                    return Fail{err(e.source(), "'" + std::string(key) + "' entry is " + describe(e) + ", expected a string")};
                items.emplace_back(*e.value<std::string_view>());
            }
        } else {
            return Fail{err(n->source(), "'" + std::string(key) + "' is " + describe(*n) + ", expected a string or a list of strings")};
        }
        for (auto& i : items)
            if (i.empty() || i.size() > 255)
                return Fail{err(n->source(), "'" + std::string(key) + "' entry \"" + i.substr(0, 64) + "\" must have 1..255 characters")};
        out = std::move(items);
        return {};
    }

    Result<void, DaemonError> no_unknown_keys() const {
        for (auto& [k, v] : t_) {
            if (!seen_.count(std::string(k.str())))
                return Fail{err(v.source(), "unknown key '" + std::string(k.str()) + "' in " + ctx_)};
        }
        return {};
    }

    DaemonError err(const toml::source_region& src, std::string msg) const {
        return cfg_err(path_, src, std::move(msg));
    }

private:
    const toml::table& t_;
    const std::string& path_;
    std::string ctx_;
    std::set<std::string> seen_;
};

#define QKD_TRY(expr)                       \
    do {                                    \
        if (auto _r = (expr); !_r) return Fail{_r.error()}; \
    } while (0)

Result<DaemonSettings, DaemonError> parse_daemon(const toml::table& t, const std::string& path) {
    DaemonSettings d;
    TableReader r(t, path, "[daemon]");
    QKD_TRY(r.str("control_socket", d.control_socket));
    QKD_TRY(r.str("log_level", d.log_level));
    QKD_TRY(r.str("dataplane", d.dataplane));
    QKD_TRY(r.port("ike_port", d.ike_port));
    QKD_TRY(r.port("natt_port", d.natt_port));
    QKD_TRY(r.str("tun_name", d.tun_name));
    QKD_TRY(r.number("retransmit_timeout", 0.1, 60, d.retransmit_timeout));
    QKD_TRY(r.number("retransmit_base", 1.0, 4.0, d.retransmit_base));
    int64_t tries = d.retransmit_tries;
    QKD_TRY(r.integer("retransmit_tries", 1, 20, tries));
    d.retransmit_tries = static_cast<unsigned>(tries);
    {
        // Prometheus endpoint on 127.0.0.1:metrics_port; 0 (the default) = off.
        int64_t mp = d.metrics_port;
        QKD_TRY(r.integer("metrics_port", 0, 65535, mp));
        d.metrics_port = static_cast<std::uint16_t>(mp);
    }
    QKD_TRY(r.no_unknown_keys());
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "off"};
    if (!levels.count(d.log_level))
        return Fail{r.err(t.source(), "[daemon] log_level = \"" + d.log_level +
                                          "\", expected trace, debug, info, warn, error or off")};
    if (d.dataplane != "auto" && d.dataplane != "userspace" && d.dataplane != "xfrm")
        return Fail{r.err(t.source(), "[daemon] dataplane = \"" + d.dataplane + "\", expected auto, userspace or xfrm")};
    if (d.tun_name.empty() || d.tun_name.size() > 15)
        return Fail{r.err(t.source(), "[daemon] tun_name = \"" + d.tun_name + "\", expected 1..15 characters")};
    if (d.ike_port == d.natt_port)
        return Fail{r.err(t.source(), "[daemon] ike_port and natt_port are both " + std::to_string(d.ike_port) +
                                          ", expected two different ports")};
    if (d.control_socket.empty() || d.control_socket.size() >= 108)
        return Fail{r.err(t.source(), "[daemon] control_socket path must have 1..107 characters")};
    return d;
}

Result<QkdSettings, DaemonError> parse_qkd(const toml::table& t, const std::string& path, const std::string& gw) {
    QkdSettings q;
    TableReader r(t, path, "the qkd table of gateway '" + gw + "'");
    QKD_TRY(r.str("profile", q.profile, true));
    QKD_TRY(r.str("peer_sae_id", q.peer_sae_id, true));
    int64_t ks = q.key_size;
    QKD_TRY(r.integer("key_size", 128, 8192, ks));
    if (ks % 8 != 0) return Fail{r.err(t.source(), "qkd.key_size = " + std::to_string(ks) + ", expected a multiple of 8")};
    q.key_size = static_cast<unsigned>(ks);
    QKD_TRY(r.duration("timeout", q.timeout, 300));
    // The QKD key-exchange method's Transform Type 4 ID: private use is 1024..65535 (RFC 7296
    // 3.3.2, IANA); 65516 is the QURSA plugin's, so it interoperates by default.
    int64_t tid = q.transform_id;
    QKD_TRY(r.integer("transform_id", 1024, 65535, tid));
    q.transform_id = static_cast<std::uint16_t>(tid);
    if (q.timeout.count() == 0) return Fail{r.err(t.source(), "qkd.timeout is 0, expected 1..300 seconds")};
    std::string mode = "require";
    QKD_TRY(r.str("mode", mode));
    if (mode == "require") q.mode = QkdMode::require;
    else if (mode == "prefer") q.mode = QkdMode::prefer;
    else return Fail{r.err(t.source(), "qkd.mode = \"" + mode + "\", expected \"require\" or \"prefer\"")};
    if (q.profile.empty() || q.peer_sae_id.empty())
        return Fail{r.err(t.source(), "qkd.profile and qkd.peer_sae_id must not be empty")};
    QKD_TRY(r.no_unknown_keys());
    return q;
}

// The remote_id forms of qkd/ike/identity.hpp, checked here too so that errors name the file and
// line; the IKE layer parses the entries again (to_gateway_config).
std::optional<std::string> remote_id_problem(const std::vector<std::string>& ids, StartAction start) {
    std::set<std::string> seen;
    bool pattern = ids.size() > 1;
    for (const auto& id : ids) {
        std::string lower = id;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (!seen.insert(lower).second) return "remote_id lists \"" + id + "\" twice";
        if (id == "%any" || id == "*") {
            pattern = true;
            continue;
        }
        if (id.find('*') == std::string::npos) continue;
        pattern = true;
        if (id.starts_with("@#")) return "remote_id \"" + id + "\": a KEY_ID identity cannot contain '*'";
        std::string probe = id;
        std::replace(probe.begin(), probe.end(), '*', '1');
        in6_addr v6{};
        if (parse_ipv4(probe) || inet_pton(AF_INET6, probe.c_str(), &v6) == 1)
            return "remote_id \"" + id + "\": IP address identities cannot be patterns, list the addresses instead";
    }
    if (pattern && start == StartAction::start) {
        std::string all;
        for (const auto& id : ids) all += (all.empty() ? "" : ", ") + id;
        return "remote_id pattern \"" + all + "\" cannot be used to initiate (start_action = \"start\"): an initiator sends one "
               "exact identity as IDr; give one exact remote_id, or set start_action = \"none\" to respond only";
    }
    return std::nullopt;
}

bool valid_name(const std::string& n) {
    if (n.empty() || n.size() > 64) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    });
}

Result<GatewayEntry, DaemonError> parse_gateway(const toml::table& t, const std::string& path, const LoadOptions& opt) {
    GatewayEntry g;
    TableReader r(t, path, "[[gateway]]");
    QKD_TRY(r.str("name", g.name, true));
    if (!valid_name(g.name))
        return Fail{r.err(t.source(), "gateway name \"" + g.name + "\" is invalid, expected 1..64 of [A-Za-z0-9._-]")};
    std::string la, ra;
    QKD_TRY(r.str("local_address", la, true));
    QKD_TRY(r.str("remote_address", ra, true));
    auto l = parse_ipv4(la);
    if (!l) return Fail{r.err(t.source(), "gateway '" + g.name + "' local_address: " + l.error().message)};
    auto rr = parse_ipv4(ra);
    if (!rr) return Fail{r.err(t.source(), "gateway '" + g.name + "' remote_address: " + rr.error().message)};
    g.local_address = *l;
    g.remote_address = *rr;
    QKD_TRY(r.port("local_port", g.local_port));
    QKD_TRY(r.port("remote_port", g.remote_port));
    QKD_TRY(r.str("local_id", g.local_id));
    QKD_TRY(r.strings("remote_id", g.remote_id, kMaxRemoteIds));
    if (g.local_id.empty()) g.local_id = la;
    if (g.remote_id.empty()) g.remote_id = {ra};
    QKD_TRY(r.str("psk_file", g.psk_file, true));
    QKD_TRY(r.str("ike_proposals", g.ike_proposals));
    QKD_TRY(r.str("esp_proposals", g.esp_proposals));
    QKD_TRY(r.cidrs("local_ts", g.local_ts));
    QKD_TRY(r.cidrs("remote_ts", g.remote_ts));
    if (g.local_ts.empty() || g.remote_ts.empty())
        return Fail{r.err(t.source(), "gateway '" + g.name + "' needs local_ts and remote_ts (lists of CIDRs)")};
    QKD_TRY(r.duration("ike_lifetime", g.ike_lifetime));
    QKD_TRY(r.duration("ike_rekey_margin", g.ike_rekey_margin));
    QKD_TRY(r.duration("child_lifetime", g.child_lifetime));
    QKD_TRY(r.duration("child_rekey_margin", g.child_rekey_margin));
    QKD_TRY(r.duration("dpd_interval", g.dpd_interval, 3600));
    if (g.ike_lifetime.count() < 10 || g.child_lifetime.count() < 10)
        return Fail{r.err(t.source(), "gateway '" + g.name + "': lifetimes must be at least 10 seconds")};
    if (g.ike_rekey_margin >= g.ike_lifetime)
        return Fail{r.err(t.source(), "gateway '" + g.name + "': ike_rekey_margin (" + std::to_string(g.ike_rekey_margin.count()) +
                                          "s) must be smaller than ike_lifetime (" + std::to_string(g.ike_lifetime.count()) + "s)")};
    if (g.child_rekey_margin >= g.child_lifetime)
        return Fail{r.err(t.source(), "gateway '" + g.name + "': child_rekey_margin (" + std::to_string(g.child_rekey_margin.count()) +
                                          "s) must be smaller than child_lifetime (" + std::to_string(g.child_lifetime.count()) + "s)")};
    std::string start = "none";
    QKD_TRY(r.str("start_action", start));
    if (start == "none") g.start_action = StartAction::none;
    else if (start == "start") g.start_action = StartAction::start;
    else return Fail{r.err(t.source(), "gateway '" + g.name + "' start_action = \"" + start + "\", expected \"none\" or \"start\"")};
    if (auto problem = remote_id_problem(g.remote_id, g.start_action)) {
        auto* n = t.get("remote_id");
        return Fail{r.err(n ? n->source() : t.source(), "gateway '" + g.name + "' " + *problem)};
    }
    QKD_TRY(r.boolean("encap", g.force_encap));
    std::string dpd = "restart", close = "start";
    QKD_TRY(r.str("dpd_action", dpd));
    if (dpd == "restart") g.dpd_action = DpdAction::restart;
    else if (dpd == "clear") g.dpd_action = DpdAction::clear;
    else return Fail{r.err(t.source(), "gateway '" + g.name + "' dpd_action = \"" + dpd + "\", expected \"restart\" or \"clear\"")};
    QKD_TRY(r.str("close_action", close));
    if (close == "start") g.close_action = CloseAction::start;
    else if (close == "none") g.close_action = CloseAction::none;
    else return Fail{r.err(t.source(), "gateway '" + g.name + "' close_action = \"" + close + "\", expected \"start\" or \"none\"")};
    int64_t tries = 0;
    QKD_TRY(r.integer("keyingtries", 0, 1000000, tries));
    g.keyingtries = static_cast<unsigned>(tries);
    QKD_TRY(r.duration("retry_delay", g.retry_delay, 3600));
    QKD_TRY(r.duration("retry_delay_max", g.retry_delay_max, 86400));
    if (g.retry_delay.count() < 1)
        return Fail{r.err(t.source(), "gateway '" + g.name + "' retry_delay is 0, expected 1..3600 seconds")};
    if (g.retry_delay_max < g.retry_delay)
        return Fail{r.err(t.source(), "gateway '" + g.name + "' retry_delay_max (" + std::to_string(g.retry_delay_max.count()) +
                                          "s) is below retry_delay (" + std::to_string(g.retry_delay.count()) + "s)")};
    if (auto* q = r.get("qkd")) {
        auto* qt = q->as_table();
        if (!qt) return Fail{r.err(q->source(), "gateway '" + g.name + "' qkd is " + describe(*q) + ", expected a table")};
        auto qs = parse_qkd(*qt, path, g.name);
        if (!qs) return Fail{qs.error()};
        g.qkd = std::move(*qs);
    }
    QKD_TRY(r.no_unknown_keys());
    if (opt.read_psks) {
        auto psk = read_psk_file(g.psk_file, opt.strict_psk_permissions);
        if (!psk) return Fail{r.err(t.source(), "gateway '" + g.name + "': " + psk.error().message)};
        g.psk = std::move(*psk);
    }
    return g;
}

}  // namespace

const GatewayEntry* Config::find(std::string_view name) const {
    for (auto& g : gateways)
        if (g.name == name) return &g;
    return nullptr;
}

Result<Config, DaemonError> parse_config(std::string_view text, const std::string& path, const LoadOptions& opt) {
    if (text.size() > kMaxConfigBytes)
        return Fail{DaemonError{Errc::config_syntax, path + ": " + std::to_string(text.size()) +
                                                         " bytes, expected at most " + std::to_string(kMaxConfigBytes)}};
    toml::table root;
    try {
        root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        return Fail{DaemonError{Errc::config_syntax, path + ":" + std::to_string(e.source().begin.line) + ": " +
                                                         std::string(e.description())}};
    }
    Config c;
    c.path = path;
    for (auto& [k, v] : root) {
        auto key = k.str();
        if (key == "daemon") {
            auto* t = v.as_table();
            if (!t) return Fail{cfg_err(path, v.source(), "'daemon' is " + describe(v) + ", expected a [daemon] table")};
            auto d = parse_daemon(*t, path);
            if (!d) return Fail{d.error()};
            c.daemon = std::move(*d);
        } else if (key == "gateway" || key == "qkd_profile") {
            auto* a = v.as_array();
            if (!a || !a->is_array_of_tables())
                return Fail{cfg_err(path, v.source(), "'" + std::string(key) + "' must be written as [[" + std::string(key) + "]] tables")};
            if (key == "qkd_profile") {
                // Owned by the SAE layer; here only the names matter.
                for (auto& e : *a) {
                    auto name = (*e.as_table())["name"].value<std::string>();
                    if (!name) return Fail{cfg_err(path, e.source(), "[[qkd_profile]] without a string 'name'")};
                    c.qkd_profiles.push_back(*name);
                }
                continue;
            }
            if (a->size() > kMaxGateways)
                return Fail{cfg_err(path, v.source(), std::to_string(a->size()) + " gateways, at most " + std::to_string(kMaxGateways))};
            for (auto& e : *a) {
                auto g = parse_gateway(*e.as_table(), path, opt);
                if (!g) return Fail{g.error()};
                if (c.find(g->name))
                    return Fail{cfg_err(path, e.source(), "gateway name \"" + g->name + "\" is used twice, names must be unique")};
                c.gateways.push_back(std::move(*g));
            }
        } else {
            return Fail{cfg_err(path, v.source(), "unknown top-level key '" + std::string(key) +
                                                      "', expected [daemon], [[gateway]] or [[qkd_profile]]")};
        }
    }
    for (auto& g : c.gateways) {
        if (g.qkd && std::find(c.qkd_profiles.begin(), c.qkd_profiles.end(), g.qkd->profile) == c.qkd_profiles.end())
            return Fail{DaemonError{Errc::config_value, path + ": gateway '" + g.name + "' names qkd profile \"" +
                                                            g.qkd->profile + "\", but no [[qkd_profile]] has that name"}};
    }
    return c;
}

Result<Config, DaemonError> load_config(const std::string& path, const LoadOptions& opt) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return Fail{DaemonError{Errc::config_syntax, path + ": cannot open the config file"}};
    std::string text;
    text.resize(kMaxConfigBytes + 1);
    f.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(f.gcount()));
    return parse_config(text, path, opt);
}

}  // namespace qkd::daemon
