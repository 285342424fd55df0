#pragma once
// The index of a key-file link (docs/kme.md "Key files from a QKD device"): the files taken into
// the link's two key streams, in order, with their sizes. Used files are deleted, so the stream
// offsets (the sum of the half sizes of the files before one) can only be recomputed from this
// record. Append-only text, fsynced after each append and before any byte of an appended file is
// used:
//
//   qkd-kme key-file index v1        first line
//   <size> <name>                    one line per file: size in bytes (1 .. kMaxKeyFileBytes),
//                                    name as in key_dir; names in increasing byte order
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qkd::kme {

inline constexpr std::uint64_t kMaxKeyFileBytes = 64ull << 20;  // a larger key file is refused
inline constexpr std::size_t kMaxKeyFileName = 255;            // NAME_MAX

struct IndexedFile {
    std::string name;
    std::uint64_t size = 0;
};

// A name key_dir may hold a key file under: not hidden (".x"), not being written (".tmp", ".part"),
// at most kMaxKeyFileName bytes, no '/' and no control characters (they could not be indexed).
bool is_key_file_name(std::string_view name);

class KeyFileIndex {
public:
    // Opens (creates) the index and reads it. Throws std::runtime_error naming path:line and what
    // was expected for a line that does not parse. An incomplete last line (a crash during an
    // append, so before its fsync and before any of its bytes were used) is dropped and truncated.
    explicit KeyFileIndex(std::string path);
    ~KeyFileIndex();
    KeyFileIndex(const KeyFileIndex&) = delete;
    KeyFileIndex& operator=(const KeyFileIndex&) = delete;

    const std::string& path() const { return path_; }
    // The entries read at start, in file order.
    const std::vector<IndexedFile>& loaded() const { return loaded_; }
    // Appends the entries and fsyncs. On failure nothing is indexed (a partial write is cut off
    // again) and `error` says why.
    bool append(const std::vector<IndexedFile>& files, std::string& error);

private:
    std::string path_;
    int fd_ = -1;
    std::uint64_t size_ = 0;  // bytes of complete lines
    std::vector<IndexedFile> loaded_;
};

}  // namespace qkd::kme
