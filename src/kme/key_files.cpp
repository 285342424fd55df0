#include "qkd/kme/key_files.hpp"

#include "qkd/common/encoding.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace qkd::kme {
namespace {

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

std::string errno_text(int e) { return std::strerror(e); }

KeyFileId id_of(const struct stat& st) { return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)}; }

// Opens `path` (relative to dir_fd) without following a symbolic link and without blocking (a
// FIFO or a device in its place must not hang the caller), and checks that it is a regular file.
// -1 otherwise, with `err` the errno of the failure (0: not a regular file).
int open_regular(int dir_fd, const std::string& path, int flags, struct stat& st, int& err) {
    err = 0;
    const int fd = ::openat(dir_fd, path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        err = errno;
        return -1;
    }
    if (::fstat(fd, &st) != 0) {
        err = errno;
        ::close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return -1;
    }
    // Regular files ignore O_NONBLOCK; cleared anyway, so nothing below depends on that.
    if (const int fl = ::fcntl(fd, F_GETFL); fl >= 0) (void)::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

}  // namespace

WipeResult wipe_key_file(const std::string& key_dir, const std::string& name, KeyFileId id, std::string& error) {
    const int dir = ::open(key_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (dir < 0) {
        error = fmt::format("cannot open key_dir to wipe it: {}", errno_text(errno));
        return WipeResult::Failed;
    }
    struct DirFd {
        int fd;
        ~DirFd() { ::close(fd); }
    } dir_guard{dir};
    // Look before opening: another file (a FIFO, a device) under the name is not even opened.
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return WipeResult::Gone;
        error = fmt::format("cannot look at it for wiping: {}", errno_text(errno));
        return WipeResult::Failed;
    }
    if (!S_ISREG(st.st_mode) || id_of(st) != id) return WipeResult::Replaced;
    int err = 0;
    const int fd = open_regular(dir, name, O_WRONLY, st, err);
    if (fd < 0) {
        if (err == ENOENT) return WipeResult::Gone;
        if (err == 0 || err == ELOOP || err == ENXIO) return WipeResult::Replaced;  // swapped meanwhile
        error = fmt::format("cannot open it for wiping: {}", errno_text(err));
        return WipeResult::Failed;
    }
    if (id_of(st) != id) {
        ::close(fd);
        return WipeResult::Replaced;
    }
    // Zero the pinned inode through this descriptor, whatever its name refers to by now.
    static const std::uint8_t zeros[65536] = {};
    bool ok = true;
    int e = 0;
    for (off_t pos = 0; ok && pos < st.st_size;) {
        const auto n = ::pwrite(fd, zeros, static_cast<std::size_t>(std::min<off_t>(sizeof zeros, st.st_size - pos)), pos);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ok = false, e = n < 0 ? errno : EIO;
        else pos += n;
    }
    if (ok && ::fsync(fd) != 0) ok = false, e = errno;
    ::close(fd);
    if (!ok) {
        error = fmt::format("cannot overwrite it with zeros: {}", errno_text(e));
        return WipeResult::Failed;
    }
    // Unlink the name only if it still refers to the zeroed inode. (Between this check and the
    // unlink another file could be renamed over it and be unlinked instead: accepted.)
    struct stat now {};
    if (::fstatat(dir, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return WipeResult::Wiped;
        error = fmt::format("zeroed, but cannot look at it before deleting it: {}", errno_text(errno));
        return WipeResult::Failed;
    }
    if (id_of(now) != id) return WipeResult::Wiped;  // zeroed; the name is another file's now
    if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
        error = fmt::format("zeroed, but cannot delete it: {}", errno_text(errno));
        return WipeResult::Failed;
    }
    ::fsync(dir);  // the deletion survives a power loss
    return WipeResult::Wiped;
}

namespace {

// The state shared by both directions of one key-file link.
class FileLink {
public:
    FileLink(const KeyFileLinkOptions& o, TimePoint start)
        : opt_(o), index_(o.index_file), out_half_(o.local_kme < o.peer_kme ? 0 : 1), name_(o.local_kme + "<->" + o.peer_kme) {
        if (std::string error; !index_.settle_direction(o.direction, error)) throw std::runtime_error(error);
        for (const auto& f : index_.loaded()) {
            entries_.emplace_back(f.name, f.size, end_, State::Missing, whole());
            chain(entries_.size() - 1);
            end_ += entries_.back().span();
        }
        // Until resume_at: nothing below the index's mark is taken again, whatever the caller does.
        mark_ = taken_ = resume_ = index_.mark();
        std::string error;
        {
            std::lock_guard sl(scan_mu_);
            if (!scan_locked(start, nullptr, &error)) throw std::runtime_error(error);
        }
        last_scan_ = last_now_ = start;
        spdlog::info("{}: key files in {}: {} indexed before ({} left), {} bytes {}; index {}", name_, opt_.key_dir, index_.loaded().size(),
                     files_held(), end_, way(), opt_.index_file);
    }

    int out_half() const { return out_half_; }
    std::string origin() const {
        if (!feeds(out_half_))
            return fmt::format("key files in {}; key_dir_direction = \"incoming\": all of their key material goes {}->{}", opt_.key_dir,
                               opt_.peer_kme, opt_.local_kme);
        return "key files in " + opt_.key_dir;
    }

    // The scans of request paths: at most every kKeyDirRescan, skipped while another scan runs.
    // They index new files and notice changed ones; they never wipe (that is maintain()'s job).
    void lazy(TimePoint now) {
        {
            std::lock_guard lk(mu_);
            last_now_ = std::max(last_now_, now);
            if (now - last_scan_ < kKeyDirRescan) return;
            last_scan_ = now;
        }
        std::unique_lock sl(scan_mu_, std::try_to_lock);  // a scan is running: this one is not needed
        if (sl.owns_lock()) scan_locked(now, nullptr, nullptr);
    }

    // The housekeeping timer (about once a second): a scan, then the wipes of used files, outside
    // scan_mu_ so that requests needing a scan do not wait for them.
    void maintain(TimePoint now) {
        {
            std::lock_guard lk(mu_);
            last_now_ = std::max(last_now_, now);
            last_scan_ = std::max(last_scan_, now);
        }
        std::vector<std::size_t> victims;
        {
            std::lock_guard sl(scan_mu_);
            scan_locked(now, &victims, nullptr);
        }
        std::lock_guard wl(wipe_mu_);
        wipe(victims, now);
    }

    double available(TimePoint now) {
        if (!feeds(out_half_)) return 0.0;
        lazy(now);
        std::lock_guard lk(mu_);
        return end_ > taken_ ? static_cast<double>(end_ - taken_) * 8 : 0.0;
    }

    // Before taken_ passes the mark recorded in the index, a new mark (taken_ + kKeyFileMarkStep)
    // is appended and fsynced: a state database lost or replaced later cannot make these bytes be
    // handed out again (resume_at).
    bool take(double bits, TimePoint now) {
        if (!feeds(out_half_)) return false;
        lazy(now);
        if (!(bits >= 0) || bits > 1e18) return false;
        const auto bytes = static_cast<std::uint64_t>(std::ceil(bits / 8));
        std::lock_guard tl(take_mu_);  // takes one at a time: taken_ changes only here (and in resume_at)
        std::uint64_t new_mark = 0;
        {
            std::lock_guard lk(mu_);
            if (taken_ > end_ || end_ - taken_ < bytes) return false;
            if (taken_ + bytes <= mark_) {
                taken_ += bytes;
                return true;
            }
            new_mark = taken_ + bytes + kKeyFileMarkStep;
        }
        std::string error;
        if (!index_.append_mark(new_mark, error)) {  // fsync outside mu_: reads and scans go on
            std::lock_guard lk(mu_);
            if (!mark_error_at_ || now - *mark_error_at_ >= std::chrono::seconds(10)) {
                spdlog::error("{}: no key material is handed out on {}->{}: its high-water mark cannot be recorded: {}", name_, opt_.local_kme,
                              opt_.peer_kme, error);
                mark_error_at_ = now;
            }
            return false;
        }
        std::lock_guard lk(mu_);  // end_ only grows and taken_ is ours: still available
        mark_ = std::max(mark_, new_mark);
        taken_ += bytes;
        return true;
    }

    bool in_outage() const {
        if (!feeds(out_half_)) return true;
        std::lock_guard lk(mu_);
        return taken_ >= end_;
    }

    // KeyManager's stored mark; the index's mark wins when it is further (the state database was
    // replaced by an older one, or lost): material below it may have been handed out.
    void resume_at(std::uint64_t offset) {
        std::lock_guard lk(mu_);
        if (mark_ > offset)
            spdlog::warn("{}: state database high-water mark {} is behind the key-file index mark {} of {} (was the state database "
                         "replaced, or did the KME stop between the two writes?): material below {} is skipped",
                         name_, offset, mark_, opt_.index_file, mark_);
        taken_ = std::max({taken_, offset, mark_});
        resume_ = taken_;
    }
    std::uint64_t resume_position() const {
        std::lock_guard lk(mu_);
        return resume_;
    }

    void reserved_below(std::uint64_t end, TimePoint now) {
        {
            std::lock_guard lk(mu_);
            reserved_in_ = std::max(reserved_in_, end);
        }
        lazy(now);
    }

    std::int64_t files_held() const {
        std::lock_guard lk(mu_);
        std::int64_t n = 0;
        for (std::size_t i = first_open_; i < entries_.size(); ++i)
            if (entries_[i].state != State::Missing && entries_[i].state != State::Deleted && entries_[i].state != State::Replaced) ++n;
        return n;
    }

    bool has(int half, std::uint64_t offset, std::uint64_t n) {
        if (!feeds(half)) return false;  // (both halves of a file come and go together)
        if (n == 0) return true;
        if (offset > std::numeric_limits<std::uint64_t>::max() - n) return false;
        if (needs_scan(offset, n)) forced_scan();
        std::lock_guard lk(mu_);
        if (offset + n > end_) return false;
        for (std::size_t i = find(offset); i < entries_.size() && entries_[i].start < offset + n; ++i)
            if (entries_[i].span() > 0 && entries_[i].state != State::Present) return false;
        return true;
    }

    void read(int half, const std::string& label, std::uint64_t offset, std::span<std::uint8_t> out) {
        if (out.empty()) return;
        const std::uint64_t n = out.size();
        auto fail = [&](const std::string& why) {
            secure_zero(out.data(), out.size());
            throw std::runtime_error(fmt::format("{}: cannot read key material at bytes {}..{}: {}", label, offset, offset + n, why));
        };
        if (offset > std::numeric_limits<std::uint64_t>::max() - n) fail("offset out of range");
        if (!feeds(half))
            fail(fmt::format("no key material goes this way: key_dir_direction = \"{}\" on {} gives all of it to the other direction",
                             key_dir_direction_name(opt_.direction), opt_.local_kme));
        if (needs_scan(offset, n)) forced_scan();
        struct Seg {
            std::size_t idx;
            std::string name;
            std::uint64_t pos, len, size;
            KeyFileId pin;
        };
        std::vector<Seg> segs;
        std::string problem;
        {
            std::lock_guard lk(mu_);
            if (offset + n > end_) {
                problem = fmt::format("not (yet) in key_dir {} (its files give {} bytes {})", opt_.key_dir, end_, way());
            } else {
                std::uint64_t at = offset;
                for (std::size_t i = find(offset); i < entries_.size() && at < offset + n; ++i) {
                    const auto& e = entries_[i];
                    if (e.span() == 0) continue;
                    if (e.state != State::Present || !e.pin) {
                        problem = fmt::format("key file {}/{} {}", opt_.key_dir, escaped_name(e.name), state_text(e));
                        break;
                    }
                    const std::uint64_t len = std::min(e.end(), offset + n) - at;
                    const std::uint64_t base = e.whole ? 0 : static_cast<std::uint64_t>(half) * e.span();
                    segs.push_back({i, e.name, base + (at - e.start), len, e.size, *e.pin});
                    at += len;
                }
            }
            if (problem.empty())
                for (const auto& s : segs) ++entries_[s.idx].readers;
        }
        if (!problem.empty()) fail(problem);
        struct Release {  // the files may be wiped again once these reads are over
            FileLink* link;
            const std::vector<Seg>& segs;
            ~Release() {
                std::lock_guard lk(link->mu_);
                for (const auto& s : segs) --link->entries_[s.idx].readers;
            }
        } release{this, segs};
        std::size_t done = 0;
        for (const auto& s : segs) {
            const std::string path = opt_.key_dir + "/" + s.name;
            const std::string shown = opt_.key_dir + "/" + escaped_name(s.name);
            struct stat st {};
            int err = 0;
            const int fd = open_regular(AT_FDCWD, path, O_RDONLY, st, err);
            if (fd < 0)
                fail(err ? fmt::format("key file {}: {}", shown, errno_text(err))
                         : fmt::format("key file {} was replaced by something that is not a regular file (a FIFO, a device, a folder); "
                                       "expected the regular file indexed under that name",
                                       shown));
            if (id_of(st) != s.pin) {
                ::close(fd);
                fail(fmt::format("key file {} was replaced: the name refers to another file than the one indexed (another inode); its "
                                 "key material is not used",
                                 shown));
            }
            if (static_cast<std::uint64_t>(st.st_size) != s.size) {
                ::close(fd);
                fail(fmt::format("key file {} no longer has its indexed size of {} bytes", shown, s.size));
            }
            // Straight into the caller's buffer: no copy of the key bytes anywhere else.
            for (std::uint64_t got = 0; got < s.len;) {
                const auto r = ::pread(fd, out.data() + done + got, s.len - got, static_cast<off_t>(s.pos + got));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) {
                    const int e = r < 0 ? errno : EIO;
                    ::close(fd);
                    fail(fmt::format("key file {}: read failed: {}", shown, errno_text(e)));
                }
                got += static_cast<std::uint64_t>(r);
            }
            ::close(fd);
            done += s.len;
        }
    }

    // KeyMaterial::fingerprint: "files NAME+POS CHAIN .. NAME+POS CHAIN" for the first and the last
    // byte (names escaped as in the log). Equal on both KMEs only if both indexed the same files
    // (names and sizes) in the same order up to the last one: then every byte of the range is the
    // same file byte on both.
    std::string fingerprint(std::uint64_t offset, std::uint64_t n) {
        if (n == 0 || offset > std::numeric_limits<std::uint64_t>::max() - n) return "files (empty range)";
        if (needs_scan(offset, n)) forced_scan();
        std::lock_guard lk(mu_);
        if (offset + n > end_) return fmt::format("files (bytes up to {} indexed)", end_);
        auto at = [&](std::uint64_t o) {
            const auto& e = entries_[find(o)];
            return fmt::format("{}+{} {}", escaped_name(e.name), o - e.start, e.chain);
        };
        // A link whose files go one way says so: the other end, splitting them, would name the same
        // positions of other bytes.
        const std::string kind = whole() ? fmt::format("files one-way {}->{} ", outgoing_only() ? opt_.local_kme : opt_.peer_kme,
                                                       outgoing_only() ? opt_.peer_kme : opt_.local_kme)
                                         : std::string("files ");
        return kind + at(offset) + " .. " + at(offset + n - 1);
    }

private:
    bool whole() const { return opt_.direction != KeyDirDirection::Both; }
    bool outgoing_only() const { return opt_.direction == KeyDirDirection::Outgoing; }
    // Whether the files feed the direction whose half is `half` (out_half_: local -> peer).
    bool feeds(int half) const { return !whole() || outgoing_only() == (half == out_half_); }
    // For log lines and errors: how the stream length is meant.
    std::string way() const {
        if (!whole()) return "per direction";
        return fmt::format("for {}->{} only", outgoing_only() ? opt_.local_kme : opt_.peer_kme, outgoing_only() ? opt_.peer_kme : opt_.local_kme);
    }
    // Below this offset no byte of a direction the files feed can be asked for again (after the
    // retention time): the smaller of the outgoing cursor and the highest incoming reservation,
    // or the one of the direction a one-way link feeds. mu_ held.
    std::uint64_t used_mark() const {
        if (!whole()) return std::min(taken_, reserved_in_);
        return outgoing_only() ? taken_ : reserved_in_;
    }

    // Bytes [offset, offset + n) are beyond the indexed end, or in a file the last scan missed or
    // found changed: worth a look at key_dir now rather than at the next lazy scan.
    bool needs_scan(std::uint64_t offset, std::uint64_t n) const {
        std::lock_guard lk(mu_);
        if (offset + n > end_) return true;
        for (std::size_t i = find(offset); i < entries_.size() && entries_[i].start < offset + n; ++i) {
            const State s = entries_[i].state;
            if (entries_[i].span() > 0 && (s == State::Missing || s == State::WrongSize || s == State::Replaced)) return true;
        }
        return false;
    }

    // A scan a request needs now. A caller that finds a scan running waits for it and uses its
    // result; otherwise it scans, but at most once per forced_scan_interval (it waits for the
    // next slot), so a flood of such requests cannot keep key_dir listed without pause.
    void forced_scan() {
        const std::uint64_t started = scans_started_.load(), done = scans_done_.load();
        std::unique_lock sl(scan_mu_);
        if (started != done || scans_started_.load() != started) return;  // a scan ran (or finished) meanwhile
        const auto real = std::chrono::steady_clock::now();
        if (last_forced_ && real < *last_forced_ + opt_.forced_scan_interval) {
            const auto slot = *last_forced_ + opt_.forced_scan_interval;
            sl.unlock();
            std::this_thread::sleep_until(slot);
            sl.lock();
            if (scans_started_.load() != started) return;
        }
        last_forced_ = std::chrono::steady_clock::now();
        scan_locked(last_now(), nullptr, nullptr);
    }

    TimePoint last_now() const {
        std::lock_guard lk(mu_);
        return last_now_;
    }
    // The entry holding stream byte `offset` (offset < end_), or entries_.size(). mu_ held.
    std::size_t find(std::uint64_t offset) const {
        auto it = std::upper_bound(entries_.begin(), entries_.end(), offset, [](std::uint64_t o, const Entry& e) { return o < e.start; });
        return it == entries_.begin() ? entries_.size() : static_cast<std::size_t>(it - entries_.begin() - 1);
    }
    // Sets entries_[i].chain from entries_[i - 1]'s. mu_ held (or the constructor).
    void chain(std::size_t i) {
        auto& e = entries_[i];
        std::string in = (i ? entries_[i - 1].chain : std::string()) + '\n' + std::to_string(e.size) + '\n' + e.name;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (EVP_Digest(in.data(), in.size(), md, &len, EVP_sha256(), nullptr) != 1 || len < 8)
            throw std::runtime_error("SHA-256 unavailable in OpenSSL");
        e.chain = hex_encode(std::span<const std::uint8_t>(md, 8));
    }
    static std::string state_text(const Entry& e) {
        switch (e.state) {
            case State::Missing: return "is gone from key_dir";
            case State::WrongSize: return fmt::format("no longer has its indexed size of {} bytes", e.size);
            case State::Replaced: return "was replaced: the name refers to another file than the one indexed; its key material is not used";
            case State::Present: return "has not been looked at yet";
            default: return "was used up and deleted";
        }
    }
    void warn_once(const std::string& name, const std::string& what) {  // mu_ held
        if (warned_.size() > 10000) warned_.clear();
        if (warned_.insert(name).second) spdlog::warn("{}: {}/{}: {}", name_, opt_.key_dir, escaped_name(name, 64), what);
    }

    enum class Listing { Complete, Partial, Failed };

    // The key files in key_dir (and other things under key-file names, with regular = false).
    // Partial: the listing stopped early (`why` says why); the caller must not conclude anything
    // from a name's absence.
    Listing list_dir(std::vector<Listed>& out, std::string& why) {
        DIR* d = ::opendir(opt_.key_dir.c_str());
        if (!d) {
            why = fmt::format("{}: key_dir cannot be read: {}", opt_.key_dir, errno_text(errno));
            return Listing::Failed;
        }
        std::size_t seen = 0;
        Listing result = Listing::Complete;
        for (;;) {
            errno = 0;
            const dirent* e = ::readdir(d);
            if (!e) {
                if (errno != 0) {
                    why = fmt::format("listing key_dir failed after {} entries: {}; expected a folder that can be listed (check the file "
                                      "system and the KME's permissions)",
                                      seen, errno_text(errno));
                    result = Listing::Partial;
                }
                break;
            }
            const std::string name = e->d_name;
            if (name == "." || name == "..") continue;
            if (++seen > opt_.max_dir_entries) {  // junk counts too: it costs the same to list
                why = fmt::format("key_dir holds more than {} entries; remove files that are not key files (and used ones the KME "
                                  "could not delete)",
                                  opt_.max_dir_entries);
                result = Listing::Partial;
                break;
            }
            if (!is_key_file_name(name)) {
                if (name.front() != '.' && !name.ends_with(".tmp") && !name.ends_with(".part")) {
                    std::lock_guard lk(mu_);
                    warn_once(name.substr(0, 64), "not used: a key file name has at most 255 bytes and no control characters");
                }
                continue;  // hidden or still being written
            }
            struct stat st {};
            if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
            out.push_back({name, static_cast<std::uint64_t>(st.st_size), id_of(st), S_ISREG(st.st_mode)});
        }
        ::closedir(d);
        std::sort(out.begin(), out.end(), [](const Listed& a, const Listed& b) { return a.name < b.name; });
        return result;
    }

    // Looks at key_dir: indexes new files (appended and fsynced before they count) and checks the
    // indexed ones. With `victims`, also picks the files used up for longer than the retention
    // time (marked Deleting; the caller wipes them). scan_mu_ held.
    bool scan_locked(TimePoint now, std::vector<std::size_t>* victims, std::string* error) {
        ++scans_started_;
        struct Done {
            std::atomic<std::uint64_t>& n;
            ~Done() { ++n; }
        } done{scans_done_};
        std::vector<Listed> listing;
        std::string why;
        const Listing result = list_dir(listing, why);
        if (result == Listing::Failed) {
            if (error) *error = why;  // the caller reports it
            std::lock_guard lk(mu_);
            if (!dir_failing_ && !error) spdlog::error("{}: {}", name_, why);
            dir_failing_ = true;
            return false;
        }
        const bool complete = result == Listing::Complete;
        std::vector<Listed> fresh;
        {
            std::lock_guard lk(mu_);
            if (dir_failing_) spdlog::info("{}: key_dir {} can be read again", name_, opt_.key_dir);
            dir_failing_ = false;
            if (!complete && (!partial_warned_at_ || now - *partial_warned_at_ >= std::chrono::seconds(60))) {
                spdlog::warn("{}: {}; until then no new key file is taken and none is taken for gone", name_, why);
                partial_warned_at_ = now;
            }
            std::vector<char> seen(entries_.size(), 0);
            for (auto& f : listing) {
                auto it = std::lower_bound(entries_.begin(), entries_.end(), f.name, [](const Entry& e, const std::string& n) { return e.name < n; });
                if (it != entries_.end() && it->name == f.name) {
                    seen[static_cast<std::size_t>(it - entries_.begin())] = 1;
                    check_indexed(*it, f);
                } else if (!complete) {
                    // An incomplete listing may lack an earlier name: taking this one could skip it.
                } else if (!f.regular) {
                    warn_once(f.name, "not used: not a regular file");
                } else if (!entries_.empty() && f.name < entries_.back().name) {
                    warn_once(f.name, fmt::format("not used: its name sorts before \"{}\", the last key file taken; key files must "
                                                  "arrive in name order", escaped_name(entries_.back().name)));
                } else if (f.size == 0) {
                    warn_once(f.name, "empty, skipped");
                } else if (f.size > kMaxKeyFileBytes) {
                    warn_once(f.name, fmt::format("not used: {} bytes, more than the limit of {} bytes per key file", f.size, kMaxKeyFileBytes));
                } else {
                    fresh.push_back(std::move(f));
                }
            }
            for (std::size_t i = first_open_; complete && i < entries_.size(); ++i) {
                auto& e = entries_[i];
                if (seen[i] || (e.state != State::Present && e.state != State::WrongSize && e.state != State::Replaced)) continue;
                if (e.end() > used_mark() && e.span() > 0)
                    spdlog::warn("{}: key file {}/{} is gone before all of its key material was used", name_, opt_.key_dir, escaped_name(e.name));
                e.state = State::Missing;
            }
        }
        // Durable before any byte of these files can be handed out.
        std::string err;
        if (!fresh.empty()) {
            std::vector<IndexedFile> files;
            for (const auto& f : fresh) files.push_back({f.name, f.size});
            if (!index_.append(files, err)) {
                spdlog::error("{}: {}; {} new key files not taken yet", name_, err, fresh.size());
                fresh.clear();
            }
        }
        std::lock_guard lk(mu_);
        for (auto& f : fresh) {
            entries_.emplace_back(std::move(f.name), f.size, end_, State::Present, whole());
            entries_.back().pin = f.id;  // the inode listed is the one indexed
            chain(entries_.size() - 1);
            end_ += entries_.back().span();
        }
        if (!fresh.empty()) spdlog::debug("{}: {} key files taken, {} bytes {}", name_, fresh.size(), end_, way());
        // Every scan notes since when files are used up (the retention time counts from there); only
        // maintain()'s picks the ones to wipe.
        auto picked = pick_victims(now, victims != nullptr);
        if (victims) *victims = std::move(picked);
        return true;
    }

    // Wipes the files pick_victims chose (state Deleting). wipe_mu_ held, not scan_mu_.
    void wipe(const std::vector<std::size_t>& victims, TimePoint now) {
        for (auto i : victims) {
            std::string name;
            KeyFileId pin;
            {
                std::lock_guard lk(mu_);
                name = entries_[i].name;
                pin = entries_[i].pin.value_or(KeyFileId{});
            }
            const std::string shown = opt_.key_dir + "/" + escaped_name(name);
            std::string why;
            const WipeResult r = wipe_key_file(opt_.key_dir, name, pin, why);
            switch (r) {
                case WipeResult::Wiped: spdlog::debug("{}: used key file {} zeroed and deleted", name_, shown); break;
                case WipeResult::Gone: spdlog::debug("{}: used key file {} is gone already", name_, shown); break;
                case WipeResult::Replaced:
                    spdlog::warn("{}: used key file {} was replaced by another file under its name; that file is not the one indexed and is "
                                 "left in key_dir",
                                 name_, shown);
                    break;
                case WipeResult::Failed:
                    spdlog::error("{}: used key file {}: {}; it stays in key_dir (tried again in {} s)", name_, shown, why,
                                  std::chrono::duration_cast<std::chrono::seconds>(opt_.wipe_retry).count());
                    break;
            }
            std::lock_guard lk(mu_);
            auto& e = entries_[i];
            e.state = r == WipeResult::Failed ? State::Stuck : State::Deleted;
            e.retry_at = now + opt_.wipe_retry;
        }
        std::lock_guard lk(mu_);
        while (first_open_ < entries_.size() && entries_[first_open_].state == State::Deleted) ++first_open_;
    }

    void check_indexed(Entry& e, const Listed& f) {  // mu_ held
        switch (e.state) {
            case State::Present:
            case State::Missing:
            case State::WrongSize:
            case State::Replaced:
                if (!f.regular || (e.pin && *e.pin != f.id)) {
                    if (e.state != State::Replaced)
                        spdlog::error("{}: key file {}/{} was replaced: the name refers to another file than the one taken ({}); its "
                                      "key material is not used and the file is not deleted (later files keep their offsets)",
                                      name_, opt_.key_dir, escaped_name(e.name), f.regular ? "another inode" : "not a regular file");
                    e.state = State::Replaced;
                } else if (f.size == e.size) {
                    if (!e.pin) e.pin = f.id;  // after a restart: the file as first seen by this process
                    e.state = State::Present;
                } else if (e.state != State::WrongSize) {
                    spdlog::error("{}: key file {}/{} has {} bytes but was taken with {}: its key material is not used (later files "
                                  "keep their offsets)", name_, opt_.key_dir, escaped_name(e.name), f.size, e.size);
                    e.state = State::WrongSize;
                }
                break;
            case State::Deleted:
                warn_once(e.name, "was used up and deleted before; a file of the same name is not used again");
                break;
            default:
                break;
        }
    }

    // Files whose halves are both below the marks for longer than the retention time, and failed
    // wipes due for another try. Without `pick` only notes since when files are below the marks.
    // mu_ held.
    std::vector<std::size_t> pick_victims(TimePoint now, bool pick) {
        std::vector<std::size_t> victims;
        const std::uint64_t mark = used_mark();
        for (std::size_t i = first_open_; i < entries_.size() && entries_[i].end() <= mark; ++i) {
            auto& e = entries_[i];
            if (!pick) {
                if (!e.passed_at) e.passed_at = now;
                continue;
            }
            if (e.state == State::Deleting || e.state == State::Deleted) continue;
            if (e.state == State::Stuck) {
                if (now >= e.retry_at && e.readers == 0 && victims.size() < kMaxDeletionsPerScan) {
                    e.state = State::Deleting;
                    victims.push_back(i);
                }
                continue;
            }
            if (!e.passed_at) e.passed_at = now;
            if (now - *e.passed_at < opt_.retention) continue;
            if (e.state == State::Missing) {
                e.state = State::Deleted;  // gone on its own; nothing to wipe
            } else if (e.state == State::Replaced) {
                // Not ours (a device re-delivering the name, someone's replacement): never wiped.
                spdlog::warn("{}: key file {}/{} was replaced by another file under its name; that file is left in key_dir", name_,
                             opt_.key_dir, escaped_name(e.name));
                e.state = State::Deleted;
            } else if (e.readers == 0 && victims.size() < kMaxDeletionsPerScan) {
                e.state = State::Deleting;
                victims.push_back(i);
            }
        }
        while (first_open_ < entries_.size() && entries_[first_open_].state == State::Deleted) ++first_open_;
        return victims;
    }

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

class OutgoingFiles final : public KeySource {
public:
    OutgoingFiles(std::shared_ptr<FileLink> l, std::string label) : link_(std::move(l)), label_(std::move(label)) {}
    const std::string& label() const override { return label_; }
    void read(std::uint64_t offset, std::span<std::uint8_t> out) const override { link_->read(link_->out_half(), label_, offset, out); }
    using KeyMaterial::read;
    bool has(std::uint64_t offset, std::size_t n) const override { return link_->has(link_->out_half(), offset, n); }
    std::string fingerprint(std::uint64_t offset, std::size_t n) const override { return link_->fingerprint(offset, n); }
    double available(TimePoint now) override { return link_->available(now); }
    bool take(double bits, TimePoint now) override { return link_->take(bits, now); }
    // Down while nothing is left: a silent device shows as an outage once its last file is used.
    bool in_outage(TimePoint) const override { return link_->in_outage(); }
    void resume_at(std::uint64_t offset) override { link_->resume_at(offset); }
    // max(resume_at's offset, the index's mark): where KeyManager must start allocating.
    std::uint64_t resume_position() const { return link_->resume_position(); }
    std::uint64_t mark_step() const override { return kKeyFileMarkStep; }
    void maintain(TimePoint now) override { link_->maintain(now); }
    std::string origin() const override { return link_->origin(); }
    std::int64_t key_files() const override { return link_->files_held(); }

private:
    std::shared_ptr<FileLink> link_;
    std::string label_;
};

class IncomingFiles final : public KeyMaterial {
public:
    IncomingFiles(std::shared_ptr<FileLink> l, std::string label) : link_(std::move(l)), label_(std::move(label)) {}
    const std::string& label() const override { return label_; }
    void read(std::uint64_t offset, std::span<std::uint8_t> out) const override { link_->read(1 - link_->out_half(), label_, offset, out); }
    using KeyMaterial::read;
    bool has(std::uint64_t offset, std::size_t n) const override { return link_->has(1 - link_->out_half(), offset, n); }
    std::string fingerprint(std::uint64_t offset, std::size_t n) const override { return link_->fingerprint(offset, n); }
    void reserved_below(std::uint64_t end, std::chrono::steady_clock::time_point now) override { link_->reserved_below(end, now); }

private:
    std::shared_ptr<FileLink> link_;
    std::string label_;
};

}  // namespace

KeyFileLink make_key_file_link(const KeyFileLinkOptions& options, std::chrono::steady_clock::time_point start) {
    if (options.local_kme == options.peer_kme) throw std::invalid_argument("a key-file link joins two different KMEs");
    auto link = std::make_shared<FileLink>(options, start);
    return KeyFileLink{std::make_unique<OutgoingFiles>(link, options.local_kme + "->" + options.peer_kme),
                       std::make_unique<IncomingFiles>(link, options.peer_kme + "->" + options.local_kme)};
}

std::uint64_t resume_position(const KeySource& source) {
    const auto* files = dynamic_cast<const OutgoingFiles*>(&source);
    return files ? files->resume_position() : 0;
}

std::string key_file_index_path(const std::string& state_db, const std::string& peer_kme) {
    std::string id = peer_kme;
    for (char& ch : id)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '_';
    return state_db + ".keyfiles-" + id;
}

}  // namespace qkd::kme
