#pragma once
// A QKD link fed by key files (docs/kme.md "Key files from a QKD device").
//
// The QKD device (or its agent) drops blocks of secret key in a folder, key_dir: each regular file
// whose name is not hidden and does not end in ".tmp" or ".part", written under a temporary name
// and renamed into place. Both KMEs of the link see the same files. Files are taken in byte-wise
// name order; the first floor(n/2) bytes of a file extend the stream whose master KME has the
// byte-wise smaller KME ID, the next floor(n/2) bytes the other direction's (an odd last byte is
// dropped). A direction's stream is the concatenation of its halves in name order, so an offset
// names the same bytes on both KMEs. A link used one way only (key_dir_direction, one KME
// "outgoing" and the other "incoming") uses each file whole for that direction instead.
//
// The index (key_file_index.hpp) keeps the order and sizes across restarts, and the outgoing
// high-water mark; key bytes are read from the files on demand (pread straight into the caller's
// buffer) and never kept in memory. Each file is opened without following links and without
// blocking (a FIFO put in its place makes a read fail, not hang) and must be the inode it was
// indexed as (pinned when this process first sees it): a file replaced under the same name is
// neither read nor wiped. A file is overwritten with zeros and deleted once none of its bytes can
// be asked for again: both halves below their direction's mark (outgoing: the allocation cursor;
// incoming: the highest reservation end the peer sent) for longer than `retention`. Only
// maintain() (the KME's housekeeping timer) wipes; the scans that requests trigger only index new
// files and notice changed ones.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "qkd/kme/key_file_index.hpp"
#include "qkd/kme/key_source.hpp"

namespace qkd::kme {

inline constexpr auto kKeyDirRescan = std::chrono::milliseconds(200);  // lazy rescans at most this often
inline constexpr std::uint64_t kKeyFileMarkStep = 4096;               // high-water step (bytes)
inline constexpr std::size_t kMaxKeyDirEntries = 100000;             // directory entries looked at per scan
inline constexpr std::size_t kMaxDeletionsPerScan = 4;               // files wiped per scan (bounds the time a scan takes)
inline constexpr auto kForcedScanInterval = std::chrono::milliseconds(20);  // scans a request needs: at most one per this
inline constexpr auto kWipeRetry = std::chrono::seconds(60);               // a failed wipe is tried again after this

struct KeyFileLinkOptions {
    std::string key_dir;
    std::string index_file;  // key_file_index_path()
    std::string local_kme, peer_kme;
    // How long a used file is kept: reservation_ttl + sync_timeout + 10 s.
    std::chrono::steady_clock::duration retention{std::chrono::seconds(320)};
    std::size_t max_dir_entries = kMaxKeyDirEntries;  // a longer listing is incomplete: nothing new is taken
    std::chrono::steady_clock::duration forced_scan_interval = kForcedScanInterval;  // real (steady) time
    std::chrono::steady_clock::duration wipe_retry = kWipeRetry;
    // Both: each file split in halves as above. Outgoing / Incoming: each file used whole by that
    // direction alone (the other one has no material), and deleted once that direction is past it.
    KeyDirDirection direction = KeyDirDirection::Both;
};

struct KeyFileLink {
    std::unique_ptr<KeySource> outgoing;    // local_kme -> peer_kme: this KME serves masters from it
    std::unique_ptr<KeyMaterial> incoming;  // peer_kme -> local_kme: read for this KME's slaves
};

// Both directions over one shared folder and index. Throws std::runtime_error naming the path if
// key_dir cannot be read or the index does not parse. `start` is the time of the first scan.
KeyFileLink make_key_file_link(const KeyFileLinkOptions& options, std::chrono::steady_clock::time_point start);

// The identity of a file: the inode a name referred to when the file was indexed.
struct KeyFileId {
    std::uint64_t dev = 0, ino = 0;
    bool operator==(const KeyFileId&) const = default;
};

enum class WipeResult {
    Wiped,     // zeroed and fsynced; unlinked unless the name meanwhile refers to another file
    Gone,      // no file under the name: nothing to do
    Replaced,  // the name refers to another file (another inode, not a regular file): left alone
    Failed,    // `error` says why; try again later
};
// Overwrites key_dir/name with zeros through a descriptor opened without following a symbolic
// link and without blocking, only if it is the regular file `id`; fsyncs it; then unlinks the name
// if it still refers to `id` (checked just before the unlink: a file renamed over it in between
// the check and the unlink would be unlinked instead, a race this accepts; its content is not
// touched). Never blocks on a FIFO or a device.
WipeResult wipe_key_file(const std::string& key_dir, const std::string& name, KeyFileId id, std::string& error);

// The outgoing source of a key-file link resumes at the greater of KeyManager's high-water mark
// (resume_at) and the mark in the index; this is that position (valid after resume_at). KeyManager
// must start allocating there: OutgoingFiles::resume_position(), also reachable as
// resume_position(source) for any KeySource (0 for one that is not a key-file source).
std::uint64_t resume_position(const KeySource& source);

// "<state_db>.keyfiles-<peer KME ID>" (characters other than [A-Za-z0-9._-] in the ID as '_').
std::string key_file_index_path(const std::string& state_db, const std::string& peer_kme);

}  // namespace qkd::kme
