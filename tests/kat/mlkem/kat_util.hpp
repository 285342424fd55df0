#pragma once
// Shared helpers for the ML-KEM KAT runners: vector paths, JSON/hex loading, parameter names.
// A missing vector file is a test FAILURE (CI has the vectors), never a skip.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "qkd/common/encoding.hpp"
#include "qkd/crypto/mlkem.hpp"

namespace qkd::mlkem::kat {

inline std::string vector_path(const std::string& rel) { return std::string(QKD_VECTORS_DIR) + "/mlkem/" + rel; }

inline std::string read_file(const std::string& rel) {
    std::ifstream in(vector_path(rel), std::ios::binary);
    EXPECT_TRUE(in.good()) << "cannot open test vector file " << vector_path(rel);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline nlohmann::json load_json(const std::string& rel) {
    const std::string text = read_file(rel);
    if (text.empty()) return nlohmann::json::object();
    return nlohmann::json::parse(text);
}

inline std::vector<std::uint8_t> hex(const nlohmann::json& v) {
    auto d = qkd::hex_decode(v.get<std::string>());
    EXPECT_TRUE(d.has_value()) << "bad hex in vector: " << v.get<std::string>().substr(0, 40);
    return d.value_or(std::vector<std::uint8_t>{});
}

inline std::vector<std::uint8_t> hex(const std::string& s) {
    auto d = qkd::hex_decode(s);
    EXPECT_TRUE(d.has_value()) << "bad hex in vector: " << s.substr(0, 40);
    return d.value_or(std::vector<std::uint8_t>{});
}

inline std::vector<std::uint8_t> bytes(const qkd::SecretBytes& s) { return {s.data(), s.data() + s.size()}; }

inline ParamSet param_set(const std::string& name) {
    if (name == "ML-KEM-512") return ParamSet::MlKem512;
    if (name == "ML-KEM-1024") return ParamSet::MlKem1024;
    EXPECT_EQ(name, "ML-KEM-768") << "unknown parameter set in vectors";
    return ParamSet::MlKem768;
}

// Finds a test (by tcId) in the expectedResults group with the same tgId.
inline const nlohmann::json& expected_test(const nlohmann::json& expected, int tg_id, int tc_id) {
    static const nlohmann::json kNull;
    for (const auto& g : expected.at("testGroups"))
        if (g.at("tgId").get<int>() == tg_id)
            for (const auto& t : g.at("tests"))
                if (t.at("tcId").get<int>() == tc_id) return t;
    ADD_FAILURE() << "no expected result for tgId " << tg_id << " tcId " << tc_id;
    return kNull;
}

}  // namespace qkd::mlkem::kat
