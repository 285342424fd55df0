// The key-file source (key_files.hpp): how files in key_dir become the two key streams of a link,
// what is ignored, the index across restarts, rescans, reads that fail, and the wiping of used files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <thread>

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

std::string text_of(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// Everything logged while it lives.
struct LogCapture {
    std::ostringstream out;
    std::shared_ptr<spdlog::logger> old = spdlog::default_logger();
    LogCapture() {
        auto l = std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
        l->set_pattern("%v");
        l->set_level(spdlog::level::debug);
        spdlog::set_default_logger(l);
    }
    ~LogCapture() { spdlog::set_default_logger(old); }
    std::string text() {
        spdlog::default_logger()->flush();
        return out.str();
    }
};

// Runs f on another thread; false if it did not finish within `limit` (then `rescue` is called to
// unblock it, so that the test can fail instead of hanging).
template <class F>
bool finishes(F f, std::chrono::milliseconds limit, const std::function<void()>& rescue = {}) {
    auto done = std::async(std::launch::async, std::move(f));
    if (done.wait_for(limit) == std::future_status::ready) {
        done.get();
        return true;
    }
    for (int i = 0; rescue && i < 100 && done.wait_for(milliseconds(50)) != std::future_status::ready; ++i) rescue();
    done.wait();
    return false;
}

// Makes a file immutable (or not): writes and unlinks fail even for root. False if the file
// system or the process cannot.
bool set_immutable(const fs::path& p, bool on) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    int flags = 0;
    bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    ok = ok && ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    ::close(fd);
    return ok;
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
    KeyFileLink open_with(const KeyFileLinkOptions& o) { return make_key_file_link(o, t0); }
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
    a = {};  // one KME per index (it is locked)
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

// A: a listing cut short (too many entries, a readdir error) says nothing about the names it did
// not reach: nothing new is taken (it could skip an earlier name) and nothing is taken for gone.
TEST_F(KeyFiles, AnIncompleteListingTakesNothingNewAndLosesNothing) {
    drop(dir, "0001", random_bytes(16, 30));
    const Bytes f2 = random_bytes(16, 31);
    drop(dir, "0002", f2);
    auto o = options();
    o.max_dir_entries = 10;
    auto a = open_with(o);
    ASSERT_EQ(a.outgoing->available(t0), 16 * 8);
    LogCapture log;
    for (int i = 0; i < 20; ++i) drop(dir, "junk-" + std::to_string(i) + ".tmp", {});  // junk counts too
    fs::rename(dir / "0002", root / "parked");
    drop(dir, "0003", random_bytes(16, 32));
    EXPECT_EQ(a.outgoing->available(t0 + seconds(1)), 16 * 8) << "a file taken from an incomplete listing";
    EXPECT_EQ(a.outgoing->key_files(), 2) << "a file taken for gone from an incomplete listing";
    EXPECT_TRUE(a.outgoing->has(8, 8));
    EXPECT_EQ(a.outgoing->available(t0 + seconds(2)), 16 * 8);
    const auto text = log.text();
    EXPECT_EQ(count(text, "key_dir holds more than 10 entries; remove files that are not key files"), 1u) << text;  // rate-limited
    // Back under the limit: both are noticed.
    for (int i = 0; i < 20; ++i) fs::remove(dir / ("junk-" + std::to_string(i) + ".tmp"));
    EXPECT_EQ(a.outgoing->available(t0 + seconds(3)), 24 * 8);
    EXPECT_EQ(a.outgoing->key_files(), 2);
    EXPECT_FALSE(a.outgoing->has(8, 8));
}

// B: a FIFO put in place of a key file makes a read fail at once; it must not wait for a writer.
TEST_F(KeyFiles, AFifoInPlaceOfAKeyFileFailsAReadAndHangsNothing) {
    drop(dir, "0001", random_bytes(16, 33));
    drop(dir, "0002", random_bytes(16, 34));
    auto a = open();
    ASSERT_TRUE(a.outgoing->take(8 * 8, t0));
    fs::remove(dir / "0001");
    ASSERT_EQ(::mkfifo((dir / "0001").c_str(), 0600), 0);
    auto unblock = [&] {  // a reader blocked in open() of the FIFO is released by a writer
        if (int w = ::open((dir / "0001").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC); w >= 0) ::close(w);
    };
    std::string error;
    EXPECT_TRUE(finishes(
        [&] {
            try {
                (void)read(*a.outgoing, 0, 4);
            } catch (const std::runtime_error& e) {
                error = e.what();
            }
        },
        seconds(5), unblock))
        << "read() blocked on a FIFO";
    EXPECT_NE(error.find("0001 was replaced by something that is not a regular file"), std::string::npos) << error;
    // Scans and the wipe after the retention time neither block nor touch it.
    a.incoming->reserved_below(8, t0 + seconds(1));
    EXPECT_TRUE(finishes([&] { a.outgoing->maintain(t0 + seconds(2)); }, seconds(5), unblock));
    EXPECT_TRUE(finishes([&] { a.outgoing->maintain(t0 + seconds(20)); }, seconds(5), unblock));
    EXPECT_TRUE(fs::is_fifo(dir / "0001"));
    EXPECT_FALSE(a.outgoing->has(0, 1));
    EXPECT_EQ(read(*a.outgoing, 8, 4).size(), 4u);
}

// B, C: the wipe of one file, by itself.
TEST_F(KeyFiles, AWipeTouchesOnlyThePinnedFileAndNeverBlocks) {
    const Bytes f = random_bytes(100, 35);
    drop(dir, "k", f);
    struct stat st {};
    ASSERT_EQ(::stat((dir / "k").c_str(), &st), 0);
    const KeyFileId id{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    fs::create_hard_link(dir / "k", root / "mine");
    std::string error;
    EXPECT_EQ(wipe_key_file(dir.string(), "none", id, error), WipeResult::Gone);
    // Another file under the name: left alone.
    fs::rename(dir / "k", root / "k-away");
    const Bytes other = random_bytes(100, 36);
    drop(dir, "k", other);
    EXPECT_EQ(wipe_key_file(dir.string(), "k", id, error), WipeResult::Replaced);
    EXPECT_EQ(file_bytes(dir / "k"), other);
    // A FIFO under the name: left alone, at once.
    fs::remove(dir / "k");
    ASSERT_EQ(::mkfifo((dir / "k").c_str(), 0600), 0);
    WipeResult r = WipeResult::Failed;
    EXPECT_TRUE(finishes([&] { r = wipe_key_file(dir.string(), "k", id, error); }, seconds(5), [&] {
        if (int rd = ::open((dir / "k").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC); rd >= 0) ::close(rd);
    }));
    EXPECT_EQ(r, WipeResult::Replaced);
    EXPECT_TRUE(fs::is_fifo(dir / "k"));
    // The pinned file back under its name: zeroed and deleted.
    fs::remove(dir / "k");
    fs::rename(root / "k-away", dir / "k");
    EXPECT_EQ(wipe_key_file(dir.string(), "k", id, error), WipeResult::Wiped) << error;
    EXPECT_FALSE(fs::exists(dir / "k"));
    EXPECT_EQ(file_bytes(root / "mine"), Bytes(100, 0));
}

// C: a different file under an indexed name (a device re-delivering the name, a replacement) is
// not read and not wiped, even with the same size.
TEST_F(KeyFiles, AFileReplacedUnderItsNameIsNeitherReadNorWiped) {
    const Bytes f1 = random_bytes(64, 37), f2 = random_bytes(64, 38);
    drop(dir, "0001", f1);
    drop(dir, "0002", f2);
    auto a = open();
    ASSERT_EQ(read(*a.outgoing, 0, 4), slice(f1, 0, 4));
    const Bytes impostor = random_bytes(64, 39);
    drop(dir, "0001", impostor);  // the same size, another inode
    try {
        (void)read(*a.outgoing, 0, 4);
        FAIL() << "a replaced file was read";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("key file " + dir.string() + "/0001 was replaced"), std::string::npos) << e.what();
    }
    ASSERT_TRUE(a.outgoing->take(32 * 8, t0));
    a.incoming->reserved_below(40, t0 + seconds(1));
    EXPECT_FALSE(a.outgoing->has(0, 4));  // the scan saw it too
    a.outgoing->maintain(t0 + seconds(2));
    a.outgoing->maintain(t0 + seconds(20));
    EXPECT_EQ(file_bytes(dir / "0001"), impostor) << "another file than the one indexed was wiped";
    EXPECT_EQ(read(*a.outgoing, 32, 4), slice(f2, 0, 4));
}

// C: a wipe that failed is tried again later, not never.
TEST_F(KeyFiles, AFailedWipeIsTriedAgainAfterABackOff) {
    drop(dir, "0001", random_bytes(64, 40));
    drop(dir, "0002", random_bytes(64, 41));
    if (!set_immutable(dir / "0001", true)) GTEST_SKIP() << "cannot make a file immutable here (FS_IMMUTABLE_FL)";
    struct Undo {
        fs::path p;
        ~Undo() { set_immutable(p, false); }
    } undo{dir / "0001"};
    auto o = options();
    o.wipe_retry = seconds(60);
    auto a = open_with(o);
    ASSERT_TRUE(a.outgoing->take(32 * 8, t0));
    a.incoming->reserved_below(32, t0);
    a.outgoing->maintain(t0 + seconds(1));
    a.outgoing->maintain(t0 + seconds(12));  // past the retention time: the wipe fails
    EXPECT_TRUE(fs::exists(dir / "0001"));
    set_immutable(dir / "0001", false);
    a.outgoing->maintain(t0 + seconds(40));  // before the back-off is over
    EXPECT_TRUE(fs::exists(dir / "0001"));
    a.outgoing->maintain(t0 + seconds(73));
    EXPECT_FALSE(fs::exists(dir / "0001")) << "a failed wipe is never tried again";
}

// D: requests never wipe (up to 4 files of 64 MiB, fsynced, on a request thread); maintain() does.
TEST_F(KeyFiles, RequestsNeverWipeOnlyMaintainDoes) {
    const Bytes f1 = random_bytes(64, 42), f2 = random_bytes(64, 43);
    drop(dir, "0001", f1);
    drop(dir, "0002", f2);
    fs::create_hard_link(dir / "0001", root / "keep");
    auto a = open();
    ASSERT_TRUE(a.outgoing->take(32 * 8, t0));
    a.incoming->reserved_below(40, t0 + seconds(1));
    const auto late = t0 + seconds(30);  // well past the retention time of 10 s
    (void)a.outgoing->available(late);
    (void)a.outgoing->take(0, late + seconds(1));
    a.incoming->reserved_below(41, late + seconds(2));
    (void)a.outgoing->has(100, 1);
    (void)a.outgoing->fingerprint(0, 40);
    EXPECT_TRUE(fs::exists(dir / "0001")) << "wiped on a request path";
    EXPECT_EQ(file_bytes(root / "keep"), f1);
    a.outgoing->maintain(late + seconds(3));
    EXPECT_FALSE(fs::exists(dir / "0001"));
    EXPECT_EQ(file_bytes(root / "keep"), Bytes(64, 0));
}

// D: the scans requests need at once (material beyond the end, a file missed) come at most once per
// forced_scan_interval; a later one waits for its slot rather than answering from an old look.
TEST_F(KeyFiles, ScansThatRequestsNeedAreRateLimited) {
    drop(dir, "0001", random_bytes(16, 44));
    auto o = options();
    o.forced_scan_interval = milliseconds(300);
    auto a = open_with(o);
    drop(dir, "0002", random_bytes(16, 45));
    const auto before = std::chrono::steady_clock::now();
    EXPECT_TRUE(a.outgoing->has(8, 8));  // beyond the end: a scan now
    drop(dir, "0003", random_bytes(16, 46));
    EXPECT_TRUE(a.outgoing->has(16, 8));  // another one, but not before 300 ms after the first
    EXPECT_GE(std::chrono::steady_clock::now() - before, milliseconds(300));
}

// E: after a partial write that could not be cut off, nothing is appended any more.
TEST_F(KeyFiles, AnIndexThatCouldNotBeRepairedRefusesEveryLaterAppend) {
    {
        KeyFileIndex idx((root / "i").string());
        std::string error;
        ASSERT_TRUE(idx.append(std::vector<IndexedFile>{{"a", 20}}, error)) << error;
        idx.inject_fault_for_test({3, true});
        EXPECT_FALSE(idx.append(std::vector<IndexedFile>{{"b", 20}}, error));
        EXPECT_FALSE(idx.append(std::vector<IndexedFile>{{"c", 20}}, error)) << "a line glued onto a partial one";
        EXPECT_NE(error.find("could not be repaired"), std::string::npos) << error;
        EXPECT_NE(error.find("restart the KME"), std::string::npos) << error;
        EXPECT_FALSE(idx.append_mark(4096, error));
        EXPECT_TRUE(idx.broken());
        EXPECT_EQ(text_of(root / "i"), "qkd-kme key-file index v1\n20 a\n20 ");
    }
    KeyFileIndex again((root / "i").string());  // the partial line is dropped at start
    ASSERT_EQ(again.loaded().size(), 1u);
    std::string error;
    EXPECT_TRUE(again.append(std::vector<IndexedFile>{{"b", 20}}, error)) << error;
    EXPECT_EQ(text_of(root / "i"), "qkd-kme key-file index v1\n20 a\n20 b\n");
}

// E: zero-filled blocks at the end (a power loss on XFS) are dropped like an incomplete line.
TEST_F(KeyFiles, ANulTailOfTheIndexIsDroppedLikeAnIncompleteLine) {
    drop(dir, "a", random_bytes(20, 47));
    kmetest::write(root / "idx", "qkd-kme key-file index v1\n20 a\n" + std::string(8192, '\0'));
    {
        LogCapture log;
        auto a = open();
        EXPECT_EQ(a.outgoing->available(t0), 10 * 8);
        EXPECT_NE(log.text().find("8192 NUL bytes"), std::string::npos) << log.text();
    }
    EXPECT_EQ(text_of(root / "idx"), "qkd-kme key-file index v1\n20 a\n");
    kmetest::write(root / "idx", "qkd-kme key-file index v1\n" + std::string(4096, '\0'));  // a tail of any length
    EXPECT_EQ(open().outgoing->available(t0), 10 * 8);
    // NUL bytes followed by data are not a torn tail: an error.
    kmetest::write(root / "idx", "qkd-kme key-file index v1\n20 a\n" + std::string(10, '\0') + "20 b\n");
    try {
        open();
        FAIL() << "NUL bytes inside the index accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("followed by other data"), std::string::npos) << e.what();
    }
}

// E: one KME per index.
TEST_F(KeyFiles, ASecondKmeOnTheSameIndexIsRefused) {
    auto a = open();
    try {
        open();
        FAIL() << "two links on one index";
    } catch (const std::runtime_error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find((root / "idx").string()), std::string::npos) << m;
        EXPECT_NE(m.find("another qkd-kme uses it"), std::string::npos) << m;
    }
    a = {};
    EXPECT_NO_THROW(open());
}

// F: names come from whoever can write to key_dir: control characters and bytes that are not UTF-8
// never reach the log or an error message as they are.
TEST_F(KeyFiles, NamesFromKeyDirAreEscapedInTheLogAndInErrors) {
    LogCapture log;
    drop(dir, "evil\x1b[2J\nfake log line", random_bytes(8, 48));
    drop(dir, "k\xff\xfe", random_bytes(16, 49));
    auto a = open();
    ASSERT_EQ(a.outgoing->available(t0), 8 * 8);
    fs::remove(dir / "k\xff\xfe");
    try {
        (void)read(*a.outgoing, 0, 4);
        FAIL() << "read of a vanished file";
    } catch (const std::runtime_error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("k\\xff\\xfe"), std::string::npos) << m;
        EXPECT_EQ(m.find('\xff'), std::string::npos) << m;
    }
    EXPECT_NE(a.outgoing->fingerprint(0, 4).find("k\\xff\\xfe+0 "), std::string::npos);
    (void)a.outgoing->available(t0 + seconds(1));  // "gone before all of its key material was used"
    const auto text = log.text();
    EXPECT_NE(text.find("evil\\x1b[2J\\x0afake log line"), std::string::npos) << text;
    EXPECT_NE(text.find("k\\xff\\xfe is gone"), std::string::npos) << text;
    EXPECT_EQ(text.find('\x1b'), std::string::npos);
    EXPECT_EQ(text.find('\xff'), std::string::npos);
    EXPECT_EQ(text.find("\nfake log line"), std::string::npos);
    EXPECT_EQ(escaped_name("a\\b\xc3\xa9\xc2\x85\xc0\xaf"), "a\\\\b\xc3\xa9\\u0085\\xc0\\xaf");
    EXPECT_EQ(escaped_name(std::string(300, 'x'), 10), "xxxxxxxxxx...");
}

// G: the index records how far the outgoing direction may have been handed out, ahead of use, so
// a lost or older state database cannot make the same bytes be handed out again.
TEST_F(KeyFiles, TheIndexRecordsTheOutgoingMarkAheadOfUse) {
    drop(dir, "0001", random_bytes(20000, 50));  // 10000 bytes per direction
    {
        auto a = open();
        a.outgoing->resume_at(0);
        EXPECT_EQ(resume_position(*a.outgoing), 0u);
        ASSERT_TRUE(a.outgoing->take(100 * 8, t0));
        EXPECT_EQ(text_of(root / "idx"), "qkd-kme key-file index v1\n20000 0001\nmark 4196\n");
        ASSERT_TRUE(a.outgoing->take(4096 * 8, t0));  // up to the mark: no new line
        EXPECT_EQ(count(text_of(root / "idx"), "mark"), 1u);
        ASSERT_TRUE(a.outgoing->take(8, t0));  // past it
        EXPECT_EQ(text_of(root / "idx"), "qkd-kme key-file index v1\n20000 0001\nmark 4196\nmark 8293\n");
    }
    {
        LogCapture log;
        auto a = open();
        a.outgoing->resume_at(40);  // a state database from before
        EXPECT_EQ(resume_position(*a.outgoing), 8293u);
        EXPECT_EQ(a.outgoing->available(t0), (10000 - 8293) * 8);
        EXPECT_NE(log.text().find("state database high-water mark 40 is behind the key-file index mark 8293"), std::string::npos)
            << log.text();
    }
    {
        LogCapture log;
        auto a = open();
        a.outgoing->resume_at(9000);  // the database is further: it wins
        EXPECT_EQ(resume_position(*a.outgoing), 9000u);
        EXPECT_EQ(a.outgoing->available(t0), 1000 * 8);
        EXPECT_EQ(log.text().find("is behind"), std::string::npos) << log.text();
        ASSERT_TRUE(a.outgoing->take(8, t0));
        EXPECT_NE(text_of(root / "idx").find("\nmark 13097\n"), std::string::npos) << text_of(root / "idx");
    }
    kmetest::write(root / "idx", "qkd-kme key-file index v1\nmark 50\nmark 40\n");
    EXPECT_THROW(open(), std::runtime_error);
}

// key_dir_direction: a link used one way only takes each file whole for that direction, so none
// of the scarce key material sits unused in halves nobody asks for, and files get deleted.
TEST_F(KeyFiles, AOneWayLinkUsesEachFileWholeForItsDirection) {
    const Bytes f1 = random_bytes(11, 40), f2 = random_bytes(8, 41);
    drop(dir, "0001", f1);
    drop(dir, "0002", f2);
    auto oa = options("KME_A", "KME_B", "idx-a");
    oa.direction = KeyDirDirection::Outgoing;
    auto ob = options("KME_B", "KME_A", "idx-b");
    ob.direction = KeyDirDirection::Incoming;
    auto a = open_with(oa);
    auto b = open_with(ob);
    EXPECT_EQ(a.outgoing->available(t0), (11 + 8) * 8);  // whole files, the odd byte included
    EXPECT_EQ(read(*a.outgoing, 0, 19), cat(f1, f2));
    EXPECT_EQ(read(*b.incoming, 7, 12), slice(cat(f1, f2), 7, 12));
    EXPECT_EQ(a.outgoing->fingerprint(3, 10), b.incoming->fingerprint(3, 10));
    EXPECT_NE(a.outgoing->fingerprint(3, 10).find("one-way KME_A->KME_B"), std::string::npos) << a.outgoing->fingerprint(3, 10);
    // The other direction has nothing, and says why.
    EXPECT_FALSE(a.incoming->has(0, 1));
    try {
        (void)read(*a.incoming, 0, 4);
        FAIL() << "read of the direction the files do not feed";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("key_dir_direction = \"outgoing\""), std::string::npos) << e.what();
    }
    EXPECT_EQ(b.outgoing->available(t0), 0);
    EXPECT_TRUE(b.outgoing->in_outage(t0));
    EXPECT_FALSE(b.outgoing->take(8, t0));
    EXPECT_NE(b.outgoing->origin().find("key_dir_direction = \"incoming\""), std::string::npos) << b.outgoing->origin();
    // A KME splitting the same files names other bytes at the same offsets: its check value differs.
    auto c = open("KME_B", "KME_A", "idx-c");
    EXPECT_NE(c.incoming->fingerprint(3, 10), a.outgoing->fingerprint(3, 10));
    // The index records the choice.
    EXPECT_EQ(text_of(root / "idx-a"), "qkd-kme key-file index v1\ndirection outgoing\n11 0001\n8 0002\n");
    EXPECT_EQ(text_of(root / "idx-b"), "qkd-kme key-file index v1\ndirection incoming\n11 0001\n8 0002\n");
}

TEST_F(KeyFiles, AOneWayLinkDeletesAFileOnceItsOneDirectionIsPastIt) {
    const Bytes f1 = random_bytes(64, 42), f2 = random_bytes(64, 43);
    const fs::path dir_b = root / "keys-b";  // the peer KME's copy of the device's files
    fs::create_directories(dir_b);
    for (const auto& d : {dir, dir_b}) {
        drop(d, "0001", f1);
        drop(d, "0002", f2);
    }
    auto oa = options("KME_A", "KME_B", "idx-a");
    oa.direction = KeyDirDirection::Outgoing;
    auto ob = options("KME_B", "KME_A", "idx-b");
    ob.key_dir = dir_b.string();
    ob.direction = KeyDirDirection::Incoming;
    auto a = open_with(oa);
    auto b = open_with(ob);
    ASSERT_TRUE(a.outgoing->take(64 * 8, t0));  // all of file 1
    b.incoming->reserved_below(64, t0);         // the master's reservations reached past it
    a.outgoing->maintain(t0 + seconds(1));
    b.outgoing->maintain(t0 + seconds(1));
    EXPECT_TRUE(fs::exists(dir / "0001")) << "deleted before the retention time";
    a.outgoing->maintain(t0 + seconds(12));
    b.outgoing->maintain(t0 + seconds(12));
    EXPECT_FALSE(fs::exists(dir / "0001")) << "a file used up one way is never deleted";
    EXPECT_FALSE(fs::exists(dir_b / "0001"));
    EXPECT_TRUE(fs::exists(dir / "0002"));
    EXPECT_TRUE(fs::exists(dir_b / "0002"));
    EXPECT_EQ(read(*b.incoming, 64, 8), slice(f2, 0, 8));
}

TEST_F(KeyFiles, AnIndexKeepsTheDirectionItWasBuiltFor) {
    auto with = [&](KeyDirDirection d) {
        auto o = options();
        o.direction = d;
        return open_with(o);
    };
    // No file indexed yet: the choice may still change, and each change is recorded.
    { auto a = with(KeyDirDirection::Both); }
    { auto a = with(KeyDirDirection::Incoming); }
    drop(dir, "0001", random_bytes(32, 44));
    {
        auto a = with(KeyDirDirection::Outgoing);
        EXPECT_EQ(a.outgoing->available(t0), 32 * 8);
    }
    EXPECT_EQ(text_of(root / "idx"), "qkd-kme key-file index v1\ndirection incoming\ndirection outgoing\n32 0001\n");
    // Once files are indexed, another choice would give old offsets other bytes: refused, with why.
    for (auto d : {KeyDirDirection::Both, KeyDirDirection::Incoming}) {
        try {
            (void)with(d);
            FAIL() << "index built for \"outgoing\" opened as " << key_dir_direction_name(d);
        } catch (const std::runtime_error& e) {
            const std::string m = e.what();
            EXPECT_NE(m.find((root / "idx").string()), std::string::npos) << m;
            EXPECT_NE(m.find("built with key_dir_direction = \"outgoing\""), std::string::npos) << m;
            EXPECT_NE(m.find(std::string("now says \"") + std::string(key_dir_direction_name(d)) + "\""), std::string::npos) << m;
        }
    }
    { auto a = with(KeyDirDirection::Outgoing); }
    // A direction line after a file line, or an unknown direction, does not parse.
    std::ofstream(root / "idx2") << "qkd-kme key-file index v1\n32 0001\ndirection outgoing\n";
    std::ofstream(root / "idx3") << "qkd-kme key-file index v1\ndirection sideways\n";
    for (const char* name : {"idx2", "idx3"}) {
        try {
            (void)open("KME_A", "KME_B", name);
            FAIL() << name << " parsed";
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find(std::string(name) + ":"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("direction"), std::string::npos) << e.what();
        }
    }
}
