#pragma once
// JSON encode/decode of the ETSI 014 messages. Decoders bound the input (size, depth, array
// lengths), reject wrong types, and name the offending field and what was expected.
#include <string>
#include <string_view>

#include "qkd/common/result.hpp"
#include "qkd/etsi014/model.hpp"

namespace qkd::etsi014 {

struct CodecError {
    std::string message;  // e.g. "field 'number' must be a positive integer, got \"3\""
};

template <class T>
using Decoded = qkd::Result<T, CodecError>;

std::string encode(const Status& s);
std::string encode(const KeyRequest& r);
std::string encode(const KeyIds& ids);
std::string encode(const ErrorBody& e);
// The returned text holds key material in Base64: the caller wipes it (qkd::wipe_string) once sent.
std::string encode(const KeyContainer& c);
// Appends `s` as a JSON string literal: printable ASCII as is (the common case, without building
// a JSON value), anything else escaped by the JSON library, which throws on invalid UTF-8.
void append_json_string(std::string& out, std::string_view s);

Decoded<Status> decode_status(std::string_view body);
// An empty body (no JSON at all) is an empty request (etsi014.md 1.7 item 7: lenient).
Decoded<KeyRequest> decode_key_request(std::string_view body);
Decoded<KeyIds> decode_key_ids(std::string_view body);
Decoded<ErrorBody> decode_error(std::string_view body);
// Key material is decoded into SecretBytes and the Base64 text inside the parsed JSON is wiped.
// The caller still owns (and should wipe) `body`.
Decoded<KeyContainer> decode_key_container(std::string_view body);

// Canonical strings of ETSI GS QKD 014 V1.1.1 (clause 6.5 examples and 5.x); used verbatim.
namespace msg {
inline constexpr std::string_view kBadRequest = "Bad request format";
inline constexpr std::string_view kUnauthorized = "Unauthorized";
inline constexpr std::string_view kServerError = "Error on server side";
inline constexpr std::string_view kSizeMultipleOf8 = "size shall be a multiple of 8";
inline constexpr std::string_view kMandatoryUnsupported = "not all extension_mandatory parameters are supported";
inline constexpr std::string_view kMandatoryNotMet = "not all extension_mandatory request options could be met";
inline constexpr std::string_view kOptionalNotHandled = "not all extension_optional request options handled";
inline constexpr std::string_view kKeysNotFound = "one or more keys specified are not found on KME";
inline constexpr std::string_view kKeyDataAccess = "key data access error";
}  // namespace msg

}  // namespace qkd::etsi014
