// Strict checks of KME answers: status code, content type, body model, and agreement with the
// request (numbers, sizes, IDs). key_IDs are opaque strings (etsi014.md 1.8): never parsed.
#include "qkd/sae/answer.hpp"

#include <set>

#include "qkd/common/encoding.hpp"
#include "qkd/etsi014/codec.hpp"

namespace qkd::sae {
namespace {

using Fail = qkd::Err<Error>;

constexpr std::size_t kQuoteLimit = 300;

// A printable excerpt of a (non-key) body for error messages.
std::string excerpt(std::string_view body) {
    std::string out;
    for (char c : body.substr(0, kQuoteLimit)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f) out += c;
        else if (c == '\n' || c == '\r' || c == '\t') out += ' ';
        else out += '?';
    }
    if (body.size() > kQuoteLimit) out += "...";
    return out;
}

Fail bad_answer(std::string m) { return Fail{Error(Errc::bad_answer, std::move(m))}; }

// ETSI 014 4: answers are application/json. A missing Content-Type is tolerated; another media
// type (an HTML error page of a proxy, say) is not.
qkd::Result<bool, Error> check_content_type(const HttpAnswer& a) {
    if (a.content_type.empty()) return true;
    std::string media = a.content_type.substr(0, a.content_type.find(';'));
    while (!media.empty() && media.back() == ' ') media.pop_back();
    for (auto& c : media) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (media != "application/json")
        return bad_answer("Content-Type is \"" + excerpt(a.content_type) + "\"; expected application/json");
    return true;
}

}  // namespace

Error http_error(const HttpAnswer& a) {
    Error e;
    e.http_status = a.status;
    switch (a.status) {
        case 400: e.code = Errc::bad_request; break;
        case 401: e.code = Errc::unauthorized; break;
        case 503: e.code = Errc::server_error; break;
        default: e.code = Errc::http_status; break;
    }
    // ETSI 014 6.5: 400 and 503 carry an Error body {message, details}; 401 has none defined.
    auto body = qkd::etsi014::decode_error(a.body);
    if (body) {
        e.message = "KME answered HTTP " + std::to_string(a.status) + " with message \"" + body->message + "\"";
        e.etsi = std::move(*body);
    } else if (a.body.empty()) {
        e.message = "KME answered HTTP " + std::to_string(a.status) + " with an empty body";
    } else if (a.body.find("\"key\"") != std::string::npos) {
        // Never quote a body that looks like it carries key material.
        e.message = "KME answered HTTP " + std::to_string(a.status) + " without an ETSI Error body (" +
                    body.error().message + "); body not shown: it holds a \"key\" field";
    } else {
        e.message = "KME answered HTTP " + std::to_string(a.status) + " without an ETSI Error body (" +
                    body.error().message + "); body: \"" + excerpt(a.body) + "\"";
    }
    if (e.code == Errc::http_status) e.message += "; ETSI 014 defines only 200, 400, 401 and 503";
    return e;
}

qkd::Result<qkd::etsi014::Status, Error> process_status_answer(const HttpAnswer& a, const StatusExpect& e) {
    if (a.status != 200) return Fail{http_error(a)};
    auto ct = check_content_type(a);
    if (!ct) return Fail{ct.error()};
    auto s = qkd::etsi014::decode_status(a.body);
    if (!s) return bad_answer("Status: " + s.error().message);
    // ETSI 014 6.1: the status describes the pair (caller as master, the SAE in the URL as slave).
    if (s->slave_SAE_ID != e.slave_SAE_ID)
        return bad_answer("Status: slave_SAE_ID is \"" + s->slave_SAE_ID + "\"; expected \"" + e.slave_SAE_ID +
                          "\" as named in the request");
    if (s->master_SAE_ID != e.master_SAE_ID)
        return bad_answer("Status: master_SAE_ID is \"" + s->master_SAE_ID + "\"; expected this SAE, \"" +
                          e.master_SAE_ID + "\" (the KME identifies the client certificate differently)");
    if (e.kme_id && s->source_KME_ID != *e.kme_id)
        return bad_answer("Status: source_KME_ID is \"" + s->source_KME_ID + "\"; expected kme_id \"" + *e.kme_id + "\"");
    if (s->key_size <= 0 || s->min_key_size <= 0 || s->max_key_size < s->min_key_size || s->max_key_per_request < 0 ||
        s->stored_key_count < 0 || s->max_key_count < 0 || s->max_SAE_ID_count < 0)
        return bad_answer("Status: inconsistent sizes or counts (key_size " + std::to_string(s->key_size) +
                          ", min_key_size " + std::to_string(s->min_key_size) + ", max_key_size " +
                          std::to_string(s->max_key_size) + "); expected positive sizes with min <= max");
    return std::move(*s);
}

qkd::Result<qkd::etsi014::KeyContainer, Error> process_keys_answer(HttpAnswer& a, const KeysExpect& e) {
    struct Wipe {
        std::string& s;
        ~Wipe() { qkd::wipe_string(s); }
    } wipe{a.body};
    if (a.status != 200) return Fail{http_error(a)};
    auto ct = check_content_type(a);
    if (!ct) return Fail{ct.error()};
    // The codec error text never quotes key material.
    auto c = qkd::etsi014::decode_key_container(a.body);
    if (!c) return bad_answer("Key container: " + c.error().message);
    if (c->keys.size() != e.number)
        return bad_answer("Key container has " + std::to_string(c->keys.size()) + " keys; expected " +
                          std::to_string(e.number));
    std::set<std::string_view> seen;
    for (std::size_t i = 0; i < c->keys.size(); ++i) {
        const auto& k = c->keys[i];
        // ETSI 014 6.3: key length = requested size (bits); Base64 of size/8 bytes.
        if (k.key.size() * 8 != e.size_bits)
            return bad_answer("keys[" + std::to_string(i) + "] (key_ID \"" + k.key_ID + "\") has " +
                              std::to_string(k.key.size() * 8) + " bits; expected " + std::to_string(e.size_bits));
        if (!seen.insert(k.key_ID).second)
            return bad_answer("key_ID \"" + k.key_ID + "\" appears twice in the key container; expected unique IDs");
    }
    if (!e.key_IDs.empty()) {
        for (const auto& want : e.key_IDs)
            if (!seen.contains(want))
                return bad_answer("key_ID \"" + want + "\" was requested but is missing from the answer");
    }
    return std::move(*c);
}

}  // namespace qkd::sae
