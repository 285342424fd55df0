#pragma once
// Internal to the key-file source (key_files.hpp): the state both directions of one key-file link
// share (FileLink), and the file helpers its parts use. key_file_link.cpp: set-up, budget, marks
// and wipes; key_file_scan.cpp: listing key_dir and indexing; key_file_read.cpp: reads, checks and
// check values; key_file_wipe.cpp: the wipe of one file.
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "qkd/kme/key_file_index.hpp"
#include "qkd/kme/key_files.hpp"

namespace qkd::kme::detail {

using TimePoint = std::chrono::steady_clock::time_point;

// Missing: not seen by the last (complete) scan (not yet, or gone). WrongSize: the indexed file,
// but its size changed. Replaced: another file (another inode, or not a regular file) under the
// name. Deleting/Deleted: used up and being wiped or wiped by us (or gone for good). Stuck: used
// up, but wiping it failed (tried again every wipe_retry).
enum class State { Present, Missing, WrongSize, Replaced, Deleting, Deleted, Stuck };

struct Entry {
    std::string name;
    std::uint64_t size = 0;   // as indexed
    std::uint64_t start = 0;  // offset of both halves, each in its own stream
    std::string chain;        // 16 hex digits of SHA-256 over the previous entry's chain, size and name
    State state = State::Missing;
    std::optional<KeyFileId> pin;        // the inode indexed (this process: when indexed, or first seen)
    std::optional<TimePoint> passed_at;  // since when both halves are below their marks
    TimePoint retry_at{};                // Stuck: the next wipe attempt
    int readers = 0;                     // reads in progress (a file being read is not wiped)
    bool whole = false;                  // used whole by one direction (KeyDirDirection), not split in halves
    Entry(std::string n, std::uint64_t sz, std::uint64_t st, State s, bool w) : name(std::move(n)), size(sz), start(st), state(s), whole(w) {}
    // The bytes the file gives each direction it feeds.
    std::uint64_t span() const { return whole ? size : size / 2; }
    std::uint64_t end() const { return start + span(); }
};

struct Listed {
    std::string name;
    std::uint64_t size;
    KeyFileId id;
    bool regular;
};

// errno as text.
std::string errno_text(int e);

// The identity (device, inode) of a stat result.
KeyFileId id_of(const struct stat& st);

// Opens `path` (relative to dir_fd) without following a symbolic link and without blocking (a
// FIFO or a device in its place must not hang the caller), and checks that it is a regular file.
// -1 otherwise, with `err` the errno of the failure (0: not a regular file).
int open_regular(int dir_fd, const std::string& path, int flags, struct stat& st, int& err);

// The state shared by both directions of one key-file link.
class FileLink {
public:
    FileLink(const KeyFileLinkOptions& o, TimePoint start);

    int out_half() const { return out_half_; }
    std::string origin() const;

    // The scans of request paths: at most every kKeyDirRescan, skipped while another scan runs.
    // They index new files and notice changed ones; they never wipe (that is maintain()'s job).
    void lazy(TimePoint now);

    // The housekeeping timer (about once a second): a scan, then the wipes of used files, outside
    // scan_mu_ so that requests needing a scan do not wait for them.
    void maintain(TimePoint now);

    double available(TimePoint now);

    // Before taken_ passes the mark recorded in the index, a new mark (taken_ + kKeyFileMarkStep)
    // is appended and fsynced: a state database lost or replaced later cannot make these bytes be
    // handed out again (resume_at).
    bool take(double bits, TimePoint now);

    bool in_outage() const;

    // KeyManager's stored mark; the index's mark wins when it is further (the state database was
    // replaced by an older one, or lost): material below it may have been handed out.
    void resume_at(std::uint64_t offset);
    std::uint64_t resume_position() const;

    void reserved_below(std::uint64_t end, TimePoint now);

    std::int64_t files_held() const;

    bool has(int half, std::uint64_t offset, std::uint64_t n);

    void read(int half, const std::string& label, std::uint64_t offset, std::span<std::uint8_t> out);

    // KeyMaterial::fingerprint: "files NAME+POS CHAIN .. NAME+POS CHAIN" for the first and the last
    // byte (names escaped as in the log). Equal on both KMEs only if both indexed the same files
    // (names and sizes) in the same order up to the last one: then every byte of the range is the
    // same file byte on both.
    std::string fingerprint(std::uint64_t offset, std::uint64_t n);

private:
    bool whole() const { return opt_.direction != KeyDirDirection::Both; }
    bool outgoing_only() const { return opt_.direction == KeyDirDirection::Outgoing; }
    // Whether the files feed the direction whose half is `half` (out_half_: local -> peer).
    bool feeds(int half) const { return !whole() || outgoing_only() == (half == out_half_); }
    // For log lines and errors: how the stream length is meant.
    std::string way() const;
    // Below this offset no byte of a direction the files feed can be asked for again (after the
    // retention time): the smaller of the outgoing cursor and the highest incoming reservation,
    // or the one of the direction a one-way link feeds. mu_ held.
    std::uint64_t used_mark() const;

    // Bytes [offset, offset + n) are beyond the indexed end, or in a file the last scan missed or
    // found changed: worth a look at key_dir now rather than at the next lazy scan.
    bool needs_scan(std::uint64_t offset, std::uint64_t n) const;

    // A scan a request needs now. A caller that finds a scan running waits for it and uses its
    // result; otherwise it scans, but at most once per forced_scan_interval (it waits for the
    // next slot), so a flood of such requests cannot keep key_dir listed without pause.
    void forced_scan();

    TimePoint last_now() const;
    // The entry holding stream byte `offset` (offset < end_), or entries_.size(). mu_ held.
    std::size_t find(std::uint64_t offset) const;
    // Sets entries_[i].chain from entries_[i - 1]'s. mu_ held (or the constructor).
    void chain(std::size_t i);
    static std::string state_text(const Entry& e);
    void warn_once(const std::string& name, const std::string& what);  // mu_ held

    enum class Listing { Complete, Partial, Failed };

    // The key files in key_dir (and other things under key-file names, with regular = false).
    // Partial: the listing stopped early (`why` says why); the caller must not conclude anything
    // from a name's absence.
    Listing list_dir(std::vector<Listed>& out, std::string& why);

    // Looks at key_dir: indexes new files (appended and fsynced before they count) and checks the
    // indexed ones. With `victims`, also picks the files used up for longer than the retention
    // time (marked Deleting; the caller wipes them). scan_mu_ held.
    bool scan_locked(TimePoint now, std::vector<std::size_t>* victims, std::string* error);

    // Wipes the files pick_victims chose (state Deleting). wipe_mu_ held, not scan_mu_.
    void wipe(const std::vector<std::size_t>& victims, TimePoint now);

    void check_indexed(Entry& e, const Listed& f);  // mu_ held

    // Files whose halves are both below the marks for longer than the retention time, and failed
    // wipes due for another try. Without `pick` only notes since when files are below the marks.
    // mu_ held.
    std::vector<std::size_t> pick_victims(TimePoint now, bool pick);

    const KeyFileLinkOptions opt_;
    KeyFileIndex index_;
    const int out_half_;
    const std::string name_;  // "KME_A<->KME_B", for the log
    std::mutex scan_mu_;      // one scan at a time (held across the index append); never held while wiping
    std::mutex wipe_mu_;      // one wiper at a time
    std::mutex take_mu_;      // one take at a time (held across a mark's append)
    std::atomic<std::uint64_t> scans_started_{0}, scans_done_{0};
    std::optional<std::chrono::steady_clock::time_point> last_forced_;  // real time; scan_mu_
    mutable std::mutex mu_;   // everything below
    std::vector<Entry> entries_;  // in name order = stream order
    std::size_t first_open_ = 0;  // entries before it are deleted for good
    std::uint64_t end_ = 0;       // indexed end of both streams
    std::uint64_t taken_ = 0;     // outgoing: allocated (KeyManager's cursor)
    std::uint64_t mark_ = 0;      // outgoing: the highest mark in the index (taken_ <= mark_ once taking)
    std::uint64_t resume_ = 0;    // outgoing: where resume_at left taken_
    std::uint64_t reserved_in_ = 0;  // incoming: highest reservation end from the peer
    TimePoint last_scan_{}, last_now_{};
    bool dir_failing_ = false;
    std::optional<TimePoint> partial_warned_at_, mark_error_at_;
    std::set<std::string> warned_;
};

}  // namespace qkd::kme::detail
