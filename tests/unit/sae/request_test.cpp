#include <gtest/gtest.h>

#include "qkd/etsi014/codec.hpp"
#include "qkd/sae/request.hpp"

namespace qkd::sae {
namespace {

TEST(Requests, StatusIsGetWithEncodedSaeId) {
    auto r = build_status_request("", "SAE B/1");
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->post);
    EXPECT_EQ(r->target, "/api/v1/keys/SAE%20B%2F1/status");
    EXPECT_TRUE(r->body.empty());
    auto p = build_status_request("/prefix", "SAE_B");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->target, "/prefix/api/v1/keys/SAE_B/status");
}

TEST(Requests, GetKeyPostCarriesNumberSizeAndSlaves) {
    GetKeyParams p{.slave_SAE_ID = "SAE_B", .number = 3, .size_bits = {}, .additional_slave_SAE_IDs = {"SAE_C"}};
    auto r = build_get_key_request("", p, 512);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->post);
    EXPECT_EQ(r->target, "/api/v1/keys/SAE_B/enc_keys");
    auto body = qkd::etsi014::decode_key_request(r->body);
    ASSERT_TRUE(body) << body.error().message;
    EXPECT_EQ(body->number, 3);
    EXPECT_EQ(body->size, 512);
    EXPECT_EQ(body->additional_slave_SAE_IDs, std::vector<std::string>{"SAE_C"});
}

TEST(Requests, GetKeyGetFormUsesQueryAndRefusesSlaves) {
    GetKeyParams p{.slave_SAE_ID = "SAE_B", .number = 2, .form = Form::get};
    auto r = build_get_key_request("", p, 256);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->post);
    EXPECT_EQ(r->target, "/api/v1/keys/SAE_B/enc_keys?number=2&size=256");
    p.additional_slave_SAE_IDs = {"SAE_C"};
    auto bad = build_get_key_request("", p, 256);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, Errc::config);
    EXPECT_NE(bad.error().message.find("POST"), std::string::npos);
}

TEST(Requests, GetKeyBoundsNumberAndSize) {
    EXPECT_FALSE(build_get_key_request("", {.slave_SAE_ID = "B", .number = 0}, 256));
    EXPECT_FALSE(build_get_key_request("", {.slave_SAE_ID = "B", .number = kMaxKeysPerCall + 1}, 256));
    EXPECT_FALSE(build_get_key_request("", {.slave_SAE_ID = "B"}, 13));
    EXPECT_FALSE(build_get_key_request("", {.slave_SAE_ID = "B"}, 0));
    EXPECT_FALSE(build_get_key_request("", {.slave_SAE_ID = ""}, 256));
    EXPECT_FALSE(build_get_key_request("", {.slave_SAE_ID = std::string(300, 'x')}, 256));
}

TEST(Requests, GetKeyWithIdsPostAndGet) {
    GetKeyWithIdsParams p{.master_SAE_ID = "SAE_A", .key_IDs = {"id-1", "id 2"}};
    auto r = build_get_key_with_ids_request("", p);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->post);
    EXPECT_EQ(r->target, "/api/v1/keys/SAE_A/dec_keys");
    auto ids = qkd::etsi014::decode_key_ids(r->body);
    ASSERT_TRUE(ids) << ids.error().message;
    ASSERT_EQ(ids->key_IDs.size(), 2u);
    EXPECT_EQ(ids->key_IDs[1].key_ID, "id 2");

    p.form = Form::get;
    auto two = build_get_key_with_ids_request("", p);
    ASSERT_FALSE(two);  // ETSI 014 5.4: GET only for exactly one key_ID
    EXPECT_NE(two.error().message.find("exactly one key_ID"), std::string::npos);
    p.key_IDs = {"id 2"};
    auto one = build_get_key_with_ids_request("", p);
    ASSERT_TRUE(one);
    EXPECT_EQ(one->target, "/api/v1/keys/SAE_A/dec_keys?key_ID=id%202");
}

TEST(Requests, GetKeyWithIdsRefusesEmptyAndDuplicates) {
    EXPECT_FALSE(build_get_key_with_ids_request("", {.master_SAE_ID = "A", .key_IDs = {}}));
    auto dup = build_get_key_with_ids_request("", {.master_SAE_ID = "A", .key_IDs = {"x", "x"}});
    ASSERT_FALSE(dup);
    EXPECT_NE(dup.error().message.find("given twice"), std::string::npos);
}

}  // namespace
}  // namespace qkd::sae
