#include "request_forms.hpp"

#include <fmt/format.h>

#include <charconv>
#include <optional>

#include "qkd/etsi014/codec.hpp"

namespace qkd::kme {
namespace {

std::optional<std::int64_t> parse_int(std::string_view s) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

// A body of only white space counts as none (some clients send "\r\n" with a GET).
bool blank(std::string_view body) { return body.find_first_not_of(" \t\r\n") == std::string_view::npos; }

}  // namespace

qkd::Result<etsi014::KeyRequest, std::string> key_request_of(bool is_get, const Target& t, std::string_view body, bool strict) {
    const bool has_body = !blank(body), has_query = !t.query.empty();
    if (strict && is_get && has_body) return Err{std::string("the GET form of Get key carries no body; use POST")};
    if (strict && !is_get && has_query)
        return Err{std::string("the POST form of Get key takes its parameters in the JSON body, not the query")};
    // The query form (GET's, ETSI 014 5.3): number and size only.
    etsi014::KeyRequest q;
    for (const auto& [k, v] : t.query) {
        std::optional<std::int64_t>* dst = k == "number" ? &q.number : k == "size" ? &q.size : nullptr;
        if (!dst)
            return Err{fmt::format("query parameter '{}' is not allowed; the query form of Get key takes only number and size (use POST "
                                   "with a JSON body for more)",
                                   k.substr(0, 64))};
        if (dst->has_value()) return Err{fmt::format("query parameter '{}' is given twice", k)};
        auto n = parse_int(v);
        if (!n) return Err{fmt::format("query parameter '{}' must be an integer, got \"{}\"", k, v.substr(0, 32))};
        *dst = *n;
    }
    if (!has_body) return q;
    auto d = etsi014::decode_key_request(body);
    if (!d) return Err{d.error().message};
    etsi014::KeyRequest r = std::move(*d);
    auto merge = [](const char* name, std::optional<std::int64_t>& into, const std::optional<std::int64_t>& from) -> std::string {
        if (!from) return {};
        if (into && *into != *from)
            return fmt::format("'{}' is given twice with different values: {} in the query, {} in the JSON body; give it once", name, *from,
                               *into);
        into = from;
        return {};
    };
    if (auto e = merge("number", r.number, q.number); !e.empty()) return Err{e};
    if (auto e = merge("size", r.size, q.size); !e.empty()) return Err{e};
    return r;
}

qkd::Result<etsi014::KeyIds, std::string> key_ids_of(bool is_get, const Target& t, std::string_view body, bool strict) {
    const bool has_body = !blank(body), has_query = !t.query.empty();
    if (strict && is_get && has_body) return Err{std::string("the GET form of Get key with key IDs carries no body; use POST")};
    if (strict && !is_get && has_query) return Err{std::string("the POST form takes the key IDs in the JSON body, not the query")};
    // The query form (GET's, ETSI 014 5.4): exactly one key_ID.
    std::optional<std::string> q;
    for (const auto& [k, v] : t.query) {
        if (k != "key_ID")
            return Err{fmt::format("query parameter '{}' is not allowed; the query form takes exactly one key_ID", k.substr(0, 64))};
        if (q) return Err{std::string("the query form takes exactly one key_ID query parameter; give several in a POST body")};
        q = v;
    }
    if (!has_body) {
        if (!q) {
            if (is_get) return Err{std::string("the GET form takes exactly one key_ID query parameter; use POST for several")};
            auto d = etsi014::decode_key_ids(body);  // POST with no body: the codec says what is missing
            if (!d) return Err{d.error().message};
            return std::move(*d);
        }
        etsi014::KeyIds ids;
        ids.key_IDs.push_back(etsi014::KeyIdEntry{*q, std::nullopt});
        return ids;
    }
    auto d = etsi014::decode_key_ids(body);
    if (!d) return Err{d.error().message};
    if (q && (d->key_IDs.size() != 1 || d->key_IDs[0].key_ID != *q))
        return Err{fmt::format("key IDs are given twice with different values: key_ID {} in the query, {} key ID{} in the JSON body{}; give "
                               "them once",
                               q->substr(0, 64), d->key_IDs.size(), d->key_IDs.size() == 1 ? "" : "s",
                               d->key_IDs.size() == 1 ? " (" + d->key_IDs[0].key_ID.substr(0, 64) + ")" : "")};
    return std::move(*d);
}

}  // namespace qkd::kme
