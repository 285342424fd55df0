#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qkd/kme/sync_codec.hpp"

using namespace qkd::kme;

TEST(SyncCodec, RoundTripCarriesOffsetsNotMaterial) {
    SyncRequest r{"KME_A", "KME_A->KME_B", "SAE_A", {"SAE_B"}, 1234, {{qkd::uuid_random_v4(), 4096, 256}}, "seed check 0123456789abcdef"};
    auto text = encode_sync_batch({r});
    auto back = decode_sync_batch(text);
    ASSERT_TRUE(back) << back.error();
    ASSERT_EQ(back->size(), 1u);
    EXPECT_EQ((*back)[0].keys[0].key_ID, r.keys[0].key_ID);
    EXPECT_EQ((*back)[0].keys[0].offset, 4096u);
    EXPECT_EQ((*back)[0].slaves, r.slaves);
    EXPECT_EQ((*back)[0].material, r.material);
    EXPECT_EQ(text.find("\"key\""), std::string::npos);
    // Without a check value the field is left out, and reads back empty.
    r.material.clear();
    text = encode_sync_batch({r});
    EXPECT_EQ(text.find("material"), std::string::npos) << text;
    back = decode_sync_batch(text);
    ASSERT_TRUE(back) << back.error();
    EXPECT_EQ((*back)[0].material, "");
}

TEST(SyncCodec, RejectsMalformedBatches) {
    for (const char* bad : {"", "[]", "{}", R"({"reservations":[]})", R"({"reservations":{}})",
                            R"({"reservations":[{"master_kme_id":"A"}]})",
                            R"({"reservations":[{"master_kme_id":"A","stream":"s","master_SAE_ID":"m","slaves":["x"],"expires":1,"keys":[["not-a-uuid",0,256]]}]})",
                            R"({"reservations":[{"master_kme_id":"A","stream":"s","master_SAE_ID":"m","slaves":["x"],"expires":1,"keys":[[1,2]]}]})",
                            R"({"reservations":[{"master_kme_id":5,"stream":"s","master_SAE_ID":"m","slaves":["x"],"expires":1,"keys":[]}]})",
                            R"({"reservations":[{"master_kme_id":"A","stream":"s","master_SAE_ID":"m","slaves":["x"],"expires":1,"material":"","keys":[]}]})",
                            R"({"reservations":[{"master_kme_id":"A","stream":"s","master_SAE_ID":"m","slaves":["x"],"expires":1,"material":7,"keys":[]}]})"}) {
        EXPECT_FALSE(decode_sync_batch(bad)) << bad;
    }
    EXPECT_FALSE(decode_sync_results(R"({"results":["",""]})", 3));
    EXPECT_FALSE(decode_sync_results(R"({"results":[1]})", 1));
    auto ok = decode_sync_results(R"({"results":["","peer said no"]})", 2);
    ASSERT_TRUE(ok);
    EXPECT_EQ((*ok)[1], "peer said no");
}

TEST(SyncCodec, HandWrittenEncoderMatchesTheJsonLibraryForAnyStrings) {
    // Several requests and keys, SAE IDs that need escaping (quote, backslash, control, non-ASCII):
    // the decoded batch equals the input, field for field.
    std::vector<SyncRequest> batch;
    batch.push_back({"KME_A", "KME_A->KME_B", "SAE \"A\"", {"SAE_B", "back\\slash", "tab\there", "sä"}, -5, {}, "files ä\"b+0 0011 .. c\\d+31 2233"});
    batch.push_back({"KME_A", "KME_A->KME_B", "SAE_C", {"SAE_B"}, 1700000000, {}, ""});
    for (int i = 0; i < 70; ++i)
        batch[static_cast<std::size_t>(i % 2)].keys.push_back({qkd::uuid_random_v4(), 0xffffffffffull * static_cast<std::uint64_t>(i), 256u + 8u * static_cast<std::uint32_t>(i)});
    auto text = encode_sync_batch(batch);
    ASSERT_TRUE(nlohmann::json::accept(text)) << text;
    auto back = decode_sync_batch(text);
    ASSERT_TRUE(back) << back.error();
    ASSERT_EQ(back->size(), batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto& a = batch[i];
        const auto& b = (*back)[i];
        EXPECT_EQ(b.master_kme_id, a.master_kme_id);
        EXPECT_EQ(b.stream, a.stream);
        EXPECT_EQ(b.master_SAE_ID, a.master_SAE_ID);
        EXPECT_EQ(b.slaves, a.slaves);
        EXPECT_EQ(b.expires_unix, a.expires_unix);
        EXPECT_EQ(b.material, a.material);
        ASSERT_EQ(b.keys.size(), a.keys.size());
        for (std::size_t j = 0; j < a.keys.size(); ++j) {
            EXPECT_EQ(b.keys[j].key_ID, a.keys[j].key_ID);
            EXPECT_EQ(b.keys[j].offset, a.keys[j].offset);
            EXPECT_EQ(b.keys[j].bits, a.keys[j].bits);
        }
    }
}

TEST(SyncCodec, RelayedReservationsCarryThePathAndOneMaskPerKey) {
    SyncRequest r{"KME_R", "KME_R->KME_C", "SAE_A", {"SAE_C"}, 1234, {{qkd::uuid_random_v4(), 64, 16}, {qkd::uuid_random_v4(), 66, 16}}, "x"};
    r.path = {"KME_A"};
    r.masks = {{0x01, 0x02}, {0xfe, 0xff}};
    auto back = decode_sync_batch(encode_sync_batch({r}));
    ASSERT_TRUE(back) << back.error();
    EXPECT_EQ((*back)[0].path, r.path);
    EXPECT_EQ((*back)[0].masks, r.masks);
    // A mask of the wrong length, keys with and without masks mixed, or too long a path: refused.
    const std::string head = R"({"reservations":[{"master_kme_id":"A","stream":"s","master_SAE_ID":"m","slaves":["x"],"expires":1,)";
    const std::string id = "\"" + qkd::uuid_format(qkd::uuid_random_v4()) + "\"";
    EXPECT_FALSE(decode_sync_batch(head + R"("keys":[[)" + id + R"(,0,16,"AQID"]]}]})"));  // 3 bytes for 16 bits
    EXPECT_FALSE(decode_sync_batch(head + R"("keys":[[)" + id + R"(,0,16,"AQI="],[)" + id + R"(,2,16]]}]})"));
    EXPECT_FALSE(decode_sync_batch(head + R"("path":["1","2","3","4","5","6","7","8","9"],"keys":[[)" + id + R"(,0,16]]}]})"));
    EXPECT_TRUE(decode_sync_batch(head + R"("keys":[[)" + id + R"(,0,16,"AQI="]]}]})"));
}
