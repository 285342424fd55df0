// [[qkd_profile]] tables of the gateway config -> Profile values. Every error names the file, the
// line, the profile, the key and what was expected.
#include "qkd/sae/profile.hpp"

#include <boost/asio/ip/address.hpp>

#include <array>
#include <cmath>
#include <set>
#include <sstream>

#include "qkd/etsi014/model.hpp"

namespace qkd::sae {
namespace {

constexpr std::array<std::string_view, 14> kKnownKeys{
    "name",     "kme_url", "local_sae_id", "local_cert", "local_key",  "kme_ca_cert",   "kme_cert",
    "kme_id",   "timeout", "key_size",     "tls_groups", "pq_only",    "source_address", "description"};

using Fail = qkd::Err<std::string>;

struct Reader {
    const std::string& file;
    const toml::table& t;
    std::size_t index;
    std::string profile_name;  // once known

    std::string where(const toml::node* n) const {
        const auto& src = n != nullptr ? n->source() : t.source();
        std::string s = file + ":" + std::to_string(src.begin.line) + ": qkd_profile[" + std::to_string(index) + "]";
        if (!profile_name.empty()) s += " (\"" + profile_name + "\")";
        return s;
    }
    std::string err(std::string_view key, const std::string& what) const {
        return where(t.get(key)) + ": key '" + std::string(key) + "': " + what;
    }
    static std::string quote(const toml::node& n) {
        std::string s;
        if (n.is_table()) return "a table";
        if (n.is_array()) return "an array";
        if (const auto* v = n.as_string()) s = "\"" + v->get() + "\"";
        else if (const auto* i = n.as_integer()) s = std::to_string(i->get());
        else if (const auto* f = n.as_floating_point()) s = std::to_string(f->get());
        else if (const auto* b = n.as_boolean()) s = b->get() ? "true" : "false";
        else s = "a date/time";
        if (s.size() > 80) s = s.substr(0, 80) + "...";
        return s;
    }

    // Required (or optional when `required` is false) non-empty string of bounded length.
    qkd::Result<std::optional<std::string>, std::string> str(std::string_view key, bool required) const {
        const toml::node* n = t.get(key);
        if (n == nullptr) {
            if (required) return Fail{err(key, "missing; expected a non-empty string")};
            return std::optional<std::string>{};
        }
        const auto* s = n->as_string();
        if (s == nullptr) return Fail{err(key, "expected a string, got " + quote(*n))};
        const std::string& v = s->get();
        if (v.empty()) return Fail{err(key, "expected a non-empty string, got \"\"")};
        if (v.size() > qkd::etsi014::kMaxIdLength * 16)
            return Fail{err(key, "longer than " + std::to_string(qkd::etsi014::kMaxIdLength * 16) + " characters")};
        return std::optional<std::string>{v};
    }
};

std::filesystem::path resolve(const std::string& file, const std::string& p) {
    std::filesystem::path path(p);
    if (path.is_absolute()) return path;
    return std::filesystem::path(file).parent_path() / path;
}

qkd::Result<bool, std::string> check_id(const Reader& r, std::string_view key, const std::string& v) {
    if (v.size() > qkd::etsi014::kMaxIdLength)
        return Fail{r.err(key, "expected at most " + std::to_string(qkd::etsi014::kMaxIdLength) + " characters")};
    for (unsigned char c : v)
        if (c < 0x21 || c > 0x7e)
            return Fail{r.err(key, "\"" + v + "\" contains a space or control character; expected printable ASCII")};
    return true;
}

qkd::Result<Profile, std::string> parse_one(const toml::table& t, const std::string& file, std::size_t index) {
    Reader r{file, t, index, {}};
    for (const auto& [k, v] : t) {
        bool known = false;
        for (auto name : kKnownKeys) known = known || name == k.str();
        if (!known) {
            std::string list;
            for (auto name : kKnownKeys) list += (list.empty() ? "" : ", ") + std::string(name);
            return Fail{r.where(&v) + ": unknown key '" + std::string(k.str()) + "'; expected one of: " + list};
        }
    }
    Profile p;
    p.source_file = file;
    p.source_line = static_cast<int>(t.source().begin.line);
#define QKD_SAE_TRY(var, expr)                         \
    auto var = (expr);                                 \
    if (!var) return Fail{std::move(var.error())}

    QKD_SAE_TRY(name, r.str("name", true));
    p.name = **name;
    r.profile_name = p.name;
    QKD_SAE_TRY(url_text, r.str("kme_url", true));
    auto url = parse_kme_url(**url_text);
    if (!url) return Fail{r.err("kme_url", url.error())};
    p.kme_url = std::move(*url);
    QKD_SAE_TRY(sae, r.str("local_sae_id", true));
    p.local_sae_id = **sae;
    QKD_SAE_TRY(sae_ok, check_id(r, "local_sae_id", p.local_sae_id));
    QKD_SAE_TRY(cert, r.str("local_cert", true));
    p.local_cert = resolve(file, **cert);
    QKD_SAE_TRY(key, r.str("local_key", true));
    p.local_key = resolve(file, **key);
    QKD_SAE_TRY(ca, r.str("kme_ca_cert", true));
    p.kme_ca_cert = resolve(file, **ca);
    QKD_SAE_TRY(pin, r.str("kme_cert", false));
    if (*pin) p.kme_cert = resolve(file, **pin);
    QKD_SAE_TRY(kme_id, r.str("kme_id", false));
    if (*kme_id) {
        QKD_SAE_TRY(kme_ok, check_id(r, "kme_id", **kme_id));
        p.kme_id = **kme_id;
    }
    QKD_SAE_TRY(desc, r.str("description", false));
    // The "service route" of a firewall's QKD profile: KMEs often sit on a management network, so
    // the connections to the KME may have to leave from one local address.
    QKD_SAE_TRY(src, r.str("source_address", false));
    if (*src) {
        boost::system::error_code ec;
        auto a = boost::asio::ip::make_address(**src, ec);
        if (ec) return Fail{r.err("source_address", "\"" + **src + "\" is not an IP address; expected e.g. \"192.0.2.10\"")};
        p.source_address = a.to_string();
    }

    if (const toml::node* n = t.get("timeout")) {
        double secs = 0;
        if (const auto* i = n->as_integer()) secs = static_cast<double>(i->get());
        else if (const auto* f = n->as_floating_point()) secs = f->get();
        else return Fail{r.err("timeout", "expected a number of seconds, got " + Reader::quote(*n))};
        if (!std::isfinite(secs) || secs < 0.001 || secs > kMaxTimeoutSeconds)
            return Fail{r.err("timeout", "expected seconds in 0.001.." + std::to_string(int(kMaxTimeoutSeconds)) +
                                             ", got " + Reader::quote(*n))};
        p.timeout = std::chrono::milliseconds(static_cast<long long>(std::llround(secs * 1000.0)));
    } else {
        p.timeout = std::chrono::milliseconds(static_cast<long long>(kDefaultTimeoutSeconds * 1000));
    }
    if (const toml::node* n = t.get("key_size")) {
        const auto* i = n->as_integer();
        if (i == nullptr) return Fail{r.err("key_size", "expected an integer number of bits, got " + Reader::quote(*n))};
        const auto bits = i->get();
        if (bits <= 0 || bits % 8 != 0 || bits > static_cast<std::int64_t>(qkd::etsi014::kMaxKeyBits))
            return Fail{r.err("key_size", "expected a positive multiple of 8 up to " +
                                              std::to_string(qkd::etsi014::kMaxKeyBits) + " bits, got " +
                                              std::to_string(bits))};
        p.key_size = static_cast<int>(bits);
    }
    if (const toml::node* n = t.get("tls_groups")) {
        const auto* a = n->as_array();
        if (a == nullptr || a->empty())
            return Fail{r.err("tls_groups", "expected a non-empty array of group names, got " + Reader::quote(*n))};
        if (a->size() > 16) return Fail{r.err("tls_groups", "expected at most 16 groups")};
        for (const auto& g : *a) {
            const auto* s = g.as_string();
            if (s == nullptr) return Fail{r.err("tls_groups", "expected strings, got " + Reader::quote(g))};
            p.tls_groups.push_back(s->get());
        }
    }
    if (const toml::node* n = t.get("pq_only")) {
        const auto* b = n->as_boolean();
        if (b == nullptr) return Fail{r.err("pq_only", "expected true or false, got " + Reader::quote(*n))};
        p.pq_only = b->get();
    }
#undef QKD_SAE_TRY
    return p;
}

}  // namespace

qkd::Result<std::vector<Profile>, std::string> parse_profiles(const toml::table& root, const std::string& file) {
    std::vector<Profile> out;
    const toml::node* node = root.get("qkd_profile");
    if (node == nullptr) return out;
    const toml::array* arr = node->as_array();
    if (arr == nullptr || !arr->is_array_of_tables())
        return Fail{file + ":" + std::to_string(node->source().begin.line) +
                    ": 'qkd_profile' must be an array of tables, written [[qkd_profile]]"};
    if (arr->size() > kMaxProfiles)
        return Fail{file + ": at most " + std::to_string(kMaxProfiles) + " [[qkd_profile]] tables are allowed"};
    std::set<std::string> names;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        auto p = parse_one(*(*arr)[i].as_table(), file, i);
        if (!p) return Fail{std::move(p.error())};
        if (!names.insert(p->name).second)
            return Fail{file + ":" + std::to_string(p->source_line) + ": qkd_profile[" + std::to_string(i) +
                        "]: key 'name': \"" + p->name + "\" is already used by another profile; expected unique names"};
        out.push_back(std::move(*p));
    }
    return out;
}

qkd::Result<std::vector<Profile>, std::string> load_profiles_file(const std::string& file) {
    try {
        toml::table root = toml::parse_file(file);
        return parse_profiles(root, file);
    } catch (const toml::parse_error& e) {
        std::ostringstream os;
        os << file << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
        return Fail{os.str()};
    }
}

qkd::Result<Profile, std::string> find_profile(const std::vector<Profile>& profiles, const std::string& name,
                                               const std::string& file) {
    std::string names;
    for (const auto& p : profiles) {
        if (p.name == name) return p;
        names += (names.empty() ? "" : ", ") + ("\"" + p.name + "\"");
    }
    return Fail{file + ": no [[qkd_profile]] named \"" + name + "\"; " +
                (names.empty() ? std::string("the file has no [[qkd_profile]] table")
                               : "expected one of: " + names)};
}

}  // namespace qkd::sae
