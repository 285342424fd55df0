#pragma once
// The index of a key-file link (docs/kme.md "Key files from a QKD device"): the files taken into
// the link's two key streams, in order, with their sizes, and how far the outgoing stream may have
// been handed out. Used files are deleted, so the stream offsets (the sum of the half sizes of the
// files before one) can only be recomputed from this record. Append-only text, fsynced after each
// append and before any byte of an appended file is used:
//
//   qkd-kme key-file index v1        first line
//   <size> <name>                    one line per file: size in bytes (1 .. kMaxKeyFileBytes),
//                                    name as in key_dir; names in increasing byte order
//   direction <outgoing|incoming>    optional, before the first file line: every file is used
//                                    whole, for that direction only (KeyDirDirection); without
//                                    it each file is split in halves, one per direction
//   mark <offset>                    the outgoing direction may have been allocated below
//                                    <offset> (written, fsynced, before the allocation that
//                                    passes the previous mark); increasing; between file lines
//
// A tail of NUL bytes after the last complete line (zero-filled blocks a power loss can leave on
// XFS) is dropped like an incomplete last line. The open index is locked (flock): one KME per
// index.
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace qkd::kme {

inline constexpr std::uint64_t kMaxKeyFileBytes = 64ull << 20;  // a larger key file is refused
inline constexpr std::size_t kMaxKeyFileName = 255;            // NAME_MAX

// Which way a key-file link's files go (config `[[peer]] key_dir_direction`): each file split in
// halves, one per direction (Both), or each file whole for keys whose master SAE is attached to
// this KME (Outgoing) or to the peer KME (Incoming). The two KMEs of a link must agree (Outgoing
// on one, Incoming on the other), and a link keeps its choice for as long as its index lives:
// offsets mean other file bytes under another choice.
enum class KeyDirDirection { Both, Outgoing, Incoming };
std::string_view key_dir_direction_name(KeyDirDirection d);  // "both", "outgoing", "incoming"

struct IndexedFile {
    std::string name;
    std::uint64_t size = 0;
};

// A name key_dir may hold a key file under: not hidden (".x"), not being written (".tmp", ".part"),
// at most kMaxKeyFileName bytes, no '/' and no control characters (they could not be indexed).
bool is_key_file_name(std::string_view name);

// A file name (or any text from outside) as it may appear in a log line or an error message:
// control characters, '\\', DEL and bytes that are not valid UTF-8 as \xNN (a backslash as \\),
// cut after `max` bytes with "...". Unchanged for a plain name.
std::string escaped_name(std::string_view name, std::size_t max = 255);

// Tests only: makes the next append fail after writing `partial_bytes` of its text, and with
// `repair_fails` the cutting back of that partial write fail as well.
struct KeyFileIndexFault {
    std::size_t partial_bytes = 0;
    bool repair_fails = false;
};

class KeyFileIndex {
public:
    // Opens (creates) the index, locks it and reads it. Throws std::runtime_error naming the path
    // if another process (another qkd-kme) holds the lock, and path:line and what was expected for
    // a line that does not parse. An incomplete last line (a crash during an append, so before its
    // fsync and before any of its bytes were used) or a tail of NUL bytes is dropped and truncated.
    explicit KeyFileIndex(std::string path);
    ~KeyFileIndex();
    KeyFileIndex(const KeyFileIndex&) = delete;
    KeyFileIndex& operator=(const KeyFileIndex&) = delete;

    const std::string& path() const { return path_; }
    // The entries read at start, in file order.
    const std::vector<IndexedFile>& loaded() const { return loaded_; }
    // The highest "mark" line (read at start or appended since); 0 if none.
    std::uint64_t mark() const;
    // The direction the index was built for (Both for an index without a direction line). An
    // index that holds no file yet takes `d` (its line is appended and fsynced); one that does
    // must have been built for `d`: false otherwise, and `error` says why and what to do.
    bool settle_direction(KeyDirDirection d, std::string& error);
    KeyDirDirection direction() const;
    // Appends the entries and fsyncs. On failure nothing is indexed (a partial write is cut off
    // again) and `error` says why. Thread-safe.
    bool append(const std::vector<IndexedFile>& files, std::string& error);
    // Appends "mark <offset>" and fsyncs. Thread-safe.
    bool append_mark(std::uint64_t offset, std::string& error);
    // Once a partial write could not be cut off again, every later append is refused (a line glued
    // onto the partial one would not parse, or worse): the KME must be restarted.
    bool broken() const;

    void inject_fault_for_test(const KeyFileIndexFault& fault);

private:
    bool append_text(const std::string& text, std::string& error);  // mu_ held

    std::string path_;
    int fd_ = -1;
    mutable std::mutex mu_;   // appends
    std::uint64_t size_ = 0;  // bytes of complete lines
    std::uint64_t mark_ = 0;
    KeyDirDirection direction_ = KeyDirDirection::Both;
    bool broken_ = false;
    KeyFileIndexFault fault_;
    std::vector<IndexedFile> loaded_;
};

}  // namespace qkd::kme
