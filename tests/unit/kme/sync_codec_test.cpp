#include <gtest/gtest.h>

#include "qkd/kme/sync_codec.hpp"

using namespace qkd::kme;

TEST(SyncCodec, RoundTripCarriesOffsetsNotMaterial) {
    SyncRequest r{"KME_A", "KME_A->KME_B", "SAE_A", {"SAE_B"}, 1234, {{qkd::uuid_random_v4(), 4096, 256}}};
    auto text = encode_sync_batch({r});
    auto back = decode_sync_batch(text);
    ASSERT_TRUE(back) << back.error();
    ASSERT_EQ(back->size(), 1u);
    EXPECT_EQ((*back)[0].keys[0].key_ID, r.keys[0].key_ID);
    EXPECT_EQ((*back)[0].keys[0].offset, 4096u);
    EXPECT_EQ((*back)[0].slaves, r.slaves);
    EXPECT_EQ(text.find("\"key\""), std::string::npos);
}

TEST(SyncCodec, RejectsMalformedBatches) {
    for (const char* bad : {"", "[]", "{}", R"({"reservations":[]})", R"({"reservations":{}})",
                            R"({"reservations":[{"master_kme_id":"A"}]})",
                            R"({"reservations":[{"master_kme_id":"A","stream":"s","master_SAE_ID":"m","slaves":["x"],"expires":1,"keys":[["not-a-uuid",0,256]]}]})",
                            R"({"reservations":[{"master_kme_id":"A","stream":"s","master_SAE_ID":"m","slaves":["x"],"expires":1,"keys":[[1,2]]}]})",
                            R"({"reservations":[{"master_kme_id":5,"stream":"s","master_SAE_ID":"m","slaves":["x"],"expires":1,"keys":[]}]})"}) {
        EXPECT_FALSE(decode_sync_batch(bad)) << bad;
    }
    EXPECT_FALSE(decode_sync_results(R"({"results":["",""]})", 3));
    EXPECT_FALSE(decode_sync_results(R"({"results":[1]})", 1));
    auto ok = decode_sync_results(R"({"results":["","peer said no"]})", 2);
    ASSERT_TRUE(ok);
    EXPECT_EQ((*ok)[1], "peer said no");
}
