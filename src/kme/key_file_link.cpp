#include "key_file_link.hpp"

// FileLink (key_file_link.hpp): set-up, the outgoing budget and marks, and the wiping of used files.

#include "qkd/common/encoding.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace qkd::kme::detail {

FileLink::FileLink(const KeyFileLinkOptions& o, TimePoint start)
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

std::string FileLink::origin() const {
    if (!feeds(out_half_))
        return fmt::format("key files in {}; key_dir_direction = \"incoming\": all of their key material goes {}->{}", opt_.key_dir,
                           opt_.peer_kme, opt_.local_kme);
    return "key files in " + opt_.key_dir;
}

// The scans of request paths: at most every kKeyDirRescan, skipped while another scan runs.
// They index new files and notice changed ones; they never wipe (that is maintain()'s job).
void FileLink::lazy(TimePoint now) {
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
void FileLink::maintain(TimePoint now) {
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

double FileLink::available(TimePoint now) {
    if (!feeds(out_half_)) return 0.0;
    lazy(now);
    std::lock_guard lk(mu_);
    return end_ > taken_ ? static_cast<double>(end_ - taken_) * 8 : 0.0;
}

// Before taken_ passes the mark recorded in the index, a new mark (taken_ + kKeyFileMarkStep)
// is appended and fsynced: a state database lost or replaced later cannot make these bytes be
// handed out again (resume_at).
bool FileLink::take(double bits, TimePoint now) {
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

bool FileLink::in_outage() const {
    if (!feeds(out_half_)) return true;
    std::lock_guard lk(mu_);
    return taken_ >= end_;
}

// KeyManager's stored mark; the index's mark wins when it is further (the state database was
// replaced by an older one, or lost): material below it may have been handed out.
void FileLink::resume_at(std::uint64_t offset) {
    std::lock_guard lk(mu_);
    if (mark_ > offset)
        spdlog::warn("{}: state database high-water mark {} is behind the key-file index mark {} of {} (was the state database "
                     "replaced, or did the KME stop between the two writes?): material below {} is skipped",
                     name_, offset, mark_, opt_.index_file, mark_);
    taken_ = std::max({taken_, offset, mark_});
    resume_ = taken_;
}

std::uint64_t FileLink::resume_position() const {
    std::lock_guard lk(mu_);
    return resume_;
}

void FileLink::reserved_below(std::uint64_t end, TimePoint now) {
    {
        std::lock_guard lk(mu_);
        reserved_in_ = std::max(reserved_in_, end);
    }
    lazy(now);
}

std::int64_t FileLink::files_held() const {
    std::lock_guard lk(mu_);
    std::int64_t n = 0;
    for (std::size_t i = first_open_; i < entries_.size(); ++i)
        if (entries_[i].state != State::Missing && entries_[i].state != State::Deleted && entries_[i].state != State::Replaced) ++n;
    return n;
}

// For log lines and errors: how the stream length is meant.
std::string FileLink::way() const {
    if (!whole()) return "per direction";
    return fmt::format("for {}->{} only", outgoing_only() ? opt_.local_kme : opt_.peer_kme, outgoing_only() ? opt_.peer_kme : opt_.local_kme);
}

// Below this offset no byte of a direction the files feed can be asked for again (after the
// retention time): the smaller of the outgoing cursor and the highest incoming reservation,
// or the one of the direction a one-way link feeds. mu_ held.
std::uint64_t FileLink::used_mark() const {
    if (!whole()) return std::min(taken_, reserved_in_);
    return outgoing_only() ? taken_ : reserved_in_;
}

TimePoint FileLink::last_now() const {
    std::lock_guard lk(mu_);
    return last_now_;
}

// The entry holding stream byte `offset` (offset < end_), or entries_.size(). mu_ held.
std::size_t FileLink::find(std::uint64_t offset) const {
    auto it = std::upper_bound(entries_.begin(), entries_.end(), offset, [](std::uint64_t o, const Entry& e) { return o < e.start; });
    return it == entries_.begin() ? entries_.size() : static_cast<std::size_t>(it - entries_.begin() - 1);
}

// Sets entries_[i].chain from entries_[i - 1]'s. mu_ held (or the constructor).
void FileLink::chain(std::size_t i) {
    auto& e = entries_[i];
    std::string in = (i ? entries_[i - 1].chain : std::string()) + '\n' + std::to_string(e.size) + '\n' + e.name;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(in.data(), in.size(), md, &len, EVP_sha256(), nullptr) != 1 || len < 8)
        throw std::runtime_error("SHA-256 unavailable in OpenSSL");
    e.chain = hex_encode(std::span<const std::uint8_t>(md, 8));
}

std::string FileLink::state_text(const Entry& e) {
    switch (e.state) {
        case State::Missing: return "is gone from key_dir";
        case State::WrongSize: return fmt::format("no longer has its indexed size of {} bytes", e.size);
        case State::Replaced: return "was replaced: the name refers to another file than the one indexed; its key material is not used";
        case State::Present: return "has not been looked at yet";
        default: return "was used up and deleted";
    }
}

void FileLink::warn_once(const std::string& name, const std::string& what) {  // mu_ held
    if (warned_.size() > 10000) warned_.clear();
    if (warned_.insert(name).second) spdlog::warn("{}: {}/{}: {}", name_, opt_.key_dir, escaped_name(name, 64), what);
}

// Wipes the files pick_victims chose (state Deleting). wipe_mu_ held, not scan_mu_.
void FileLink::wipe(const std::vector<std::size_t>& victims, TimePoint now) {
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

// Files whose halves are both below the marks for longer than the retention time, and failed
// wipes due for another try. Without `pick` only notes since when files are below the marks.
// mu_ held.
std::vector<std::size_t> FileLink::pick_victims(TimePoint now, bool pick) {
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

}  // namespace qkd::kme::detail
