#pragma once
// Strict checks of every KME answer (ETSI 014 5.x, 6.x). Pure functions over the HTTP status,
// Content-Type and body, so they are unit-tested and fuzzed without a network.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qkd/common/result.hpp"
#include "qkd/etsi014/model.hpp"
#include "qkd/sae/error.hpp"

namespace qkd::sae {

struct HttpAnswer {
    int status = 0;
    std::string content_type;
    std::string body;  // may hold key material (Base64): wiped by the key processors
};

struct StatusExpect {
    std::string master_SAE_ID;          // this SAE (profile local_sae_id)
    std::string slave_SAE_ID;           // the SAE named in the URL
    std::optional<std::string> kme_id;  // expected source_KME_ID
};

struct KeysExpect {
    std::size_t number = 1;              // exact number of keys
    std::size_t size_bits = 256;         // exact key length (multiple of 8)
    std::vector<std::string> key_IDs;    // dec_keys: exactly these IDs, each once
};

// Maps a non-200 answer to an Error (400/401/503 with the ETSI body verbatim, else http_status).
Error http_error(const HttpAnswer& a);

qkd::Result<qkd::etsi014::Status, Error> process_status_answer(const HttpAnswer& a, const StatusExpect& e);
// Wipes a.body (it held Base64 key material) whatever the outcome.
qkd::Result<qkd::etsi014::KeyContainer, Error> process_keys_answer(HttpAnswer& a, const KeysExpect& e);

}  // namespace qkd::sae
