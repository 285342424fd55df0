#include <gtest/gtest.h>

#include "qkd/common/bytes.hpp"

using qkd::ByteReader;
using qkd::ByteWriter;

TEST(ByteReader, ReadsBigEndianAndStopsAtEnd) {
    const std::uint8_t in[] = {1, 2, 3, 4, 5, 6, 7};
    ByteReader r(in);
    EXPECT_EQ(r.u8(), 1);
    EXPECT_EQ(r.u16(), 0x0203);
    EXPECT_EQ(r.u32(), 0x04050607u);
    EXPECT_TRUE(r.expect_end());
    EXPECT_FALSE(r.u8().has_value());
    EXPECT_FALSE(r.ok());
}

TEST(ByteReader, ShortReadPoisonsReader) {
    const std::uint8_t in[] = {1, 2, 3};
    ByteReader r(in);
    EXPECT_FALSE(r.u32().has_value());
    EXPECT_FALSE(r.u8().has_value());  // even though a byte remains, the reader failed
    EXPECT_FALSE(r.expect_end());
}

TEST(ByteReader, SubReaderIsBounded) {
    const std::uint8_t in[] = {0, 2, 0xaa, 0xbb, 0xcc};
    ByteReader r(in);
    auto len = r.u16();
    ASSERT_TRUE(len);
    auto sub = r.sub(*len);
    ASSERT_TRUE(sub);
    EXPECT_EQ(sub->u16(), 0xaabb);
    EXPECT_FALSE(sub->u8().has_value());
    EXPECT_EQ(r.u8(), 0xcc);
    EXPECT_FALSE(r.sub(1).has_value());
}

TEST(ByteWriter, MirrorsReader) {
    ByteWriter w;
    w.u8(9);
    auto at = w.placeholder_u16();
    w.u32(0xdeadbeef);
    w.u64(0x0102030405060708ull);
    w.patch_u16(at, 12);
    ByteReader r(w.data());
    EXPECT_EQ(r.u8(), 9);
    EXPECT_EQ(r.u16(), 12);
    EXPECT_EQ(r.u32(), 0xdeadbeefu);
    EXPECT_EQ(r.u64(), 0x0102030405060708ull);
    EXPECT_TRUE(r.expect_end());
}
