#pragma once
// Internal to router.cpp: the parameters of Get key and Get key with key IDs from the request's
// query and body (ETSI GS QKD 014 5.3 and 5.4; issue 17, item 3).
//
// The standard gives each method two forms: POST with a JSON body, GET with query parameters.
// Clients in the field mix them (a GET with a JSON body, a POST with query parameters), so by
// default both places are read whatever the method: a parameter given in both with different
// values is a 400 naming both; equal values are accepted. With `[kme] strict = true` each method
// takes only its own form, as the standard writes it (a body on GET or a query on POST is 400).
#include <string>
#include <string_view>

#include "qkd/common/result.hpp"
#include "qkd/etsi014/model.hpp"
#include "qkd/kme/router.hpp"

namespace qkd::kme {

// `is_get`: the method is GET (else POST). The error is the message of a 400.
qkd::Result<etsi014::KeyRequest, std::string> key_request_of(bool is_get, const Target& t, std::string_view body, bool strict);
qkd::Result<etsi014::KeyIds, std::string> key_ids_of(bool is_get, const Target& t, std::string_view body, bool strict);

}  // namespace qkd::kme
