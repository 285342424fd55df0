#pragma once
// The three ETSI 014 calls as plain HTTP requests (ETSI 014 5.2-5.4), in GET or POST form.
// Pure functions: no I/O, so every rule is unit-tested.
#include <optional>
#include <string>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/sae/error.hpp"

namespace qkd::sae {

// ETSI 014 5.3/5.4: POST always works; GET only for "simple" requests.
enum class Form { post, get };

// Get key (master SAE): POST|GET {base}/api/v1/keys/{slave_SAE_ID}/enc_keys
struct GetKeyParams {
    std::string slave_SAE_ID{};
    int number = 1;
    std::optional<int> size_bits{};  // default: the profile's key_size (always sent, so it is checked)
    std::vector<std::string> additional_slave_SAE_IDs{};  // POST only
    Form form = Form::post;
};

// Get key with key IDs (slave SAE): POST|GET {base}/api/v1/keys/{master_SAE_ID}/dec_keys
struct GetKeyWithIdsParams {
    std::string master_SAE_ID{};
    std::vector<std::string> key_IDs{};  // opaque strings; GET form only for exactly one
    std::optional<int> size_bits{};    // expected key length; default: the profile's key_size
    Form form = Form::post;
};

struct HttpRequest {
    bool post = false;
    std::string target;  // path + query
    std::string body;    // JSON for POST, empty for GET
};

// Limits of a call (STYLE.md habit 12).
inline constexpr int kMaxKeysPerCall = 1024;
inline constexpr std::size_t kMaxKeyIdsPerCall = 1024;

qkd::Result<HttpRequest, Error> build_status_request(const std::string& base_path, const std::string& slave_SAE_ID);
qkd::Result<HttpRequest, Error> build_get_key_request(const std::string& base_path, const GetKeyParams& p,
                                                      int size_bits);
qkd::Result<HttpRequest, Error> build_get_key_with_ids_request(const std::string& base_path,
                                                               const GetKeyWithIdsParams& p);

}  // namespace qkd::sae
