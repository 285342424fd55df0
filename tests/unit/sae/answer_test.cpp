#include <gtest/gtest.h>

#include "qkd/sae/answer.hpp"

namespace qkd::sae {
namespace {

const std::string kKey256 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const std::string kStatus =
    R"({"source_KME_ID":"KME_A","target_KME_ID":"KME_B","master_SAE_ID":"SAE_A","slave_SAE_ID":"SAE_B",)"
    R"("key_size":256,"stored_key_count":5,"max_key_count":10,"max_key_per_request":2,"max_key_size":1024,)"
    R"("min_key_size":64,"max_SAE_ID_count":0})";

HttpAnswer ok(std::string body) { return HttpAnswer{200, "application/json", std::move(body)}; }

TEST(Answers, StatusIsCheckedAgainstTheRequest) {
    StatusExpect e{"SAE_A", "SAE_B", std::string("KME_A")};
    auto good = process_status_answer(ok(kStatus), e);
    ASSERT_TRUE(good) << good.error().message;
    EXPECT_EQ(good->stored_key_count, 5);

    auto other_slave = process_status_answer(ok(kStatus), {"SAE_A", "SAE_C", std::nullopt});
    ASSERT_FALSE(other_slave);
    EXPECT_EQ(other_slave.error().code, Errc::bad_answer);
    auto other_master = process_status_answer(ok(kStatus), {"SAE_X", "SAE_B", std::nullopt});
    ASSERT_FALSE(other_master);
    EXPECT_NE(other_master.error().message.find("master_SAE_ID"), std::string::npos);
    auto other_kme = process_status_answer(ok(kStatus), {"SAE_A", "SAE_B", std::string("KME_Q")});
    ASSERT_FALSE(other_kme);
    EXPECT_NE(other_kme.error().message.find("source_KME_ID is \"KME_A\"; expected kme_id \"KME_Q\""), std::string::npos);
    auto missing = process_status_answer(ok(R"({"source_KME_ID":"KME_A"})"), e);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, Errc::bad_answer);
}

TEST(Answers, ContentTypeMustBeJson) {
    StatusExpect e{"SAE_A", "SAE_B", std::nullopt};
    EXPECT_TRUE(process_status_answer(HttpAnswer{200, "application/json; charset=utf-8", kStatus}, e));
    EXPECT_TRUE(process_status_answer(HttpAnswer{200, "", kStatus}, e));
    auto html = process_status_answer(HttpAnswer{200, "text/html", kStatus}, e);
    ASSERT_FALSE(html);
    EXPECT_NE(html.error().message.find("expected application/json"), std::string::npos);
}

std::string keys(std::initializer_list<std::pair<std::string, std::string>> ks) {
    std::string s = R"({"keys":[)";
    bool first = true;
    for (const auto& [id, key] : ks) {
        s += (first ? "" : ",") + std::string(R"({"key_ID":")") + id + R"(","key":")" + key + "\"}";
        first = false;
    }
    return s + "]}";
}

TEST(Answers, KeysMustMatchNumberSizeAndIds) {
    auto a = ok(keys({{"k1", kKey256}}));
    auto good = process_keys_answer(a, {1, 256, {}});
    ASSERT_TRUE(good) << good.error().message;
    EXPECT_EQ(good->keys[0].key.size(), 32u);
    EXPECT_EQ(a.body.find(kKey256), std::string::npos);  // the body that held the key is wiped

    auto b = ok(keys({{"k1", kKey256}}));
    auto wrong_size = process_keys_answer(b, {1, 512, {}});
    ASSERT_FALSE(wrong_size);
    EXPECT_NE(wrong_size.error().message.find("has 256 bits; expected 512"), std::string::npos);

    auto c = ok(keys({{"k1", kKey256}}));
    auto wrong_count = process_keys_answer(c, {2, 256, {}});
    ASSERT_FALSE(wrong_count);
    EXPECT_NE(wrong_count.error().message.find("has 1 keys; expected 2"), std::string::npos);

    auto d = ok(keys({{"k1", kKey256}, {"k1", kKey256}}));
    auto dup = process_keys_answer(d, {2, 256, {}});
    ASSERT_FALSE(dup);
    EXPECT_NE(dup.error().message.find("appears twice"), std::string::npos);

    auto e = ok(keys({{"k2", kKey256}}));
    auto other = process_keys_answer(e, {1, 256, {"k1"}});
    ASSERT_FALSE(other);
    EXPECT_NE(other.error().message.find("\"k1\" was requested but is missing"), std::string::npos);

    auto f = ok(R"({"keys":[{"key":")" + kKey256 + "\"}]}");
    auto no_id = process_keys_answer(f, {1, 256, {}});
    ASSERT_FALSE(no_id);
    EXPECT_NE(no_id.error().message.find("key_ID"), std::string::npos);
    // Errors never quote key material.
    EXPECT_EQ(no_id.error().message.find(kKey256), std::string::npos);
}

TEST(Answers, OpaqueKeyIdsAreAccepted) {
    auto a = ok(keys({{"ffffffff-not-a-uuid", kKey256}}));
    auto r = process_keys_answer(a, {1, 256, {"ffffffff-not-a-uuid"}});
    EXPECT_TRUE(r) << r.error().message;
}

TEST(Answers, HttpErrorsMapToCodesWithEtsiBodyVerbatim) {
    auto e400 = http_error({400, "application/json",
                            R"({"message":"not all extension_mandatory parameters are supported","details":[{"extension_mandatory_unsupported":"abc_route_type is not supported"}]})"});
    EXPECT_EQ(e400.code, Errc::bad_request);
    ASSERT_TRUE(e400.etsi);
    EXPECT_EQ(e400.etsi->message, "not all extension_mandatory parameters are supported");
    ASSERT_EQ(e400.etsi->details.size(), 1u);
    EXPECT_EQ(e400.etsi->details[0].name, "extension_mandatory_unsupported");
    EXPECT_NE(describe(e400).find("abc_route_type is not supported"), std::string::npos);

    auto e401 = http_error({401, "", ""});
    EXPECT_EQ(e401.code, Errc::unauthorized);
    EXPECT_NE(e401.message.find("empty body"), std::string::npos);

    auto e503 = http_error({503, "application/json", R"({"message":"Error on server side"})"});
    EXPECT_EQ(e503.code, Errc::server_error);
    ASSERT_TRUE(e503.etsi);

    auto fastapi = http_error({400, "application/json", R"({"detail":"Not enough keys"})"});
    EXPECT_EQ(fastapi.code, Errc::bad_request);
    EXPECT_FALSE(fastapi.etsi);
    EXPECT_NE(fastapi.message.find("Not enough keys"), std::string::npos);  // quoted for the operator

    auto e404 = http_error({404, "text/plain", "nope"});
    EXPECT_EQ(e404.code, Errc::http_status);
    EXPECT_NE(e404.message.find("defines only 200, 400, 401 and 503"), std::string::npos);
}

TEST(Answers, KeyErrorPathsStillWipeTheBody) {
    auto a = HttpAnswer{503, "application/json", keys({{"k", kKey256}})};
    auto r = process_keys_answer(a, {1, 256, {}});
    ASSERT_FALSE(r);
    EXPECT_EQ(a.body.find(kKey256), std::string::npos);
    EXPECT_EQ(r.error().message.find(kKey256), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("body not shown"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace qkd::sae
