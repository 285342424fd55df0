// The key-file source (key_files.hpp): how files in key_dir become the two key streams of a link,
// what is ignored, the index across restarts, rescans, reads that fail, and the wiping of used files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "qkd/kme/key_files.hpp"
#include "test_util.hpp"

using namespace qkd::kme;
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 g(seed);
    Bytes b(n);
    for (auto& x : b) x = static_cast<std::uint8_t>(g());
    return b;
}

// As a device drops a key file: written under a temporary name, renamed into place.
void drop(const fs::path& dir, const std::string& name, const Bytes& b) {
    const auto tmp = dir / (name + ".tmp");
    std::ofstream(tmp, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    fs::rename(tmp, dir / name);
}

Bytes file_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), {});
}

Bytes slice(const Bytes& b, std::size_t from, std::size_t n) { return Bytes(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(from + n)); }
Bytes cat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

Bytes read(const KeyMaterial& m, std::uint64_t offset, std::size_t n) {
    auto s = m.read(offset, n);
    return Bytes(s.view().begin(), s.view().end());
}

struct KeyFiles : ::testing::Test {
    fs::path root = kmetest::temp_dir("keyfiles");
    fs::path dir = root / "keys";
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::time_point(std::chrono::hours(1000));
    void SetUp() override { fs::create_directories(dir); }
    void TearDown() override { fs::remove_all(root); }
    KeyFileLinkOptions options(const std::string& local = "KME_A", const std::string& peer = "KME_B", const std::string& index = "idx") {
        return KeyFileLinkOptions{dir.string(), (root / index).string(), local, peer, seconds(10)};
    }
    KeyFileLink open(const std::string& local = "KME_A", const std::string& peer = "KME_B", const std::string& index = "idx") {
        return make_key_file_link(options(local, peer, index), t0);
    }
};

}  // namespace

TEST_F(KeyFiles, EachFileIsSplitInHalvesBetweenTheTwoDirections) {
    const Bytes f1 = random_bytes(11, 1), f2 = random_bytes(8, 2);  // 11: the odd last byte is dropped
    drop(dir, "0001", f1);
    drop(dir, "0002", f2);
    auto a = open("KME_A", "KME_B", "idx-a");
    EXPECT_EQ(a.outgoing->label(), "KME_A->KME_B");
    EXPECT_EQ(a.incoming->label(), "KME_B->KME_A");
    // KME_A < KME_B: KME_A->KME_B gets the first halves, KME_B->KME_A the second halves.
    EXPECT_EQ(a.outgoing->available(t0), (5 + 4) * 8);
    EXPECT_EQ(read(*a.outgoing, 0, 9), cat(slice(f1, 0, 5), slice(f2, 0, 4)));
    EXPECT_EQ(read(*a.incoming, 0, 9), cat(slice(f1, 5, 5), slice(f2, 4, 4)));
    EXPECT_EQ(read(*a.outgoing, 3, 4), cat(slice(f1, 3, 2), slice(f2, 0, 2)));  // across the file boundary
    // KME_B over the same files (its own index) reads the same streams by label.
    auto b = open("KME_B", "KME_A", "idx-b");
    EXPECT_EQ(b.outgoing->label(), "KME_B->KME_A");
    EXPECT_EQ(read(*b.outgoing, 0, 9), read(*a.incoming, 0, 9));
    EXPECT_EQ(read(*b.incoming, 2, 7), read(*a.outgoing, 2, 7));
    EXPECT_EQ(b.outgoing->mark_step(), 4096u);
    EXPECT_EQ(b.outgoing->key_files(), 2);
}

TEST_F(KeyFiles, FilesAreTakenInNameOrderAndOthersAreIgnored) {
    const Bytes fa = random_bytes(4, 3), fb = random_bytes(6, 4);
    drop(dir, "b", fb);
    drop(dir, "a", fa);                                 // same scan: name order, not arrival order
    drop(dir, ".hidden", random_bytes(100, 5));         // hidden
    drop(dir, "c.tmp", random_bytes(100, 6));           // being written
    drop(dir, "c.part", random_bytes(100, 7));
    drop(dir, "aa", {});                                // empty: skipped
    fs::create_directory(dir / "ab");                   // not a regular file
    {
        std::ofstream(dir / "big");                     // 64 MiB + 1 (sparse): refused
        fs::resize_file(dir / "big", kMaxKeyFileBytes + 1);
    }
    auto a = open();
    EXPECT_EQ(a.outgoing->available(t0), (2 + 3) * 8);
    EXPECT_EQ(read(*a.outgoing, 0, 5), cat(slice(fa, 0, 2), slice(fb, 0, 3)));
    EXPECT_EQ(a.outgoing->key_files(), 2);
    // A file that arrives with a name at or before the last one taken is not used.
    drop(dir, "0-late", random_bytes(50, 8));
    EXPECT_EQ(a.outgoing->available(t0 + seconds(1)), (2 + 3) * 8);
    EXPECT_FALSE(a.outgoing->has(5, 1));
    // A later name is.
    const Bytes fz = random_bytes(10, 9);
    drop(dir, "z", fz);
    EXPECT_EQ(a.outgoing->available(t0 + seconds(2)), (2 + 3 + 5) * 8);
    EXPECT_EQ(read(*a.outgoing, 5, 5), slice(fz, 0, 5));
}

TEST_F(KeyFiles, TheIndexKeepsOffsetsAcrossARestartWhenUsedFilesAreGone) {
    const Bytes f1 = random_bytes(20, 10), f2 = random_bytes(30, 11);
    drop(dir, "0001", f1);
    drop(dir, "0002", f2);
    {
        auto a = open();
        EXPECT_EQ(read(*a.outgoing, 10, 5), slice(f2, 0, 5));
    }
    fs::remove(dir / "0001");  // used and deleted
    const Bytes f3 = random_bytes(8, 12);
    drop(dir, "0003", f3);
    auto a = open();  // a new source on the same index
    EXPECT_EQ(read(*a.outgoing, 10, 15), slice(f2, 0, 15));
    EXPECT_EQ(read(*a.incoming, 10, 15), slice(f2, 15, 15));
    EXPECT_EQ(read(*a.outgoing, 25, 4), slice(f3, 0, 4));
    EXPECT_FALSE(a.outgoing->has(0, 10));
    EXPECT_TRUE(a.outgoing->has(10, 19));
    EXPECT_THROW(read(*a.outgoing, 5, 10), std::runtime_error);
    EXPECT_EQ(a.outgoing->key_files(), 2);
    // The index file: a header, then "<size> <name>" per file.
    std::ifstream in(root / "idx");
    std::string all((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(all, "qkd-kme key-file index v1\n20 0001\n30 0002\n8 0003\n");
}

TEST_F(KeyFiles, ANewFileIsSeenAtTheNextRescanOrWhenAReadNeedsIt) {
    drop(dir, "0001", random_bytes(8, 13));
    auto a = open();
    ASSERT_EQ(a.outgoing->available(t0), 32);
    const Bytes f2 = random_bytes(8, 14);
    drop(dir, "0002", f2);
    EXPECT_EQ(a.outgoing->available(t0 + milliseconds(100)), 32);  // rescans at most every 200 ms
    EXPECT_EQ(a.outgoing->available(t0 + milliseconds(200)), 64);
    const Bytes f3 = random_bytes(8, 15);
    drop(dir, "0003", f3);
    EXPECT_TRUE(a.incoming->has(8, 4));                       // beyond the indexed end: rescanned at once
    EXPECT_EQ(read(*a.incoming, 8, 4), slice(f3, 4, 4));
    EXPECT_FALSE(a.incoming->has(12, 1));
}

TEST_F(KeyFiles, TakeCountsFromResumeAtAndAnEmptyFolderIsAnOutage) {
    auto a = open();
    EXPECT_EQ(a.outgoing->available(t0), 0);
    EXPECT_TRUE(a.outgoing->in_outage(t0));
    EXPECT_FALSE(a.outgoing->take(8, t0));
    EXPECT_NE(a.outgoing->origin().find(dir.string()), std::string::npos);
    drop(dir, "0001", random_bytes(200, 16));  // 100 bytes per direction
    a.outgoing->resume_at(40);                 // KeyManager's stored high-water mark
    EXPECT_EQ(a.outgoing->available(t0 + seconds(1)), 60 * 8);
    EXPECT_FALSE(a.outgoing->in_outage(t0 + seconds(1)));
    EXPECT_TRUE(a.outgoing->take(50 * 8, t0 + seconds(1)));
    EXPECT_FALSE(a.outgoing->take(11 * 8, t0 + seconds(1)));
    EXPECT_TRUE(a.outgoing->take(10 * 8, t0 + seconds(1)));
    EXPECT_EQ(a.outgoing->available(t0 + seconds(1)), 0);
    EXPECT_TRUE(a.outgoing->in_outage(t0 + seconds(1)));
}

TEST_F(KeyFiles, AReadThatCannotBeServedThrowsAndLeavesNoBytes) {
    drop(dir, "0001", random_bytes(16, 17));
    drop(dir, "0002", random_bytes(16, 18));
    auto a = open();
    qkd::SecretBytes out(8);
    std::fill(out.data(), out.data() + 8, 0xAA);
    try {
        a.outgoing->read(12, out.mut_view());  // 12..20: beyond the 16 bytes per direction
        FAIL() << "read beyond the end";
    } catch (const std::runtime_error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("KME_A->KME_B"), std::string::npos) << m;
        EXPECT_NE(m.find("12..20"), std::string::npos) << m;
        EXPECT_NE(m.find("not (yet) in key_dir"), std::string::npos) << m;
    }
    for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(out[i], 0) << "output not wiped";
    // A file that vanished before the next scan noticed it.
    fs::remove(dir / "0002");
    try {
        (void)a.incoming->read(8, 4);
        FAIL() << "read of a vanished file";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("0002"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read(*a.incoming, 0, 8).size(), 8u);  // the other file still reads
    // A file whose size changed is not read.
    drop(dir, "0001", random_bytes(18, 19));
    EXPECT_THROW(read(*a.outgoing, 0, 4), std::runtime_error);
    (void)a.outgoing->available(t0 + seconds(1));  // a scan notices both
    EXPECT_FALSE(a.outgoing->has(0, 4));
    EXPECT_FALSE(a.outgoing->has(8, 4));
    EXPECT_FALSE(a.outgoing->has(16, 1));
}

TEST_F(KeyFiles, AUsedFileIsZeroedAndDeletedOnlyAfterTheRetentionTime) {
    const Bytes f1 = random_bytes(64, 20), f2 = random_bytes(64, 21);
    drop(dir, "0001", f1);
    drop(dir, "0002", f2);
    fs::create_hard_link(dir / "0001", root / "keep");  // sees what happens to the file's content
    auto a = open();  // retention 10 s
    ASSERT_TRUE(a.outgoing->take(32 * 8, t0));  // KME_A->KME_B past file 1
    a.outgoing->maintain(t0 + seconds(1));
    a.outgoing->maintain(t0 + seconds(20));
    EXPECT_TRUE(fs::exists(dir / "0001")) << "deleted while the peer's direction may still need it";
    a.incoming->reserved_below(40, t0 + seconds(21));  // the peer reserved KME_B->KME_A past file 1: passed from now on
    a.outgoing->maintain(t0 + seconds(30));
    EXPECT_TRUE(fs::exists(dir / "0001")) << "deleted before the retention time";
    EXPECT_EQ(file_bytes(root / "keep"), f1);
    a.outgoing->maintain(t0 + seconds(31) + milliseconds(1));
    EXPECT_FALSE(fs::exists(dir / "0001"));
    EXPECT_EQ(file_bytes(root / "keep"), Bytes(64, 0)) << "deleted without being zeroed";
    EXPECT_TRUE(fs::exists(dir / "0002"));  // not used up
    EXPECT_EQ(a.outgoing->key_files(), 1);
    EXPECT_FALSE(a.incoming->has(0, 1));
    EXPECT_THROW(read(*a.outgoing, 0, 4), std::runtime_error);
    EXPECT_EQ(read(*a.outgoing, 32, 4), slice(f2, 0, 4));
    // After a restart the deleted file is simply gone; offsets stay.
    auto again = open();
    EXPECT_EQ(read(*again.incoming, 32, 32), slice(f2, 32, 32));
}

TEST_F(KeyFiles, AMissingFolderOrABadIndexIsAnErrorThatNamesIt) {
    fs::remove_all(dir);
    try {
        open();
        FAIL() << "missing key_dir accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(dir.string() + ": key_dir cannot be read"), std::string::npos) << e.what();
    }
    fs::create_directories(dir);
    struct Case {
        std::string text, expect;
    } cases[] = {
        {"something else\n", "idx:1: expected the header line"},
        {"qkd-kme key-file index v1\n20 a\nx b\n", "idx:3: expected \"<size> <name>\""},
        {"qkd-kme key-file index v1\n20\n", "idx:2: expected \"<size> <name>\""},
        {"qkd-kme key-file index v1\n0 a\n", "idx:2: expected \"<size> <name>\""},
        {"qkd-kme key-file index v1\n67108865 a\n", "idx:2: expected a size of 1 to 67108864 bytes"},
        {"qkd-kme key-file index v1\n20 b\n20 a\n", "idx:3: names must increase"},
        {"qkd-kme key-file index v1\n20 .a\n", "idx:2: expected a key file name"},
        {"qkd-kme key-file index v1\n20 " + std::string(300, 'a') + "\n", "idx:2: expected a line of at most"},
    };
    for (const auto& c : cases) {
        kmetest::write(root / "idx", c.text);
        try {
            open();
            ADD_FAILURE() << "accepted: " << c.text;
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
        }
    }
    // An incomplete last line (a crash during an append) is dropped; the file is taken again.
    drop(dir, "a", random_bytes(20, 22));
    drop(dir, "b", random_bytes(20, 23));
    kmetest::write(root / "idx", "qkd-kme key-file index v1\n20 a\n20 b");
    auto a = open();
    EXPECT_EQ(a.outgoing->available(t0), 20 * 8);
    std::ifstream in(root / "idx");
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), "qkd-kme key-file index v1\n20 a\n20 b\n");
}

TEST(KeyFileNames, HiddenTemporaryAndControlCharactersAreNotKeyFiles) {
    EXPECT_TRUE(is_key_file_name("0001.key"));
    EXPECT_TRUE(is_key_file_name("2024-05-01T12:00:00Z"));
    EXPECT_FALSE(is_key_file_name(""));
    EXPECT_FALSE(is_key_file_name(".0001"));
    EXPECT_FALSE(is_key_file_name("0001.tmp"));
    EXPECT_FALSE(is_key_file_name("0001.part"));
    EXPECT_FALSE(is_key_file_name("a\nb"));
    EXPECT_FALSE(is_key_file_name(std::string(256, 'a')));
    EXPECT_EQ(key_file_index_path("/var/lib/kme.sqlite", "KME B/1"), "/var/lib/kme.sqlite.keyfiles-KME_B_1");
}
