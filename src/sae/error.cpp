// Code-to-text table of the SAE client errors.
#include "qkd/sae/error.hpp"

#include <array>
#include <utility>

namespace qkd::sae {
namespace {

struct Name {
    Errc code;
    std::string_view short_name;
    std::string_view title;
};

constexpr std::array<Name, 14> kNames{{
    {Errc::config, "config", "configuration"},
    {Errc::resolve, "resolve", "name resolution"},
    {Errc::connect, "connect", "TCP connect"},
    {Errc::tls, "tls", "TLS"},
    {Errc::identity, "identity", "KME identity"},
    {Errc::timeout, "timeout", "timeout"},
    {Errc::transport, "transport", "connection"},
    {Errc::answer_lost, "answer_lost", "answer lost"},
    {Errc::bad_request, "bad_request", "HTTP 400 Bad request format"},
    {Errc::unauthorized, "unauthorized", "HTTP 401 Unauthorized"},
    {Errc::server_error, "server_error", "HTTP 503 Error on server side"},
    {Errc::http_status, "http_status", "unexpected HTTP status"},
    {Errc::bad_answer, "bad_answer", "invalid KME answer"},
    {Errc::busy, "busy", "client busy"},
}};

const Name& lookup(Errc c) {
    for (const auto& n : kNames)
        if (n.code == c) return n;
    std::abort();  // every enumerator is in the table
}

}  // namespace

std::string_view errc_name(Errc c) { return lookup(c).short_name; }

std::string describe(const Error& e) {
    std::string s(lookup(e.code).title);
    s += ": ";
    s += e.message;
    if (e.etsi) {
        s += " [ETSI message: \"" + e.etsi->message + "\"";
        for (const auto& d : e.etsi->details) s += ", " + d.name + ": " + d.value.dump();
        s += "]";
    }
    if (e.attempts > 1) s += " (after " + std::to_string(e.attempts) + " attempts)";
    return s;
}

}  // namespace qkd::sae
