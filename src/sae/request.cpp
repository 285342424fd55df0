// Building the three ETSI 014 requests (paths, GET query strings, POST bodies).
#include "qkd/sae/request.hpp"

#include "qkd/etsi014/codec.hpp"
#include "qkd/sae/url.hpp"

namespace qkd::sae {
namespace {

using Fail = qkd::Err<Error>;

Fail config_error(std::string m) { return Fail{Error(Errc::config, std::move(m))}; }

qkd::Result<bool, Error> check_id(std::string_view what, const std::string& id) {
    if (id.empty()) return config_error(std::string(what) + " is empty; expected an SAE/key ID");
    if (id.size() > qkd::etsi014::kMaxIdLength)
        return config_error(std::string(what) + " is " + std::to_string(id.size()) + " characters long; expected at most " +
                            std::to_string(qkd::etsi014::kMaxIdLength));
    return true;
}

// ETSI 014 5.1: base "https://{KME_hostname}/api/v1/keys/"; the SAE ID in the path is URL-encoded.
std::string keys_path(const std::string& base_path, const std::string& sae_id, std::string_view method) {
    return base_path + "/api/v1/keys/" + percent_encode(sae_id) + "/" + std::string(method);
}

}  // namespace

qkd::Result<HttpRequest, Error> build_status_request(const std::string& base_path, const std::string& slave_SAE_ID) {
    auto ok = check_id("slave_SAE_ID", slave_SAE_ID);
    if (!ok) return Fail{ok.error()};
    // ETSI 014 5.2: Get status is GET only, no body.
    return HttpRequest{false, keys_path(base_path, slave_SAE_ID, "status"), {}};
}

qkd::Result<HttpRequest, Error> build_get_key_request(const std::string& base_path, const GetKeyParams& p,
                                                      int size_bits) {
    auto ok = check_id("slave_SAE_ID", p.slave_SAE_ID);
    if (!ok) return Fail{ok.error()};
    if (p.number < 1 || p.number > kMaxKeysPerCall)
        return config_error("number of keys " + std::to_string(p.number) + " is out of range; expected 1.." +
                            std::to_string(kMaxKeysPerCall));
    if (size_bits <= 0 || size_bits % 8 != 0 || size_bits > static_cast<int>(qkd::etsi014::kMaxKeyBits))
        return config_error("key size " + std::to_string(size_bits) + " bits is invalid; expected a positive multiple of 8 up to " +
                            std::to_string(qkd::etsi014::kMaxKeyBits));
    if (p.additional_slave_SAE_IDs.size() > qkd::etsi014::kMaxSaeIdCount)
        return config_error("too many additional_slave_SAE_IDs; expected at most " +
                            std::to_string(qkd::etsi014::kMaxSaeIdCount));
    for (const auto& id : p.additional_slave_SAE_IDs) {
        auto idok = check_id("additional_slave_SAE_IDs entry", id);
        if (!idok) return Fail{idok.error()};
    }
    const std::string path = keys_path(base_path, p.slave_SAE_ID, "enc_keys");
    if (p.form == Form::get) {
        // ETSI 014 5.3: GET only when the body would hold nothing but number and/or size.
        if (!p.additional_slave_SAE_IDs.empty())
            return config_error("additional_slave_SAE_IDs need the POST form of Get key (ETSI 014 5.3); GET carries "
                                "only number and size");
        return HttpRequest{false, path + "?number=" + std::to_string(p.number) + "&size=" + std::to_string(size_bits), {}};
    }
    qkd::etsi014::KeyRequest r;
    r.number = p.number;
    r.size = size_bits;
    r.additional_slave_SAE_IDs = p.additional_slave_SAE_IDs;
    return HttpRequest{true, path, qkd::etsi014::encode(r)};
}

qkd::Result<HttpRequest, Error> build_get_key_with_ids_request(const std::string& base_path,
                                                               const GetKeyWithIdsParams& p) {
    auto ok = check_id("master_SAE_ID", p.master_SAE_ID);
    if (!ok) return Fail{ok.error()};
    if (p.key_IDs.empty()) return config_error("no key_ID given; expected at least one");
    if (p.key_IDs.size() > kMaxKeyIdsPerCall)
        return config_error(std::to_string(p.key_IDs.size()) + " key_IDs given; expected at most " +
                            std::to_string(kMaxKeyIdsPerCall));
    for (std::size_t i = 0; i < p.key_IDs.size(); ++i) {
        auto idok = check_id("key_ID", p.key_IDs[i]);
        if (!idok) return Fail{idok.error()};
        for (std::size_t j = 0; j < i; ++j)
            if (p.key_IDs[j] == p.key_IDs[i]) return config_error("key_ID \"" + p.key_IDs[i] + "\" is given twice");
    }
    const std::string path = keys_path(base_path, p.master_SAE_ID, "dec_keys");
    if (p.form == Form::get) {
        // ETSI 014 5.4: GET only for exactly one key ID and no extension.
        if (p.key_IDs.size() != 1)
            return config_error("the GET form of Get key with key IDs carries exactly one key_ID (ETSI 014 5.4); got " +
                                std::to_string(p.key_IDs.size()) + ", use POST");
        return HttpRequest{false, path + "?key_ID=" + percent_encode(p.key_IDs.front()), {}};
    }
    qkd::etsi014::KeyIds ids;
    for (const auto& id : p.key_IDs) ids.key_IDs.push_back({id, std::nullopt});
    return HttpRequest{true, path, qkd::etsi014::encode(ids)};
}

}  // namespace qkd::sae
