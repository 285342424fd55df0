// ETSI GS QKD 014 V1.1.1 clause 5: the three methods, their GET and POST forms, and the
// KME-to-KME reservation endpoint.
#include <utility>

#include "qkd/kme/router.hpp"

#include <boost/beast/http/status.hpp>
#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <utility>

#include "qkd/common/encoding.hpp"
#include "qkd/etsi014/codec.hpp"
#include "qkd/kme/sync_codec.hpp"
#include "request_forms.hpp"

namespace qkd::kme {
namespace http = boost::beast::http;
namespace msg = etsi014::msg;

namespace {

Response json_response(const HttpRequest& req, http::status st, std::string body) {
    Response res;
    res.status = static_cast<unsigned>(st);
    res.version = req.version();
    res.keep_alive = req.keep_alive();
    res.body = std::move(body);
    return res;
}

Response error_response(const HttpRequest& req, const ApiError& e) {
    return json_response(req, static_cast<http::status>(e.status), etsi014::encode(etsi014::ErrorBody{e.message, e.details}));
}

Response bad_request(const HttpRequest& req, std::string detail) {
    // ETSI 014 6.5: the message says what was wrong and what was expected.
    return error_response(req, ApiError{400, std::move(detail), {}});
}

Response method_not_allowed(const HttpRequest& req, const char* allow) {
    auto res = json_response(req, http::status::method_not_allowed,
                             etsi014::encode(etsi014::ErrorBody{fmt::format("method {} not allowed here; use {}", std::string(req.method_string()), allow), {}}));
    res.allow = allow;
    return res;
}


}  // namespace

void route(HttpRequest request, const Caller& caller_in, KeyManager& km, RouteDone done) {
    // Everything a request needs lives here until its answer: the key manager may finish later,
    // on another thread, and keeps references to the request's parts until then.
    struct Ctx {
        HttpRequest req;
        Caller caller;
        Target target;
        etsi014::KeyRequest kr;
        etsi014::KeyIds ids;
        RouteDone done;
    };
    auto ctx = std::make_shared<Ctx>(Ctx{std::move(request), caller_in, {}, {}, {}, std::move(done)});
    const HttpRequest& req = ctx->req;
    const Caller& caller = ctx->caller;
    auto reply = [&ctx](Response r, Endpoint e) { ctx->done(Routed{std::move(r), e}); };
    auto t = parse_target(std::string_view(req.target().data(), req.target().size()));
    if (!t) return reply(bad_request(req, "request target is not a valid percent-encoded path"), Endpoint::Other);
    ctx->target = std::move(*t);
    const Target* tp = &ctx->target;
    const auto& seg = tp->segments;

    // KME-to-KME: POST /kme/v1/reserve, only from a configured peer KME.
    if (seg.size() == 3 && seg[0] == "kme" && seg[1] == "v1" && seg[2] == "reserve") {
        if (req.method() != http::verb::post) return reply(method_not_allowed(req, "POST"), Endpoint::Reserve);
        if (!km.is_peer_kme(caller.cert_cn))
            return reply(error_response(req, ApiError{401, std::string(msg::kUnauthorized), {}}), Endpoint::Reserve);
        auto batch = decode_sync_batch(req.body());
        if (!batch) return reply(bad_request(req, batch.error()), Endpoint::Reserve);
        // One answer per reservation of the batch, in order, once the last one is decided.
        auto reqs = std::make_shared<std::vector<SyncRequest>>(std::move(*batch));
        auto out = std::make_shared<std::vector<std::string>>(reqs->size());
        auto left = std::make_shared<std::atomic<std::size_t>>(reqs->size());
        const std::size_t n = reqs->size();
        for (std::size_t i = 0; i < n; ++i)
            km.peer_reserve(caller.cert_cn, (*reqs)[i], [ctx, reqs, out, left, i](ApiResult<int> r) {
                if (!r) (*out)[i] = r.error().message.empty() ? "refused" : r.error().message;
                if (left->fetch_sub(1) == 1) ctx->done(Routed{json_response(ctx->req, http::status::ok, encode_sync_results(*out)), Endpoint::Reserve});
            });
        return;
    }

    // ETSI 014: /api/v1/keys/{SAE_ID}/{status|enc_keys|dec_keys}
    if (seg.size() != 5 || seg[0] != "api" || seg[1] != "v1" || seg[2] != "keys") {
        auto res = json_response(req, http::status::not_found,
                                 etsi014::encode(etsi014::ErrorBody{"no such endpoint; expected /api/v1/keys/{SAE_ID}/status, enc_keys or dec_keys", {}}));
        return reply(std::move(res), Endpoint::Other);
    }
    const std::string& sae = seg[3];
    const std::string& method = seg[4];
    if (caller.sae_id.empty() || !km.is_local_sae(caller.sae_id)) {
        Endpoint e = method == "status" ? Endpoint::Status : method == "enc_keys" ? Endpoint::EncKeys : method == "dec_keys" ? Endpoint::DecKeys : Endpoint::Other;
        return reply(error_response(req, ApiError{401, std::string(msg::kUnauthorized), {}}), e);
    }
    const bool is_get = req.method() == http::verb::get, is_post = req.method() == http::verb::post;

    if (method == "status") {
        // ETSI 014 5.2 Get status: GET only, no body.
        if (!is_get) return reply(method_not_allowed(req, "GET"), Endpoint::Status);
        if (!tp->query.empty()) return reply(bad_request(req, "Get status takes no query parameters"), Endpoint::Status);
        auto s = km.status(caller.sae_id, sae);
        if (!s) return reply(error_response(req, s.error()), Endpoint::Status);
        return reply(json_response(req, http::status::ok, etsi014::encode(*s)), Endpoint::Status);
    }

    if (method == "enc_keys") {
        // ETSI 014 5.3 Get key: POST with a Key request body, or GET with number/size as query
        // (either place whatever the method unless [kme] strict: request_forms.hpp).
        etsi014::KeyRequest& kr = ctx->kr;
        if (!is_get && !is_post) return reply(method_not_allowed(req, "GET, POST"), Endpoint::EncKeys);
        auto r = key_request_of(is_get, *tp, req.body(), km.config().strict_forms);
        if (!r) return reply(bad_request(req, r.error()), Endpoint::EncKeys);
        kr = std::move(*r);
        km.get_key(caller.sae_id, sae, kr, [ctx](ApiResult<etsi014::KeyContainer> r) {
            if (!r) return ctx->done(Routed{error_response(ctx->req, r.error()), Endpoint::EncKeys});
            if (!ctx->kr.extension_optional.empty()) {
                // We serve the keys and say which optional extensions were ignored (ETSI 014 6.3
                // key_container_extension), instead of refusing the request.
                nlohmann::json ignored = nlohmann::json::array();
                for (const auto& e : ctx->kr.extension_optional) ignored.push_back(e.name);
                r->key_container_extension = nlohmann::json{{"extension_optional_ignored", ignored}};
            }
            ctx->done(Routed{json_response(ctx->req, http::status::ok, etsi014::encode(*r)), Endpoint::EncKeys});
        });
        return;
    }

    if (method == "dec_keys") {
        // ETSI 014 5.4 Get key with key IDs: POST with Key IDs, or GET with exactly one key_ID
        // (either place whatever the method unless [kme] strict: request_forms.hpp).
        etsi014::KeyIds& ids = ctx->ids;
        if (!is_get && !is_post) return reply(method_not_allowed(req, "GET, POST"), Endpoint::DecKeys);
        auto r = key_ids_of(is_get, *tp, req.body(), km.config().strict_forms);
        if (!r) return reply(bad_request(req, r.error()), Endpoint::DecKeys);
        ids = std::move(*r);
        km.get_key_with_ids(caller.sae_id, sae, ids, [ctx](ApiResult<etsi014::KeyContainer> r) {
            if (!r) return ctx->done(Routed{error_response(ctx->req, r.error()), Endpoint::DecKeys});
            ctx->done(Routed{json_response(ctx->req, http::status::ok, etsi014::encode(*r)), Endpoint::DecKeys});
        });
        return;
    }

    reply(json_response(req, http::status::not_found,
                        etsi014::encode(etsi014::ErrorBody{fmt::format("unknown method \"{}\"; expected status, enc_keys or dec_keys", method.substr(0, 64)), {}})),
          Endpoint::Other);
}

}  // namespace qkd::kme
