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
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <vector>

namespace qkd::kme {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

// Missing: not seen by the last scan (not yet, or gone). Deleting/Deleted: used up and wiped by
// us (or gone for good). Stuck: used up, but wiping it failed.
enum class State { Present, Missing, WrongSize, Deleting, Deleted, Stuck };

struct Entry {
    std::string name;
    std::uint64_t size = 0;   // as indexed
    std::uint64_t start = 0;  // offset of both halves, each in its own stream
    std::string chain;        // 16 hex digits of SHA-256 over the previous entry's chain, size and name
    State state = State::Missing;
    std::optional<TimePoint> passed_at;  // since when both halves are below their marks
    int readers = 0;                      // reads in progress (a file being read is not wiped)
    Entry(std::string n, std::uint64_t sz, std::uint64_t st, State s) : name(std::move(n)), size(sz), start(st), state(s) {}
    std::uint64_t half() const { return size / 2; }
    std::uint64_t end() const { return start + half(); }
};

struct Listed {
    std::string name;
    std::uint64_t size;
};

std::string errno_text(int e) { return std::strerror(e); }

// Overwrites the file with zeros, fsyncs and unlinks it. A file already gone counts as done.
bool wipe_and_unlink(const std::string& path, std::string& error) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return true;
        error = fmt::format("cannot open it for wiping: {}", errno_text(errno));
        return false;
    }
    static const std::uint8_t zeros[65536] = {};
    struct stat st {};
    bool ok = ::fstat(fd, &st) == 0;
    for (off_t pos = 0; ok && pos < st.st_size;) {
        const auto n = ::pwrite(fd, zeros, static_cast<std::size_t>(std::min<off_t>(sizeof zeros, st.st_size - pos)), pos);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ok = false;
        else pos += n;
    }
    ok = ok && ::fsync(fd) == 0;
    if (!ok) error = fmt::format("cannot overwrite it with zeros: {}", errno_text(errno));
    ::close(fd);
    if (!ok) return false;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        error = fmt::format("zeroed, but cannot delete it: {}", errno_text(errno));
        return false;
    }
    return true;
}

// The state shared by both directions of one key-file link.
class FileLink {
public:
    FileLink(const KeyFileLinkOptions& o, TimePoint start)
        : opt_(o), index_(o.index_file), out_half_(o.local_kme < o.peer_kme ? 0 : 1), name_(o.local_kme + "<->" + o.peer_kme) {
        for (const auto& f : index_.loaded()) {
            entries_.emplace_back(f.name, f.size, end_, State::Missing);
            chain(entries_.size() - 1);
            end_ += f.size / 2;
        }
        std::string error;
        if (!scan(start, false, &error)) throw std::runtime_error(error);
        last_scan_ = last_now_ = start;
        spdlog::info("{}: key files in {}: {} indexed before ({} left), {} bytes per direction; index {}", name_, opt_.key_dir,
                     index_.loaded().size(), files_held(), end_, opt_.index_file);
    }

    int out_half() const { return out_half_; }
    std::string origin() const { return "key files in " + opt_.key_dir; }

    void lazy(TimePoint now) {
        {
            std::lock_guard lk(mu_);
            last_now_ = std::max(last_now_, now);
            if (now - last_scan_ < kKeyDirRescan) return;
            last_scan_ = now;
        }
        std::unique_lock sl(scan_mu_, std::try_to_lock);  // a scan is running: this one is not needed
        if (sl.owns_lock()) scan_locked(now, true, nullptr);
    }

    double available(TimePoint now) {
        lazy(now);
        std::lock_guard lk(mu_);
        return end_ > taken_ ? static_cast<double>(end_ - taken_) * 8 : 0.0;
    }

    bool take(double bits, TimePoint now) {
        lazy(now);
        if (!(bits >= 0) || bits > 1e18) return false;
        const auto bytes = static_cast<std::uint64_t>(std::ceil(bits / 8));
        std::lock_guard lk(mu_);
        if (taken_ > end_ || end_ - taken_ < bytes) return false;
        taken_ += bytes;
        return true;
    }

    bool in_outage() const {
        std::lock_guard lk(mu_);
        return taken_ >= end_;
    }

    void resume_at(std::uint64_t offset) {
        std::lock_guard lk(mu_);
        taken_ = std::max(taken_, offset);
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
            if (entries_[i].state != State::Missing && entries_[i].state != State::Deleted) ++n;
        return n;
    }

    bool has(int half, std::uint64_t offset, std::uint64_t n) {
        (void)half;  // both halves of a file come and go together
        if (n == 0) return true;
        if (offset > std::numeric_limits<std::uint64_t>::max() - n) return false;
        if (needs_scan(offset, n)) scan(last_now(), false, nullptr);
        std::lock_guard lk(mu_);
        if (offset + n > end_) return false;
        for (std::size_t i = find(offset); i < entries_.size() && entries_[i].start < offset + n; ++i)
            if (entries_[i].half() > 0 && entries_[i].state != State::Present) return false;
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
        if (needs_scan(offset, n)) scan(last_now(), false, nullptr);
        struct Seg {
            std::size_t idx;
            std::string name;
            std::uint64_t pos, len, size;
        };
        std::vector<Seg> segs;
        std::string problem;
        {
            std::lock_guard lk(mu_);
            if (offset + n > end_) {
                problem = fmt::format("not (yet) in key_dir {} (its files give {} bytes per direction)", opt_.key_dir, end_);
            } else {
                std::uint64_t at = offset;
                for (std::size_t i = find(offset); i < entries_.size() && at < offset + n; ++i) {
                    const auto& e = entries_[i];
                    if (e.half() == 0) continue;
                    if (e.state != State::Present) {
                        problem = fmt::format("key file {}/{} {}", opt_.key_dir, e.name, state_text(e));
                        break;
                    }
                    const std::uint64_t len = std::min(e.end(), offset + n) - at;
                    segs.push_back({i, e.name, static_cast<std::uint64_t>(half) * e.half() + (at - e.start), len, e.size});
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
            const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0) fail(fmt::format("key file {}: {}", path, errno_text(errno)));
            struct stat st {};
            if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != s.size) {
                ::close(fd);
                fail(fmt::format("key file {} no longer has its indexed size of {} bytes", path, s.size));
            }
            // Straight into the caller's buffer: no copy of the key bytes anywhere else.
            for (std::uint64_t got = 0; got < s.len;) {
                const auto r = ::pread(fd, out.data() + done + got, s.len - got, static_cast<off_t>(s.pos + got));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) {
                    const int e = r < 0 ? errno : EIO;
                    ::close(fd);
                    fail(fmt::format("key file {}: read failed: {}", path, errno_text(e)));
                }
                got += static_cast<std::uint64_t>(r);
            }
            ::close(fd);
            done += s.len;
        }
    }

    // KeyMaterial::fingerprint: "files NAME+POS CHAIN .. NAME+POS CHAIN" for the first and the last
    // byte. Equal on both KMEs only if both indexed the same files (names and sizes) in the same
    // order up to the last one: then every byte of the range is the same file byte on both.
    std::string fingerprint(std::uint64_t offset, std::uint64_t n) {
        if (n == 0 || offset > std::numeric_limits<std::uint64_t>::max() - n) return "files (empty range)";
        if (needs_scan(offset, n)) scan(last_now(), false, nullptr);
        std::lock_guard lk(mu_);
        if (offset + n > end_) return fmt::format("files (bytes up to {} indexed)", end_);
        auto at = [&](std::uint64_t o) {
            const auto& e = entries_[find(o)];
            return fmt::format("{}+{} {}", e.name, o - e.start, e.chain);
        };
        return "files " + at(offset) + " .. " + at(offset + n - 1);
    }

private:
    // Bytes [offset, offset + n) are beyond the indexed end, or in a file the last scan missed or
    // found changed: worth a look at key_dir now rather than at the next lazy scan.
    bool needs_scan(std::uint64_t offset, std::uint64_t n) const {
        std::lock_guard lk(mu_);
        if (offset + n > end_) return true;
        for (std::size_t i = find(offset); i < entries_.size() && entries_[i].start < offset + n; ++i)
            if (entries_[i].half() > 0 && (entries_[i].state == State::Missing || entries_[i].state == State::WrongSize)) return true;
        return false;
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
            default: return "was used up and deleted";
        }
    }
    void warn_once(const std::string& name, const std::string& what) {  // mu_ held
        if (warned_.size() > 10000) warned_.clear();
        if (warned_.insert(name).second) spdlog::warn("{}: {}/{}: {}", name_, opt_.key_dir, name, what);
    }

    bool list_dir(std::vector<Listed>& out, std::string& error) {
        DIR* d = ::opendir(opt_.key_dir.c_str());
        if (!d) {
            error = fmt::format("{}: key_dir cannot be read: {}", opt_.key_dir, errno_text(errno));
            return false;
        }
        std::size_t seen = 0;
        while (const dirent* e = ::readdir(d)) {
            const std::string name = e->d_name;
            if (name == "." || name == "..") continue;
            if (++seen > kMaxKeyDirEntries) {
                std::lock_guard lk(mu_);
                warn_once("", fmt::format("more than {} entries; the rest are not looked at in this scan", kMaxKeyDirEntries));
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
            if (!S_ISREG(st.st_mode)) {
                std::lock_guard lk(mu_);
                warn_once(name, "not used: not a regular file");
                continue;
            }
            out.push_back({name, static_cast<std::uint64_t>(st.st_size)});
        }
        ::closedir(d);
        std::sort(out.begin(), out.end(), [](const Listed& a, const Listed& b) { return a.name < b.name; });
        return true;
    }

    bool scan(TimePoint now, bool lazy, std::string* error) {
        std::lock_guard sl(scan_mu_);
        return scan_locked(now, lazy, error);
    }

    // Looks at key_dir: indexes new files (appended and fsynced before they count), checks the
    // indexed ones, and (lazy scans) wipes files used up for longer than the retention time.
    bool scan_locked(TimePoint now, bool lazy, std::string* error) {
        std::vector<Listed> listing;
        std::string err;
        if (!list_dir(listing, err)) {
            if (error) *error = err;  // the caller reports it
            std::lock_guard lk(mu_);
            if (!dir_failing_ && !error) spdlog::error("{}: {}", name_, err);
            dir_failing_ = true;
            return false;
        }
        std::vector<IndexedFile> fresh;
        {
            std::lock_guard lk(mu_);
            if (dir_failing_) spdlog::info("{}: key_dir {} can be read again", name_, opt_.key_dir);
            dir_failing_ = false;
            std::vector<char> seen(entries_.size(), 0);
            for (const auto& f : listing) {
                auto it = std::lower_bound(entries_.begin(), entries_.end(), f.name, [](const Entry& e, const std::string& n) { return e.name < n; });
                if (it != entries_.end() && it->name == f.name) {
                    seen[static_cast<std::size_t>(it - entries_.begin())] = 1;
                    check_indexed(*it, f.size);
                } else if (!entries_.empty() && f.name < entries_.back().name) {
                    warn_once(f.name, fmt::format("not used: its name sorts before \"{}\", the last key file taken; key files must "
                                                  "arrive in name order", entries_.back().name));
                } else if (f.size == 0) {
                    warn_once(f.name, "empty, skipped");
                } else if (f.size > kMaxKeyFileBytes) {
                    warn_once(f.name, fmt::format("not used: {} bytes, more than the limit of {} bytes per key file", f.size, kMaxKeyFileBytes));
                } else {
                    fresh.push_back({f.name, f.size});
                }
            }
            for (std::size_t i = first_open_; i < entries_.size(); ++i) {
                auto& e = entries_[i];
                if (seen[i] || (e.state != State::Present && e.state != State::WrongSize)) continue;
                if (e.end() > std::min(taken_, reserved_in_) && e.half() > 0)
                    spdlog::warn("{}: key file {}/{} is gone before all of its key material was used", name_, opt_.key_dir, e.name);
                e.state = State::Missing;
            }
        }
        // Durable before any byte of these files can be handed out.
        if (!fresh.empty() && !index_.append(fresh, err)) {
            spdlog::error("{}: {}; {} new key files not taken yet", name_, err, fresh.size());
            fresh.clear();
        }
        std::vector<std::size_t> victims;
        {
            std::lock_guard lk(mu_);
            for (auto& f : fresh) {
                entries_.emplace_back(std::move(f.name), f.size, end_, State::Present);
                chain(entries_.size() - 1);
                end_ += f.size / 2;
            }
            if (!fresh.empty()) spdlog::debug("{}: {} key files taken, {} bytes per direction", name_, fresh.size(), end_);
            if (lazy) victims = pick_victims(now);
        }
        bool wiped = false;
        for (auto i : victims) {
            std::string why;
            const std::string path = opt_.key_dir + "/" + entries_name(i);
            const bool ok = wipe_and_unlink(path, why);
            if (!ok) spdlog::error("{}: used key file {}: {}; it stays in key_dir", name_, path, why);
            else spdlog::debug("{}: used key file {} zeroed and deleted", name_, path);
            wiped |= ok;
            std::lock_guard lk(mu_);
            entries_[i].state = ok ? State::Deleted : State::Stuck;
        }
        if (wiped) {
            if (int d = ::open(opt_.key_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
                ::fsync(d);
                ::close(d);
            }
        }
        return true;
    }

    std::string entries_name(std::size_t i) {
        std::lock_guard lk(mu_);
        return entries_[i].name;
    }

    void check_indexed(Entry& e, std::uint64_t size) {  // mu_ held
        switch (e.state) {
            case State::Present:
            case State::Missing:
            case State::WrongSize:
                if (size == e.size) {
                    e.state = State::Present;
                } else if (e.state != State::WrongSize) {
                    spdlog::error("{}: key file {}/{} has {} bytes but was taken with {}: its key material is not used (later files "
                                  "keep their offsets)", name_, opt_.key_dir, e.name, size, e.size);
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

    // Files whose halves are both below the marks for longer than the retention time. mu_ held.
    std::vector<std::size_t> pick_victims(TimePoint now) {
        std::vector<std::size_t> victims;
        const std::uint64_t mark = std::min(taken_, reserved_in_);
        for (std::size_t i = first_open_; i < entries_.size() && entries_[i].end() <= mark; ++i) {
            auto& e = entries_[i];
            if (e.state == State::Deleting || e.state == State::Deleted || e.state == State::Stuck) continue;
            if (!e.passed_at) e.passed_at = now;
            if (now - *e.passed_at < opt_.retention) continue;
            if (e.state == State::Missing) {
                e.state = State::Deleted;  // gone on its own; nothing to wipe
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
    std::mutex scan_mu_;      // one scan at a time (held across the index append)
    mutable std::mutex mu_;   // everything below
    std::vector<Entry> entries_;  // in name order = stream order
    std::size_t first_open_ = 0;  // entries before it are deleted for good
    std::uint64_t end_ = 0;       // indexed end of both streams
    std::uint64_t taken_ = 0;     // outgoing: allocated (KeyManager's cursor)
    std::uint64_t reserved_in_ = 0;  // incoming: highest reservation end from the peer
    TimePoint last_scan_{}, last_now_{};
    bool dir_failing_ = false;
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
    std::uint64_t mark_step() const override { return kKeyFileMarkStep; }
    void maintain(TimePoint now) override { link_->lazy(now); }
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

std::string key_file_index_path(const std::string& state_db, const std::string& peer_kme) {
    std::string id = peer_kme;
    for (char& ch : id)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '_';
    return state_db + ".keyfiles-" + id;
}

}  // namespace qkd::kme
