// ETSI GS QKD 014 V1.1.1 clause 5: the three methods, their GET and POST forms, and the
// KME-to-KME reservation endpoint.
#include <utility>

#include "qkd/kme/router.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <utility>

#include "qkd/common/encoding.hpp"
#include "qkd/etsi014/codec.hpp"
#include "qkd/kme/sync_codec.hpp"

namespace qkd::kme {
namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace msg = etsi014::msg;

namespace {

// Bridges a callback API into the coroutine: the callback may fire on any thread; the coroutine
// resumes on its own executor.
template <class R, class Start>
auto async_call(Start start) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(R)>(
        [start = std::move(start)](auto handler) mutable {
            auto ex = asio::get_associated_executor(handler);
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            start([h, ex](R r) {
                auto rp = std::make_shared<R>(std::move(r));
                asio::post(ex, [h, rp]() mutable { (*h)(std::move(*rp)); });
            });
        },
        asio::use_awaitable);
}

HttpResponse json_response(const HttpRequest& req, http::status st, std::string body) {
    HttpResponse res{st, req.version()};
    res.set(http::field::server, "qkd-kme");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

HttpResponse error_response(const HttpRequest& req, const ApiError& e) {
    return json_response(req, static_cast<http::status>(e.status), etsi014::encode(etsi014::ErrorBody{e.message, e.details}));
}

HttpResponse bad_request(const HttpRequest& req, std::string detail) {
    // ETSI 014 6.5: the message says what was wrong and what was expected.
    return error_response(req, ApiError{400, std::move(detail), {}});
}

HttpResponse method_not_allowed(const HttpRequest& req, const char* allow) {
    auto res = json_response(req, http::status::method_not_allowed,
                             etsi014::encode(etsi014::ErrorBody{fmt::format("method {} not allowed here; use {}", std::string(req.method_string()), allow), {}}));
    res.set(http::field::allow, allow);
    return res;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

}  // namespace

asio::awaitable<Routed> route(HttpRequest req, const Caller& caller, KeyManager& km) {
    auto t = parse_target(std::string_view(req.target().data(), req.target().size()));
    if (!t) co_return Routed{bad_request(req, "request target is not a valid percent-encoded path"), Endpoint::Other};
    const auto& seg = t->segments;

    // KME-to-KME: POST /kme/v1/reserve, only from a configured peer KME.
    if (seg.size() == 3 && seg[0] == "kme" && seg[1] == "v1" && seg[2] == "reserve") {
        if (req.method() != http::verb::post) co_return Routed{method_not_allowed(req, "POST"), Endpoint::Reserve};
        if (!km.is_peer_kme(caller.cert_cn))
            co_return Routed{error_response(req, ApiError{401, std::string(msg::kUnauthorized), {}}), Endpoint::Reserve};
        auto batch = decode_sync_batch(req.body());
        if (!batch) co_return Routed{bad_request(req, batch.error()), Endpoint::Reserve};
        // GCC 12: keep the initiating function a named local, not a temporary in the co_await.
        auto reqs = std::make_shared<std::vector<SyncRequest>>(std::move(*batch));
        auto start = [&km, peer = caller.cert_cn, reqs](std::function<void(std::vector<std::string>)> done) {
            // The last completion may resume (and destroy) the coroutine frame holding this lambda
            // while the loop still runs: work only on local copies from here on.
            auto batch = reqs;
            auto me = peer;
            KeyManager& k = km;
            auto out = std::make_shared<std::vector<std::string>>(batch->size());
            auto left = std::make_shared<std::atomic<std::size_t>>(batch->size());
            const std::size_t n = batch->size();
            for (std::size_t i = 0; i < n; ++i)
                k.peer_reserve(me, (*batch)[i], [out, left, i, done](ApiResult<int> r) {
                    if (!r) (*out)[i] = r.error().message.empty() ? "refused" : r.error().message;
                    if (left->fetch_sub(1) == 1) done(std::move(*out));
                });
        };
        std::vector<std::string> results = co_await async_call<std::vector<std::string>>(std::move(start));
        co_return Routed{json_response(req, http::status::ok, encode_sync_results(results)), Endpoint::Reserve};
    }

    // ETSI 014: /api/v1/keys/{SAE_ID}/{status|enc_keys|dec_keys}
    if (seg.size() != 5 || seg[0] != "api" || seg[1] != "v1" || seg[2] != "keys") {
        auto res = json_response(req, http::status::not_found,
                                 etsi014::encode(etsi014::ErrorBody{"no such endpoint; expected /api/v1/keys/{SAE_ID}/status, enc_keys or dec_keys", {}}));
        co_return Routed{std::move(res), Endpoint::Other};
    }
    const std::string& sae = seg[3];
    const std::string& method = seg[4];
    if (caller.sae_id.empty() || !km.is_local_sae(caller.sae_id)) {
        Endpoint e = method == "status" ? Endpoint::Status : method == "enc_keys" ? Endpoint::EncKeys : method == "dec_keys" ? Endpoint::DecKeys : Endpoint::Other;
        co_return Routed{error_response(req, ApiError{401, std::string(msg::kUnauthorized), {}}), e};
    }
    const bool is_get = req.method() == http::verb::get, is_post = req.method() == http::verb::post;

    if (method == "status") {
        // ETSI 014 5.2 Get status: GET only, no body.
        if (!is_get) co_return Routed{method_not_allowed(req, "GET"), Endpoint::Status};
        if (!t->query.empty()) co_return Routed{bad_request(req, "Get status takes no query parameters"), Endpoint::Status};
        auto s = km.status(caller.sae_id, sae);
        if (!s) co_return Routed{error_response(req, s.error()), Endpoint::Status};
        co_return Routed{json_response(req, http::status::ok, etsi014::encode(*s)), Endpoint::Status};
    }

    if (method == "enc_keys") {
        // ETSI 014 5.3 Get key: POST with a Key request body, or GET with number/size as query.
        etsi014::KeyRequest kr;
        if (is_get) {
            if (!req.body().empty()) co_return Routed{bad_request(req, "the GET form of Get key carries no body; use POST"), Endpoint::EncKeys};
            for (const auto& [k, v] : t->query) {
                std::optional<std::int64_t>* dst = k == "number" ? &kr.number : k == "size" ? &kr.size : nullptr;
                if (!dst)
                    co_return Routed{bad_request(req, fmt::format("query parameter '{}' is not allowed; the GET form takes only number and size (use POST for more)", k.substr(0, 64))), Endpoint::EncKeys};
                if (dst->has_value()) co_return Routed{bad_request(req, fmt::format("query parameter '{}' is given twice", k)), Endpoint::EncKeys};
                auto n = parse_int(v);
                if (!n) co_return Routed{bad_request(req, fmt::format("query parameter '{}' must be an integer, got \"{}\"", k, v.substr(0, 32))), Endpoint::EncKeys};
                *dst = *n;
            }
        } else if (is_post) {
            if (!t->query.empty()) co_return Routed{bad_request(req, "the POST form of Get key takes its parameters in the JSON body, not the query"), Endpoint::EncKeys};
            auto d = etsi014::decode_key_request(req.body());
            if (!d) co_return Routed{bad_request(req, d.error().message), Endpoint::EncKeys};
            kr = std::move(*d);
        } else {
            co_return Routed{method_not_allowed(req, "GET, POST"), Endpoint::EncKeys};
        }
        auto start = [&km, &caller, &sae, &kr](KeyManager::KeysCallback done) { km.get_key(caller.sae_id, sae, kr, std::move(done)); };
        auto r = co_await async_call<ApiResult<etsi014::KeyContainer>>(std::move(start));
        if (!r) co_return Routed{error_response(req, r.error()), Endpoint::EncKeys};
        if (!kr.extension_optional.empty()) {
            // We serve the keys and say which optional extensions were ignored (ETSI 014 6.3
            // key_container_extension), instead of refusing the request.
            nlohmann::json ignored = nlohmann::json::array();
            for (const auto& e : kr.extension_optional) ignored.push_back(e.name);
            r->key_container_extension = nlohmann::json{{"extension_optional_ignored", ignored}};
        }
        co_return Routed{json_response(req, http::status::ok, etsi014::encode(*r)), Endpoint::EncKeys};
    }

    if (method == "dec_keys") {
        // ETSI 014 5.4 Get key with key IDs: POST with Key IDs, or GET with exactly one key_ID.
        etsi014::KeyIds ids;
        if (is_get) {
            if (!req.body().empty()) co_return Routed{bad_request(req, "the GET form of Get key with key IDs carries no body; use POST"), Endpoint::DecKeys};
            for (const auto& [k, v] : t->query) {
                if (k != "key_ID")
                    co_return Routed{bad_request(req, fmt::format("query parameter '{}' is not allowed; the GET form takes exactly one key_ID", k.substr(0, 64))), Endpoint::DecKeys};
                ids.key_IDs.push_back(etsi014::KeyIdEntry{v, std::nullopt});
            }
            if (ids.key_IDs.size() != 1)
                co_return Routed{bad_request(req, "the GET form takes exactly one key_ID query parameter; use POST for several"), Endpoint::DecKeys};
        } else if (is_post) {
            if (!t->query.empty()) co_return Routed{bad_request(req, "the POST form takes the key IDs in the JSON body, not the query"), Endpoint::DecKeys};
            auto d = etsi014::decode_key_ids(req.body());
            if (!d) co_return Routed{bad_request(req, d.error().message), Endpoint::DecKeys};
            ids = std::move(*d);
        } else {
            co_return Routed{method_not_allowed(req, "GET, POST"), Endpoint::DecKeys};
        }
        auto start = [&km, &caller, &sae, &ids](KeyManager::KeysCallback done) {
            km.get_key_with_ids(caller.sae_id, sae, ids, std::move(done));
        };
        auto r = co_await async_call<ApiResult<etsi014::KeyContainer>>(std::move(start));
        if (!r) co_return Routed{error_response(req, r.error()), Endpoint::DecKeys};
        co_return Routed{json_response(req, http::status::ok, etsi014::encode(*r)), Endpoint::DecKeys};
    }

    co_return Routed{json_response(req, http::status::not_found,
                                   etsi014::encode(etsi014::ErrorBody{fmt::format("unknown method \"{}\"; expected status, enc_keys or dec_keys", method.substr(0, 64)), {}})),
                     Endpoint::Other};
}

}  // namespace qkd::kme
