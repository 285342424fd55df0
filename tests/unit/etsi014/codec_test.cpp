#include <gtest/gtest.h>

#include <string>

#include "qkd/common/encoding.hpp"
#include "qkd/etsi014/codec.hpp"

using namespace qkd::etsi014;

TEST(Etsi014Codec, StatusRoundTripsWithSpecExample) {
    // ETSI GS QKD 014 6.1 example values.
    const char* body = R"({"source_KME_ID":"AAAABBBBCCCCDDDD","target_KME_ID":"EEEEFFFFGGGGHHHH",
      "master_SAE_ID":"IIIIJJJJKKKKLLLL","slave_SAE_ID":"MMMMNNNNOOOOPPPP","key_size":352,
      "stored_key_count":25000,"max_key_count":100000,"max_key_per_request":128,"max_key_size":1024,
      "min_key_size":64,"max_SAE_ID_count":0})";
    auto s = decode_status(body);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->key_size, 352);
    EXPECT_EQ(s->slave_SAE_ID, "MMMMNNNNOOOOPPPP");
    auto again = decode_status(encode(*s));
    ASSERT_TRUE(again);
    EXPECT_EQ(again->stored_key_count, 25000);
    EXPECT_FALSE(again->status_extension.has_value());
}

TEST(Etsi014Codec, StatusMissingOrMistypedFieldIsNamed) {
    auto s = decode_status(R"({"source_KME_ID":"A"})");
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("target_KME_ID"), std::string::npos);
    auto t = decode_status(R"({"source_KME_ID":"A","target_KME_ID":"B","master_SAE_ID":"C","slave_SAE_ID":"D",
      "key_size":"256","stored_key_count":1,"max_key_count":1,"max_key_per_request":1,"max_key_size":1,
      "min_key_size":1,"max_SAE_ID_count":0})");
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message.find("'key_size' must be an integer"), std::string::npos) << t.error().message;
}

TEST(Etsi014Codec, KeyRequestFieldsAndLeniency) {
    auto empty = decode_key_request("");
    ASSERT_TRUE(empty);
    EXPECT_FALSE(empty->number.has_value());
    ASSERT_TRUE(decode_key_request("{}"));
    auto r = decode_key_request(R"({"number":3,"size":1024,"additional_slave_SAE_IDs":["X","Y"],
        "extension_mandatory":[{"abc_route_type":"direct"},{"abc_transfer_method":"qkd"}],
        "extension_optional":[{"abc_max_age":30}]})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r->number, 3);
    EXPECT_EQ(*r->size, 1024);
    EXPECT_EQ(r->additional_slave_SAE_IDs.size(), 2u);
    ASSERT_EQ(r->extension_mandatory.size(), 2u);
    EXPECT_EQ(r->extension_mandatory[1].name, "abc_transfer_method");
    EXPECT_EQ(r->extension_optional[0].value, 30);
    auto back = decode_key_request(encode(*r));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->extension_mandatory.size(), 2u);
}

TEST(Etsi014Codec, KeyRequestRejectsBadInputWithReason) {
    struct Case {
        const char* body;
        const char* expect;
    } cases[] = {
        {"[1]", "must be a JSON object"},
        {"{", "not valid JSON"},
        {R"({"number":"3"})", "'number' must be an integer"},
        {R"({"number":1.5})", "'number' must be an integer"},
        {R"({"size":true})", "'size' must be an integer"},
        {R"({"additional_slave_SAE_IDs":"X"})", "must be an array of strings"},
        {R"({"additional_slave_SAE_IDs":[1]})", "must be a non-empty string"},
        {R"({"extension_mandatory":{"a":1}})", "must be an array of objects"},
        {R"({"extension_optional":[5]})", "must be an object"},
        {R"({"numbr":1})", "unknown field 'numbr'"},
        {R"({"number":[[[[[[[[[[1]]]]]]]]]]})", "nests deeper"},
        {R"({"number":99999999999999999999})", "must be an integer"},
    };
    for (const auto& c : cases) {
        auto r = decode_key_request(c.body);
        ASSERT_FALSE(r) << c.body;
        EXPECT_NE(r.error().message.find(c.expect), std::string::npos) << c.body << " -> " << r.error().message;
    }
    std::string big(kMaxBodyBytes + 1, ' ');
    big[0] = '{';
    EXPECT_FALSE(decode_key_request(big));
}

TEST(Etsi014Codec, KeyIdsRequest) {
    auto ids = decode_key_ids(R"({"key_IDs":[{"key_ID":"bc490419-7d60-487f-adc1-4ddcc177c139"},{"key_ID":"x","key_ID_extension":{"a":1}}]})");
    ASSERT_TRUE(ids) << ids.error().message;
    ASSERT_EQ(ids->key_IDs.size(), 2u);
    EXPECT_TRUE(ids->key_IDs[1].key_ID_extension.has_value());
    EXPECT_EQ(decode_key_ids(encode(*ids))->key_IDs[0].key_ID, "bc490419-7d60-487f-adc1-4ddcc177c139");
    for (const char* bad : {R"({})", R"({"key_IDs":[]})", R"({"key_IDs":[{"id":"x"}]})", R"({"key_IDs":[{"key_ID":5}]})",
                            R"({"key_IDs":"x"})", R"({"key_IDs":[{"key_ID":"a"}],"more":1})"}) {
        EXPECT_FALSE(decode_key_ids(bad)) << bad;
    }
}

TEST(Etsi014Codec, KeyIdsCompactFormAgreesWithTheFullParser) {
    // decode_key_ids reads the compact form without a JSON document; the same request with
    // whitespace goes through the full parser. Both must give the same answer, and every near miss
    // of the compact form (escapes, empty or too long IDs, trailing data, extensions) the full
    // parser's answer.
    auto spaced = [](std::string s) {
        std::string o;
        for (char c : s) {
            o += c;
            if (c == ',' || c == '[' || c == '{') o += ' ';
        }
        return o;
    };
    const std::string long_id(kMaxIdLength + 1, 'a');
    for (std::string body : {std::string(R"({"key_IDs":[{"key_ID":"bc490419-7d60-487f-adc1-4ddcc177c139"}]})"),
                             std::string(R"({"key_IDs":[{"key_ID":"a"},{"key_ID":"b"},{"key_ID":"c d"}]})"),
                             std::string(R"({"key_IDs":[{"key_ID":""}]})"), std::string(R"({"key_IDs":[{"key_ID":"a"b"}]})"),
                             std::string(R"({"key_IDs":[{"key_ID":"a\u0041"}]})"), std::string(R"({"key_IDs":[{"key_ID":"a"}],})"),
                             std::string(R"({"key_IDs":[{"key_ID":"a"}]}x)"), std::string(R"({"key_IDs":[{"key_ID":"a"},]})"),
                             std::string(R"({"key_IDs":[{"key_ID":"a","key_ID":"b"}]})"), std::string(R"({"key_IDs":[{"key_ID":"a"}")"),
                             R"({"key_IDs":[{"key_ID":")" + long_id + R"("}]})"}) {
        auto fast = decode_key_ids(body), full = decode_key_ids(spaced(body));
        ASSERT_EQ(bool(fast), bool(full)) << body;
        if (!fast) continue;
        ASSERT_EQ(fast->key_IDs.size(), full->key_IDs.size()) << body;
        for (std::size_t i = 0; i < fast->key_IDs.size(); ++i) EXPECT_EQ(fast->key_IDs[i].key_ID, full->key_IDs[i].key_ID) << body;
        EXPECT_FALSE(fast->key_IDs_extension);
    }
    // more entries than a container may hold
    std::string many = R"({"key_IDs":[)";
    for (std::size_t i = 0; i <= kMaxKeysPerContainer; ++i) many += std::string(i ? "," : "") + R"({"key_ID":"k"})";
    EXPECT_FALSE(decode_key_ids(many + "]}"));
}

TEST(Etsi014Codec, KeyRequestCompactFormAgreesWithTheFullParser) {
    // {"number":N,"size":M} is read without a JSON document; with a space added it goes through the
    // full parser. Both must agree, near misses included.
    for (std::string body : {R"({"number":1,"size":256})", R"({"size":256,"number":3})", R"({"number":7})", R"({"size":512})",
                             R"({"number":0,"size":0})", R"({"number":01,"size":256})", R"({"number":-1,"size":256})",
                             R"({"number":1.5,"size":256})", R"({"number":1e3,"size":256})", R"({"number":1,"number":2})",
                             R"({"number":1,"size":256,})", R"({"number":1,"size":256}x)", R"({"number":1,"size":256,"more":1})",
                             R"({"number":1234567890,"size":256})", R"({"number":999999999,"size":256})", R"({"number":"1"})",
                             R"({"number":1,"size":)", R"({})", R"({"number":1,"size":256,"additional_slave_SAE_IDs":["x"]})"}) {
        auto fast = decode_key_request(body), full = decode_key_request(" " + body);
        ASSERT_EQ(bool(fast), bool(full)) << body;
        if (!fast) {
            EXPECT_EQ(fast.error().message, full.error().message) << body;
            continue;
        }
        EXPECT_EQ(fast->number, full->number) << body;
        EXPECT_EQ(fast->size, full->size) << body;
        EXPECT_EQ(fast->additional_slave_SAE_IDs, full->additional_slave_SAE_IDs) << body;
    }
}

TEST(Etsi014Codec, KeyContainerCarriesSecretBytes) {
    KeyContainer c;
    const std::uint8_t k1[] = {0, 1, 2, 0xff, 0xfe, 0x80, 0x7f, 9};
    c.keys.push_back(Key{"550e8400-e29b-41d4-a716-446655440000", qkd::SecretBytes(std::span<const std::uint8_t>(k1)), std::nullopt, std::nullopt});
    c.key_container_extension = nlohmann::json{{"x", 1}};
    std::string text = encode(c);
    EXPECT_NE(text.find(qkd::base64_encode(k1)), std::string::npos);
    auto d = decode_key_container(text);
    ASSERT_TRUE(d) << d.error().message;
    ASSERT_EQ(d->keys.size(), 1u);
    EXPECT_TRUE(qkd::ct_equal(d->keys[0].key, c.keys[0].key));
    EXPECT_EQ(d->keys[0].key_ID, c.keys[0].key_ID);
    EXPECT_TRUE(d->key_container_extension.has_value());
    qkd::wipe_string(text);
    EXPECT_TRUE(text.empty());
}

TEST(Etsi014Codec, KeyContainerRejectsBadKeys) {
    for (const char* bad : {R"({})", R"({"keys":{}})", R"({"keys":[{"key":"AAAA"}]})", R"({"keys":[{"key_ID":"a"}]})",
                            R"({"keys":[{"key_ID":"a","key":"AAA"}]})", R"({"keys":[{"key_ID":"a","key":5}]})",
                            R"({"keys":[{"key_ID":"","key":"AAAA"}]})", R"({"keys":[1]})"}) {
        EXPECT_FALSE(decode_key_container(bad)) << bad;
    }
}

TEST(Etsi014Codec, ErrorBody) {
    ErrorBody e{std::string(msg::kMandatoryUnsupported), {{"extension_mandatory_unsupported", "abc_route_type is not supported"}}};
    auto d = decode_error(encode(e));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->message, "not all extension_mandatory parameters are supported");
    ASSERT_EQ(d->details.size(), 1u);
    EXPECT_EQ(d->details[0].name, "extension_mandatory_unsupported");
    EXPECT_FALSE(decode_error(R"({"detail":"x"})"));  // FastAPI-style bodies are not ETSI errors
}
