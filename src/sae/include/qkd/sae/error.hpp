#pragma once
// Errors of the SAE client: one code per kind of failure and a message that says what failed and
// what was expected. ETSI error bodies (400/503, ETSI 014 6.5) are kept verbatim in `etsi`.
#include <optional>
#include <string>
#include <string_view>

#include "qkd/etsi014/model.hpp"

namespace qkd::sae {

enum class Errc {
    config,         // bad profile or bad call arguments (nothing sent)
    resolve,        // KME host name did not resolve
    connect,        // TCP connection failed
    tls,            // TLS handshake failed (incl. certificate not from the configured CA)
    identity,       // KME certificate does not match the pin or the expected KME ID
    timeout,        // the call's deadline passed (connect, handshake, write or read)
    transport,      // connection broken before an answer (request not sent or safely retried)
    answer_lost,    // dec_keys request sent, answer lost: the key may be consumed (never retried)
    bad_request,    // HTTP 400 (ETSI 014 5.x: "Bad request format")
    unauthorized,   // HTTP 401
    server_error,   // HTTP 503 ("Error on server side")
    http_status,    // any other HTTP status (not defined by ETSI 014)
    bad_answer,     // 200 but the answer breaks the spec or does not match the request
    busy,           // too many calls in flight on this client
};

// Stable short name ("tls", "bad_request", ...) used in JSON output.
std::string_view errc_name(Errc c);

struct Error {
    Errc code = Errc::config;
    std::string message;                       // what failed and what was expected
    int http_status = 0;                       // when an HTTP answer was received
    std::optional<qkd::etsi014::ErrorBody> etsi;  // ETSI error body, verbatim
    int attempts = 1;
    bool key_may_be_consumed = false;          // dec_keys sent, answer lost: do not assume the key exists

    Error() = default;
    Error(Errc c, std::string m) : code(c), message(std::move(m)) {}
};

// One line for humans: "TLS: certificate verify failed (...)", "HTTP 400: ETSI message \"...\"".
std::string describe(const Error& e);

}  // namespace qkd::sae
