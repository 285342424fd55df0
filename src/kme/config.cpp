#include "qkd/kme/config.hpp"

#include <fmt/format.h>


#include <cerrno>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <map>
#include <set>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace qkd::kme {
namespace {

namespace fs = std::filesystem;

struct Ctx {
    std::string file;
    fs::path dir;
    [[noreturn]] void fail(const std::string& key, const std::string& what) const {
        throw ConfigError(fmt::format("{}: key '{}': {}", file, key, what));
    }
    std::string path(const std::string& p) const {
        if (p.empty()) return p;
        fs::path x(p);
        return x.is_absolute() ? p : (dir / x).lexically_normal().string();
    }
};

// A TOML value as written, for error messages.
std::string toml_text(const toml::node& n) {
    std::ostringstream o;
    n.visit([&](const auto& v) { o << v; });
    return o.str();
}

void check_known(const Ctx& c, const toml::table& t, const std::string& prefix, std::initializer_list<std::string_view> known) {
    for (const auto& [k, v] : t) {
        bool ok = false;
        for (auto n : known) ok |= (k.str() == n);
        if (!ok) {
            std::string list;
            for (auto n : known) list += (list.empty() ? "" : ", ") + std::string(n);
            c.fail(prefix + std::string(k.str()), "unknown key; expected one of: " + list);
        }
    }
}

std::string req_string(const Ctx& c, const toml::table& t, const std::string& prefix, const char* key) {
    auto n = t.get(key);
    if (!n) c.fail(prefix + key, "missing; a string is required");
    auto s = n->value<std::string>();
    if (!s || s->empty()) c.fail(prefix + key, "must be a non-empty string");
    return *s;
}

std::optional<std::string> opt_string(const Ctx& c, const toml::table& t, const std::string& prefix, const char* key) {
    auto n = t.get(key);
    if (!n) return std::nullopt;
    auto s = n->value<std::string>();
    if (!s) c.fail(prefix + key, "must be a string");
    return *s;
}

double opt_number(const Ctx& c, const toml::table& t, const std::string& prefix, const char* key, double def, double min, double max) {
    auto n = t.get(key);
    if (!n) return def;
    std::optional<double> v;
    if (n->is_integer()) v = static_cast<double>(*n->value<std::int64_t>());
    else if (n->is_floating_point()) v = *n->value<double>();
    if (!v) c.fail(prefix + key, "must be a number");
    if (*v < min || *v > max) c.fail(prefix + key, fmt::format("must be between {} and {}, got {}", min, max, *v));
    return *v;
}

std::int64_t opt_int(const Ctx& c, const toml::table& t, const std::string& prefix, const char* key, std::int64_t def,
                     std::int64_t min, std::int64_t max) {
    auto n = t.get(key);
    if (!n) return def;
    if (!n->is_integer()) c.fail(prefix + key, "must be an integer");
    auto v = *n->value<std::int64_t>();
    if (v < min || v > max) c.fail(prefix + key, fmt::format("must be between {} and {}, got {}", min, max, v));
    return v;
}

bool opt_bool(const Ctx& c, const toml::table& t, const std::string& prefix, const char* key, bool def) {
    auto n = t.get(key);
    if (!n) return def;
    auto v = n->value<bool>();
    if (!v || !n->is_boolean()) c.fail(prefix + key, "must be true or false");
    return *v;
}

std::vector<std::string> opt_string_list(const Ctx& c, const toml::table& t, const std::string& prefix, const char* key,
                                         std::vector<std::string> def) {
    auto n = t.get(key);
    if (!n) return def;
    auto a = n->as_array();
    if (!a) c.fail(prefix + key, "must be an array of strings");
    std::vector<std::string> out;
    for (const auto& e : *a) {
        auto s = e.value<std::string>();
        if (!s || !e.is_string() || s->empty()) c.fail(prefix + key, "must be an array of non-empty strings");
        out.push_back(*s);
    }
    return out;
}

std::pair<std::string, std::uint16_t> host_port(const Ctx& c, const std::string& key, const std::string& v) {
    auto colon = v.rfind(':');
    if (colon == std::string::npos || colon == 0) c.fail(key, fmt::format("expected HOST:PORT, got \"{}\"", v));
    std::string host = v.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    int port = -1;
    try {
        std::size_t used = 0;
        port = std::stoi(v.substr(colon + 1), &used);
        if (used != v.size() - colon - 1) port = -1;
    } catch (...) {
    }
    if (port < 0 || port > 65535) c.fail(key, fmt::format("expected HOST:PORT with a port 0-65535, got \"{}\"", v));
    return {host, static_cast<std::uint16_t>(port)};
}

LinkConfig parse_link(const Ctx& c, const toml::table& t, const std::string& prefix, bool seed_required) {
    LinkConfig l;
    if (auto dir = opt_string(c, t, prefix, "key_dir")) {
        // Real key material: the device sets the rate and the outages, and no seed is involved.
        if (dir->empty()) c.fail(prefix + "key_dir", "must be a non-empty path to the folder the QKD device drops key files in");
        for (const char* k : {"link_seed_file", "key_rate", "start_full", "outages"})
            if (t.contains(k))
                c.fail(prefix + k, "cannot be combined with 'key_dir' (key material comes from the key files; the key is for emulated "
                                   "links only): remove one of them");
        l.key_dir = c.path(*dir);
        if (auto d = opt_string(c, t, prefix, "key_dir_direction")) {
            if (*d == "both") l.key_dir_direction = KeyDirDirection::Both;
            else if (*d == "outgoing") l.key_dir_direction = KeyDirDirection::Outgoing;
            else if (*d == "incoming") l.key_dir_direction = KeyDirDirection::Incoming;
            else
                c.fail(prefix + "key_dir_direction", fmt::format("expected \"both\" (each key file split between the two directions), "
                                                                 "\"outgoing\" (all of it for keys whose master SAE is attached to this KME) "
                                                                 "or \"incoming\" (all of it for keys whose master SAE is attached to the peer), got \"{}\"", *d));
        }
        return l;
    }
    if (t.contains("key_dir_direction"))
        c.fail(prefix + "key_dir_direction", "applies to key files only: set key_dir as well, or remove it (an emulated link feeds both directions)");
    if (seed_required) l.seed_file = c.path(req_string(c, t, prefix, "link_seed_file"));
    else if (auto s = opt_string(c, t, prefix, "link_seed_file")) l.seed_file = c.path(*s);
    l.key_rate_bps = opt_number(c, t, prefix, "key_rate", 1e6, 0, 1e10);
    l.start_full = opt_bool(c, t, prefix, "start_full", true);
    if (auto n = t.get("outages")) {
        auto a = n->as_array();
        if (!a) c.fail(prefix + "outages", "must be an array of {start, duration, every} tables");
        for (std::size_t i = 0; i < a->size(); ++i) {
            auto ot = (*a)[i].as_table();
            std::string p = fmt::format("{}outages[{}].", prefix, i);
            if (!ot) c.fail(p, "must be a table {start, duration, every}");
            check_known(c, *ot, p, {"start", "duration", "every"});
            Outage o;
            o.start_s = opt_number(c, *ot, p, "start", 0, 0, 1e9);
            o.duration_s = opt_number(c, *ot, p, "duration", 0, 0, 1e9);
            o.every_s = opt_number(c, *ot, p, "every", 0, 0, 1e9);
            if (o.every_s > 0 && o.duration_s >= o.every_s) c.fail(p + "duration", "must be shorter than 'every'");
            l.outages.push_back(o);
        }
    }
    return l;
}

}  // namespace

// [[route]] tables (trusted-node relay): the KME of some SAEs and the peer that is the next hop
// towards it. Loops that span several KMEs' files are found at run time (a reservation carries the
// KMEs it passed and a KME that finds itself there refuses it).
static void parse_routes(Ctx& c, const toml::table& root, Config& cfg) {
    auto routes = root["route"].as_array();
    if (!routes) return;
    std::set<std::string> peers, targets;
    for (const auto& p : cfg.peers) peers.insert(p.kme_id);
    for (std::size_t i = 0; i < routes->size(); ++i) {
        auto t = (*routes)[i].as_table();
        std::string p = fmt::format("route[{}].", i);
        if (!t) c.fail(p, "each [[route]] must be a table");
        check_known(c, *t, p, {"kme_id", "via", "saes"});
        RouteConfig r;
        r.kme_id = req_string(c, *t, p, "kme_id");
        r.via = req_string(c, *t, p, "via");
        r.saes = opt_string_list(c, *t, p, "saes", {});
        if (r.kme_id == cfg.kme_id) c.fail(p + "kme_id", "a route to this KME itself would loop; list its SAEs under [[sae]]");
        if (peers.count(r.kme_id))
            c.fail(p + "kme_id", fmt::format("{} is a [[peer]] (a direct link); list its SAEs in that [[peer]]'s saes instead", r.kme_id));
        if (!targets.insert(r.kme_id).second) c.fail(p + "kme_id", fmt::format("a second route to {}; one route per KME", r.kme_id));
        if (r.via == cfg.kme_id) c.fail(p + "via", "the next hop cannot be this KME itself (the route would loop)");
        if (!peers.count(r.via)) {
            std::string known;
            for (const auto& k : peers) known += (known.empty() ? "" : ", ") + k;
            c.fail(p + "via", fmt::format("\"{}\" is not a [[peer]] of this KME; the next hop must be one ({})", r.via,
                                          known.empty() ? "none configured" : known));
        }
        if (r.saes.empty()) c.fail(p + "saes", fmt::format("list the SAE IDs attached to {}", r.kme_id));
        cfg.routes.push_back(std::move(r));
    }
}

Config parse_config(const std::string& text, const std::string& file) {
    Ctx c{file, fs::path(file).parent_path()};
    toml::table root;
    try {
        root = toml::parse(text, file);
    } catch (const toml::parse_error& e) {
        throw ConfigError(fmt::format("{}:{}:{}: invalid TOML: {}", file, e.source().begin.line, e.source().begin.column,
                                      e.description()));
    }
    check_known(c, root, "", {"kme", "keys", "identity", "sae", "peer", "local_link", "route"});
    Config cfg;
    cfg.file = file;
    auto kme = root["kme"].as_table();
    if (!kme) c.fail("kme", "missing [kme] table");
    check_known(c, *kme, "kme.",
                {"id", "listen", "cert", "key", "ca", "tls_min_version", "tls_groups", "pq_only", "state_db", "state_sync", "metrics_listen",
                 "log_level", "threads", "cpu_affinity", "request_timeout", "max_body_bytes", "max_connections", "strict"});
    cfg.kme_id = req_string(c, *kme, "kme.", "id");
    std::tie(cfg.listen_host, cfg.listen_port) = host_port(c, "kme.listen", req_string(c, *kme, "kme.", "listen"));
    cfg.cert = c.path(req_string(c, *kme, "kme.", "cert"));
    cfg.key = c.path(req_string(c, *kme, "kme.", "key"));
    cfg.ca = c.path(req_string(c, *kme, "kme.", "ca"));
    cfg.tls_min_version = opt_string(c, *kme, "kme.", "tls_min_version").value_or("1.3");
    if (cfg.tls_min_version != "1.2" && cfg.tls_min_version != "1.3")
        c.fail("kme.tls_min_version", fmt::format("expected \"1.2\" or \"1.3\", got \"{}\"", cfg.tls_min_version));
    cfg.tls_groups = opt_string_list(c, *kme, "kme.", "tls_groups", cfg.tls_groups);
    cfg.pq_only = opt_bool(c, *kme, "kme.", "pq_only", false);
    cfg.strict_forms = opt_bool(c, *kme, "kme.", "strict", false);
    cfg.state_db = c.path(req_string(c, *kme, "kme.", "state_db"));
    cfg.state_sync = opt_string(c, *kme, "kme.", "state_sync").value_or("normal");
    if (cfg.state_sync != "normal" && cfg.state_sync != "full")
        c.fail("kme.state_sync",
               fmt::format("expected \"normal\" (survives kill -9) or \"full\" (fsync every commit; survives a power loss), got \"{}\"",
                           cfg.state_sync));
    if (auto m = opt_string(c, *kme, "kme.", "metrics_listen")) {
        auto [h, p] = host_port(c, "kme.metrics_listen", *m);
        cfg.metrics_host = h;
        cfg.metrics_port = p;
    }
    cfg.log_level = opt_string(c, *kme, "kme.", "log_level").value_or("info");
    if (cfg.log_level != "trace" && cfg.log_level != "debug" && cfg.log_level != "info" && cfg.log_level != "warn" &&
        cfg.log_level != "error" && cfg.log_level != "off")
        c.fail("kme.log_level", "expected one of trace, debug, info, warn, error, off");
    cfg.threads = static_cast<int>(opt_int(c, *kme, "kme.", "threads", 0, 0, 64));
    if (auto n = kme->get("cpu_affinity")) {
        // Like nginx's worker_cpu_affinity: event-loop thread i runs on the i-th CPU of the list
        // (round robin when there are more threads than CPUs).
        auto a = n->as_array();
        if (!a || a->empty()) c.fail("kme.cpu_affinity", "must be a non-empty array of CPU numbers, e.g. [0] or [0, 1]");
        for (const auto& e : *a) {
            auto v = e.value<std::int64_t>();
            if (!e.is_integer() || !v || *v < 0 || *v >= kMaxCpu)
                c.fail("kme.cpu_affinity", fmt::format("must be an array of CPU numbers 0-{}, got {}", kMaxCpu - 1, toml_text(e)));
            cfg.cpu_affinity.push_back(static_cast<int>(*v));
        }
    }
    cfg.request_timeout = std::chrono::milliseconds(
        static_cast<std::int64_t>(opt_number(c, *kme, "kme.", "request_timeout", 10, 0.01, 3600) * 1000));
    cfg.max_body_bytes = static_cast<std::size_t>(opt_int(c, *kme, "kme.", "max_body_bytes", 65536, 256, 1 << 20));
    cfg.max_connections = static_cast<std::size_t>(opt_int(c, *kme, "kme.", "max_connections", 10000, 1, 1'000'000));

    if (auto keys = root["keys"].as_table()) {
        check_known(c, *keys, "keys.",
                    {"default_key_size", "min_key_size", "max_key_size", "max_key_per_request", "max_key_count",
                     "max_SAE_ID_count", "reservation_ttl"});
        auto& l = cfg.limits;
        l.min_key_size = opt_int(c, *keys, "keys.", "min_key_size", 64, 8, 65536);
        l.max_key_size = opt_int(c, *keys, "keys.", "max_key_size", 1024, l.min_key_size, 65536);
        l.default_key_size = opt_int(c, *keys, "keys.", "default_key_size", 256, l.min_key_size, l.max_key_size);
        for (auto [k, v] : {std::pair{"min_key_size", l.min_key_size}, std::pair{"max_key_size", l.max_key_size},
                            std::pair{"default_key_size", l.default_key_size}})
            if (v % 8 != 0) c.fail(std::string("keys.") + k, fmt::format("must be a multiple of 8 bits, got {}", v));
        l.max_key_per_request = opt_int(c, *keys, "keys.", "max_key_per_request", 128, 1, 1024);
        l.max_key_count = opt_int(c, *keys, "keys.", "max_key_count", 100000, 1, 1'000'000'000);
        l.max_SAE_ID_count = opt_int(c, *keys, "keys.", "max_SAE_ID_count", 4, 0, 64);
        cfg.reservation_ttl = std::chrono::seconds(opt_int(c, *keys, "keys.", "reservation_ttl", 300, 1, 86400 * 30));
    } else if (root.contains("keys")) {
        c.fail("keys", "must be a table");
    }

    if (auto id = root["identity"].as_table()) {
        check_known(c, *id, "identity.", {"rule", "uri_prefix", "fingerprints"});
        auto rule = opt_string(c, *id, "identity.", "rule").value_or("san_uri");
        if (rule == "san_uri") cfg.identity_rule = IdentityRule::SanUri;
        else if (rule == "san_dns") cfg.identity_rule = IdentityRule::SanDns;
        else if (rule == "cn") cfg.identity_rule = IdentityRule::CommonName;
        else if (rule == "fingerprint") cfg.identity_rule = IdentityRule::Fingerprint;
        else c.fail("identity.rule", fmt::format("expected san_uri, san_dns, cn or fingerprint, got \"{}\"", rule));
        cfg.identity_uri_prefix = opt_string(c, *id, "identity.", "uri_prefix").value_or("");
        if (auto fp = (*id)["fingerprints"].as_table()) {
            for (const auto& [k, v] : *fp) {
                std::string hex;
                for (char ch : k.str())
                    if (ch != ':') hex += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
                    c.fail("identity.fingerprints." + std::string(k.str()), "expected a SHA-256 fingerprint (64 hex digits)");
                auto s = v.value<std::string>();
                if (!s || s->empty()) c.fail("identity.fingerprints." + std::string(k.str()), "expected an SAE ID string");
                cfg.fingerprints[hex] = *s;
            }
        }
        if (cfg.identity_rule == IdentityRule::Fingerprint && cfg.fingerprints.empty())
            c.fail("identity.fingerprints", "rule \"fingerprint\" needs at least one fingerprint = SAE ID entry");
    }

    if (auto saes = root["sae"].as_array()) {
        for (std::size_t i = 0; i < saes->size(); ++i) {
            auto t = (*saes)[i].as_table();
            std::string p = fmt::format("sae[{}].", i);
            if (!t) c.fail(p, "each [[sae]] must be a table");
            check_known(c, *t, p, {"id"});
            cfg.saes.push_back(req_string(c, *t, p, "id"));
        }
    }
    if (cfg.saes.empty()) c.fail("sae", "at least one [[sae]] with an id attached to this KME is required");

    if (auto ll = root["local_link"].as_table()) {
        check_known(c, *ll, "local_link.", {"link_seed_file", "key_rate", "start_full", "outages"});
        cfg.local_link = parse_link(c, *ll, "local_link.", false);
    }

    if (auto peers = root["peer"].as_array()) {
        for (std::size_t i = 0; i < peers->size(); ++i) {
            auto t = (*peers)[i].as_table();
            std::string p = fmt::format("peer[{}].", i);
            if (!t) c.fail(p, "each [[peer]] must be a table");
            check_known(c, *t, p, {"kme_id", "url", "saes", "key_dir", "key_dir_direction", "link_seed_file", "key_rate", "start_full",
                                    "outages", "sync_timeout", "prefetch_keys"});
            PeerConfig pc;
            pc.kme_id = req_string(c, *t, p, "kme_id");
            if (pc.kme_id == cfg.kme_id) c.fail(p + "kme_id", "must differ from this KME's own id");
            pc.url = req_string(c, *t, p, "url");
            if (pc.url.rfind("https://", 0) != 0) c.fail(p + "url", fmt::format("expected https://HOST:PORT, got \"{}\"", pc.url));
            pc.saes = opt_string_list(c, *t, p, "saes", {});
            pc.link = parse_link(c, *t, p, true);
            pc.sync_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(opt_number(c, *t, p, "sync_timeout", 2, 0.001, 600) * 1000));
            // Real key material is scarce and a stocked key that ages out is burned: no stock by
            // default on a key-file link.
            pc.prefetch_keys = static_cast<std::size_t>(opt_int(c, *t, p, "prefetch_keys", pc.link.key_dir.empty() ? 256 : 0, 0, 4096));
            cfg.peers.push_back(std::move(pc));
        }
    }
    parse_routes(c, root, cfg);
    for (std::size_t i = 0; i < cfg.peers.size(); ++i) {
        const auto& pc = cfg.peers[i];
        const bool relays = std::any_of(cfg.routes.begin(), cfg.routes.end(), [&](const RouteConfig& r) { return r.via == pc.kme_id; });
        if (pc.saes.empty() && !relays)
            c.fail(fmt::format("peer[{}].saes", i), "list the SAE IDs attached to this peer KME (a relay with none needs a [[route]] via it)");
    }
    // SAE IDs must be unique across this KME, its peers and its routes: an ID names exactly one KME.
    std::map<std::string, std::string> owner;
    auto claim = [&](const std::string& sae, const std::string& kme, const std::string& key) {
        auto [it, fresh] = owner.emplace(sae, kme);
        if (!fresh) c.fail(key, fmt::format("SAE ID \"{}\" is already attached to {}", sae, it->second));
    };
    for (const auto& s : cfg.saes) claim(s, cfg.kme_id, "sae");
    for (std::size_t i = 0; i < cfg.peers.size(); ++i)
        for (const auto& s : cfg.peers[i].saes) claim(s, cfg.peers[i].kme_id, fmt::format("peer[{}].saes", i));
    for (std::size_t i = 0; i < cfg.routes.size(); ++i)
        for (const auto& s : cfg.routes[i].saes) claim(s, cfg.routes[i].kme_id, fmt::format("route[{}].saes", i));
    // Two links on one folder would read the same files: both would hand out the same bytes.
    std::map<std::string, std::size_t> dirs;
    for (std::size_t i = 0; i < cfg.peers.size(); ++i) {
        const auto& d = cfg.peers[i].link.key_dir;
        if (d.empty()) continue;
        auto [it, fresh] = dirs.emplace(fs::path(d).lexically_normal().string(), i);
        if (!fresh)
            c.fail(fmt::format("peer[{}].key_dir", i), fmt::format("\"{}\" is also the key_dir of peer[{}] ({}); each link needs a folder of its own "
                                                                 "(two links on one folder would hand out the same key material)",
                                                                 d, it->second, cfg.peers[it->second].kme_id));
    }
    return cfg;
}

Config load_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw ConfigError(fmt::format("{}: cannot open config file", path));
    std::stringstream ss;
    ss << in.rdbuf();
    auto cfg = parse_config(ss.str(), path);
    check_key_dirs(cfg);
    return cfg;
}

}  // namespace qkd::kme
