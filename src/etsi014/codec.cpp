// ETSI GS QKD 014 V1.1.1 clause 6: JSON codec. Parsing is bounded (size, nesting depth, array
// lengths) and typed: a field of the wrong type is an error that names the field and the type
// expected, never a silent default.
#include "qkd/etsi014/codec.hpp"

#include <fmt/format.h>

#include "qkd/common/encoding.hpp"

namespace qkd::etsi014 {
namespace {

using nlohmann::json;

// Quotes a bad value for an error message, shortened so a hostile body cannot flood logs.
std::string quote(const json& v) {
    std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
    if (s.size() > 64) s = s.substr(0, 61) + "...";
    return s;
}

const char* type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        case json::value_t::number_float: return "a fractional number";
        default: return "a number";
    }
}

CodecError err(std::string m) { return CodecError{std::move(m)}; }

// Checks nesting depth outside string literals before handing the text to the parser.
bool depth_ok(std::string_view s, std::size_t max_depth) {
    std::size_t depth = 0;
    bool in_str = false, esc = false;
    for (char c : s) {
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '{' || c == '[') {
            if (++depth > max_depth) return false;
        } else if (c == '}' || c == ']') {
            if (depth > 0) --depth;
        }
    }
    return true;
}

Decoded<json> parse_object(std::string_view body, std::string_view what) {
    if (body.size() > kMaxBodyBytes)
        return Err{err(fmt::format("{} body is {} bytes; at most {} expected", what, body.size(), kMaxBodyBytes))};
    if (!depth_ok(body, kMaxJsonDepth))
        return Err{err(fmt::format("{} body nests deeper than {} levels", what, kMaxJsonDepth))};
    json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Err{err(fmt::format("{} body is not valid JSON (RFC 8259)", what))};
    if (!j.is_object()) return Err{err(fmt::format("{} body must be a JSON object, got {}", what, type_name(j)))};
    return j;
}

Decoded<std::string> get_string(const json& o, const char* field, bool required, std::size_t max_len = kMaxIdLength) {
    auto it = o.find(field);
    if (it == o.end()) {
        if (required) return Err{err(fmt::format("missing field '{}' (a string)", field))};
        return std::string{};
    }
    if (!it->is_string()) return Err{err(fmt::format("field '{}' must be a string, got {}", field, type_name(*it)))};
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > max_len) return Err{err(fmt::format("field '{}' is {} characters; at most {} expected", field, s.size(), max_len))};
    return s;
}

Decoded<std::optional<std::int64_t>> get_int(const json& o, const char* field, bool required) {
    auto it = o.find(field);
    if (it == o.end()) {
        if (required) return Err{err(fmt::format("missing field '{}' (an integer)", field))};
        return std::optional<std::int64_t>{};
    }
    if (it->is_number_unsigned()) {
        auto v = it->get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(INT64_MAX)) return Err{err(fmt::format("field '{}' is out of range: {}", field, quote(*it)))};
        return std::optional<std::int64_t>{static_cast<std::int64_t>(v)};
    }
    if (it->is_number_integer()) return std::optional<std::int64_t>{it->get<std::int64_t>()};
    return Err{err(fmt::format("field '{}' must be an integer, got {} {}", field, type_name(*it), quote(*it)))};
}

std::optional<json> get_object_opt(const json& o, const char* field, CodecError& e, bool& bad) {
    auto it = o.find(field);
    if (it == o.end()) return std::nullopt;
    if (!it->is_object()) {
        e = err(fmt::format("field '{}' must be an object, got {}", field, type_name(*it)));
        bad = true;
        return std::nullopt;
    }
    return *it;
}

// extension_mandatory / extension_optional / details: an array of objects; each member of each
// object is one name/value pair.
Decoded<std::vector<Extension>> get_extensions(const json& o, const char* field) {
    std::vector<Extension> out;
    auto it = o.find(field);
    if (it == o.end()) return out;
    if (!it->is_array()) return Err{err(fmt::format("field '{}' must be an array of objects, got {}", field, type_name(*it)))};
    for (const auto& el : *it) {
        if (!el.is_object()) return Err{err(fmt::format("each entry of '{}' must be an object, got {}", field, type_name(el)))};
        for (const auto& [k, v] : el.items()) {
            if (out.size() >= kMaxExtensions) return Err{err(fmt::format("'{}' has more than {} entries", field, kMaxExtensions))};
            out.push_back({k, v});
        }
    }
    return out;
}

Decoded<void*> check_known(const json& o, std::initializer_list<std::string_view> known, std::string_view what) {
    for (const auto& [k, v] : o.items()) {
        bool found = false;
        for (auto n : known) found |= (k == n);
        if (!found) {
            std::string list;
            for (auto n : known) list += (list.empty() ? "" : ", ") + std::string(n);
            return Err{err(fmt::format("unknown field '{}' in {}; expected only {}", k.size() > 64 ? k.substr(0, 64) : k, what, list))};
        }
    }
    return static_cast<void*>(nullptr);
}

json extensions_json(const std::vector<Extension>& ext) {
    json a = json::array();
    for (const auto& e : ext) a.push_back(json::object({{e.name, e.value}}));
    return a;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e || c == '"' || c == '\\') {
            out += json(s).dump();  // escapes, and rejects invalid UTF-8
            return;
        }
    out += '"';
    out += s;
    out += '"';
}

std::string encode(const Status& s) {
    json j = {{"source_KME_ID", s.source_KME_ID},     {"target_KME_ID", s.target_KME_ID},
              {"master_SAE_ID", s.master_SAE_ID},     {"slave_SAE_ID", s.slave_SAE_ID},
              {"key_size", s.key_size},               {"stored_key_count", s.stored_key_count},
              {"max_key_count", s.max_key_count},     {"max_key_per_request", s.max_key_per_request},
              {"max_key_size", s.max_key_size},       {"min_key_size", s.min_key_size},
              {"max_SAE_ID_count", s.max_SAE_ID_count}};
    if (s.status_extension) j["status_extension"] = *s.status_extension;
    return j.dump();
}

std::string encode(const KeyRequest& r) {
    json j = json::object();
    if (r.number) j["number"] = *r.number;
    if (r.size) j["size"] = *r.size;
    if (!r.additional_slave_SAE_IDs.empty()) j["additional_slave_SAE_IDs"] = r.additional_slave_SAE_IDs;
    if (!r.extension_mandatory.empty()) j["extension_mandatory"] = extensions_json(r.extension_mandatory);
    if (!r.extension_optional.empty()) j["extension_optional"] = extensions_json(r.extension_optional);
    return j.dump();
}

std::string encode(const KeyIds& ids) {
    json a = json::array();
    for (const auto& k : ids.key_IDs) {
        json e = {{"key_ID", k.key_ID}};
        if (k.key_ID_extension) e["key_ID_extension"] = *k.key_ID_extension;
        a.push_back(std::move(e));
    }
    json j = {{"key_IDs", std::move(a)}};
    if (ids.key_IDs_extension) j["key_IDs_extension"] = *ids.key_IDs_extension;
    return j.dump();
}

std::string encode(const ErrorBody& e) {
    json j = {{"message", e.message}};
    if (!e.details.empty()) j["details"] = extensions_json(e.details);
    // Messages quote what the client sent (percent-decoded, possibly cut mid-character): invalid
    // UTF-8 becomes U+FFFD instead of an exception.
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Written by hand so the Base64 key text exists in exactly one buffer the caller can wipe.
std::string encode(const KeyContainer& c) {
    std::string out;
    std::size_t est = 32;
    for (const auto& k : c.keys) est += 48 + k.key_ID.size() + (k.key.size() + 2) / 3 * 4;
    out.reserve(est);
    out += "{\"keys\":[";
    for (std::size_t i = 0; i < c.keys.size(); ++i) {
        const auto& k = c.keys[i];
        if (i) out += ',';
        out += "{\"key_ID\":";
        append_json_string(out, k.key_ID);
        if (k.key_ID_extension) out += ",\"key_ID_extension\":" + k.key_ID_extension->dump();
        out += ",\"key\":\"";
        std::string b64 = base64_encode(k.key.view());
        out += b64;
        wipe_string(b64);
        out += '"';
        if (k.key_extension) out += ",\"key_extension\":" + k.key_extension->dump();
        out += '}';
    }
    out += ']';
    if (c.key_container_extension) out += ",\"key_container_extension\":" + c.key_container_extension->dump();
    out += '}';
    return out;
}

Decoded<Status> decode_status(std::string_view body) {
    auto j = parse_object(body, "Status");
    if (!j) return Err{j.error()};
    Status s;
    for (auto [field, dst] : {std::pair{"source_KME_ID", &s.source_KME_ID}, std::pair{"target_KME_ID", &s.target_KME_ID},
                              std::pair{"master_SAE_ID", &s.master_SAE_ID}, std::pair{"slave_SAE_ID", &s.slave_SAE_ID}}) {
        auto v = get_string(*j, field, true);
        if (!v) return Err{v.error()};
        *dst = std::move(*v);
    }
    for (auto [field, dst] : {std::pair{"key_size", &s.key_size}, std::pair{"stored_key_count", &s.stored_key_count},
                              std::pair{"max_key_count", &s.max_key_count},
                              std::pair{"max_key_per_request", &s.max_key_per_request},
                              std::pair{"max_key_size", &s.max_key_size}, std::pair{"min_key_size", &s.min_key_size},
                              std::pair{"max_SAE_ID_count", &s.max_SAE_ID_count}}) {
        auto v = get_int(*j, field, true);
        if (!v) return Err{v.error()};
        if (**v < 0) return Err{err(fmt::format("field '{}' must not be negative, got {}", field, **v))};
        *dst = **v;
    }
    CodecError e;
    bool bad = false;
    s.status_extension = get_object_opt(*j, "status_extension", e, bad);
    if (bad) return Err{e};
    return s;
}

namespace {

// Reads a JSON integer of 1 to 9 digits (no sign, no leading zero, no fraction) at the start of
// `b`; the caller checks what follows.
std::optional<std::int64_t> take_small_uint(std::string_view& b) {
    std::size_t n = 0;
    while (n < b.size() && n < 10 && b[n] >= '0' && b[n] <= '9') ++n;
    if (n == 0 || n > 9 || (n > 1 && b[0] == '0')) return std::nullopt;
    std::int64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v * 10 + (b[i] - '0');
    b.remove_prefix(n);
    return v;
}

// The compact key requests clients send ({"number":N,"size":M}, either order, or one of the two)
// read without building a JSON document; anything else goes through the full parser.
std::optional<KeyRequest> decode_key_request_compact(std::string_view b) {
    KeyRequest r;
    if (!b.starts_with('{')) return std::nullopt;
    b.remove_prefix(1);
    for (int field = 0; field < 2; ++field) {
        std::optional<std::int64_t>* dst = nullptr;
        if (b.starts_with(R"("number":)")) {
            dst = &r.number;
            b.remove_prefix(9);
        } else if (b.starts_with(R"("size":)")) {
            dst = &r.size;
            b.remove_prefix(7);
        }
        if (!dst || dst->has_value()) return std::nullopt;  // unknown or repeated field
        *dst = take_small_uint(b);
        if (!dst->has_value()) return std::nullopt;
        if (b == "}") return r;
        if (!b.starts_with(',')) return std::nullopt;
        b.remove_prefix(1);
    }
    return std::nullopt;
}

}  // namespace

Decoded<KeyRequest> decode_key_request(std::string_view body) {
    KeyRequest r;
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return r;  // empty POST body
    if (auto fast = decode_key_request_compact(body)) return std::move(*fast);
    auto j = parse_object(body, "Key request");
    if (!j) return Err{j.error()};
    auto known = check_known(*j, {"number", "size", "additional_slave_SAE_IDs", "extension_mandatory", "extension_optional"},
                             "the key request");
    if (!known) return Err{known.error()};
    auto n = get_int(*j, "number", false);
    if (!n) return Err{n.error()};
    r.number = *n;
    auto sz = get_int(*j, "size", false);
    if (!sz) return Err{sz.error()};
    r.size = *sz;
    if (auto it = j->find("additional_slave_SAE_IDs"); it != j->end()) {
        if (!it->is_array()) return Err{err(fmt::format("field 'additional_slave_SAE_IDs' must be an array of strings, got {}", type_name(*it)))};
        if (it->size() > kMaxSaeIdCount)
            return Err{err(fmt::format("'additional_slave_SAE_IDs' has {} entries; at most {} expected", it->size(), kMaxSaeIdCount))};
        for (const auto& id : *it) {
            if (!id.is_string() || id.get_ref<const std::string&>().empty() || id.get_ref<const std::string&>().size() > kMaxIdLength)
                return Err{err(fmt::format("each entry of 'additional_slave_SAE_IDs' must be a non-empty string of at most {} characters, got {}", kMaxIdLength, quote(id)))};
            r.additional_slave_SAE_IDs.push_back(id.get<std::string>());
        }
    }
    auto m = get_extensions(*j, "extension_mandatory");
    if (!m) return Err{m.error()};
    r.extension_mandatory = std::move(*m);
    auto o = get_extensions(*j, "extension_optional");
    if (!o) return Err{o.error()};
    r.extension_optional = std::move(*o);
    return r;
}

namespace {

// The compact form clients send, {"key_IDs":[{"key_ID":"..."},...]}, read without building a JSON
// document (that was a tenth of a slave's Get key with key IDs, measured with callgrind). Anything
// else (whitespace, extensions, escapes, errors) returns nullopt and goes through the full parser,
// so results and error messages are those of the full parser.
std::optional<KeyIds> decode_key_ids_compact(std::string_view b) {
    constexpr std::string_view head = R"({"key_IDs":[)", open = R"({"key_ID":")", close = R"("})", tail = "]}";
    if (b.size() > kMaxBodyBytes || !b.starts_with(head)) return std::nullopt;
    b.remove_prefix(head.size());
    KeyIds ids;
    for (;;) {
        if (!b.starts_with(open)) return std::nullopt;
        b.remove_prefix(open.size());
        const auto q = b.find('"');
        if (q == std::string_view::npos || q == 0 || q > kMaxIdLength) return std::nullopt;
        const auto id = b.substr(0, q);
        for (char c : id)
            if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e || c == '\\') return std::nullopt;
        b.remove_prefix(q);
        if (!b.starts_with(close)) return std::nullopt;
        b.remove_prefix(close.size());
        ids.key_IDs.push_back(KeyIdEntry{std::string(id), std::nullopt});
        if (ids.key_IDs.size() > kMaxKeysPerContainer) return std::nullopt;
        if (b.starts_with(',')) {
            b.remove_prefix(1);
            continue;
        }
        if (b == tail) return ids;
        return std::nullopt;
    }
}

}  // namespace

Decoded<KeyIds> decode_key_ids(std::string_view body) {
    if (auto fast = decode_key_ids_compact(body)) return std::move(*fast);
    auto j = parse_object(body, "Key IDs");
    if (!j) return Err{j.error()};
    auto known = check_known(*j, {"key_IDs", "key_IDs_extension"}, "the key IDs request");
    if (!known) return Err{known.error()};
    auto it = j->find("key_IDs");
    if (it == j->end()) return Err{err("missing field 'key_IDs' (an array of {\"key_ID\": ...} objects)")};
    if (!it->is_array()) return Err{err(fmt::format("field 'key_IDs' must be an array, got {}", type_name(*it)))};
    if (it->empty()) return Err{err("field 'key_IDs' is empty; at least one key_ID expected")};
    if (it->size() > kMaxKeysPerContainer)
        return Err{err(fmt::format("'key_IDs' has {} entries; at most {} expected", it->size(), kMaxKeysPerContainer))};
    KeyIds ids;
    for (const auto& el : *it) {
        if (!el.is_object()) return Err{err(fmt::format("each entry of 'key_IDs' must be an object, got {}", type_name(el)))};
        auto id = get_string(el, "key_ID", true);
        if (!id) return Err{id.error()};
        KeyIdEntry e{std::move(*id), std::nullopt};
        CodecError ce;
        bool bad = false;
        e.key_ID_extension = get_object_opt(el, "key_ID_extension", ce, bad);
        if (bad) return Err{ce};
        ids.key_IDs.push_back(std::move(e));
    }
    CodecError ce;
    bool bad = false;
    ids.key_IDs_extension = get_object_opt(*j, "key_IDs_extension", ce, bad);
    if (bad) return Err{ce};
    return ids;
}

Decoded<ErrorBody> decode_error(std::string_view body) {
    auto j = parse_object(body, "Error");
    if (!j) return Err{j.error()};
    auto m = get_string(*j, "message", true, 4096);
    if (!m) return Err{m.error()};
    auto d = get_extensions(*j, "details");
    if (!d) return Err{d.error()};
    return ErrorBody{std::move(*m), std::move(*d)};
}

Decoded<KeyContainer> decode_key_container(std::string_view body) {
    auto j = parse_object(body, "Key container");
    if (!j) return Err{j.error()};
    // Wipe every Base64 key string held by the parsed document, whatever path we leave by.
    struct Wiper {
        json& doc;
        ~Wiper() {
            auto it = doc.find("keys");
            if (it == doc.end() || !it->is_array()) return;
            for (auto& k : *it)
                if (k.is_object())
                    if (auto kt = k.find("key"); kt != k.end() && kt->is_string()) wipe_string(kt->get_ref<std::string&>());
        }
    } wiper{*j};
    auto it = j->find("keys");
    if (it == j->end()) return Err{err("missing field 'keys' (an array of key objects)")};
    if (!it->is_array()) return Err{err(fmt::format("field 'keys' must be an array, got {}", type_name(*it)))};
    if (it->size() > kMaxKeysPerContainer)
        return Err{err(fmt::format("'keys' has {} entries; at most {} expected", it->size(), kMaxKeysPerContainer))};
    KeyContainer c;
    for (std::size_t i = 0; i < it->size(); ++i) {
        const auto& el = (*it)[i];
        if (!el.is_object()) return Err{err(fmt::format("keys[{}] must be an object, got {}", i, type_name(el)))};
        auto id = get_string(el, "key_ID", true);
        if (!id) return Err{err(fmt::format("keys[{}]: {}", i, id.error().message))};
        if (id->empty()) return Err{err(fmt::format("keys[{}]: field 'key_ID' is empty", i))};
        auto kt = el.find("key");
        if (kt == el.end()) return Err{err(fmt::format("keys[{}]: missing field 'key' (Base64 key material)", i))};
        if (!kt->is_string()) return Err{err(fmt::format("keys[{}]: field 'key' must be a Base64 string, got {}", i, type_name(*kt)))};
        auto key = base64_decode_secret(kt->get_ref<const std::string&>());
        if (!key) return Err{err(fmt::format("keys[{}]: field 'key' is not canonical Base64 (RFC 4648 section 4)", i))};
        Key k{std::move(*id), std::move(*key), std::nullopt, std::nullopt};
        CodecError ce;
        bool bad = false;
        k.key_ID_extension = get_object_opt(el, "key_ID_extension", ce, bad);
        if (!bad) k.key_extension = get_object_opt(el, "key_extension", ce, bad);
        if (bad) return Err{err(fmt::format("keys[{}]: {}", i, ce.message))};
        c.keys.push_back(std::move(k));
    }
    CodecError ce;
    bool bad = false;
    c.key_container_extension = get_object_opt(*j, "key_container_extension", ce, bad);
    if (bad) return Err{ce};
    return c;
}

}  // namespace qkd::etsi014
