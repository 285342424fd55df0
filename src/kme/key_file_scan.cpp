#include "key_file_link.hpp"

// FileLink (key_file_link.hpp): listing key_dir and taking new files into the index.

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace qkd::kme::detail {

// The key files in key_dir (and other things under key-file names, with regular = false).
// Partial: the listing stopped early (`why` says why); the caller must not conclude anything
// from a name's absence.
FileLink::Listing FileLink::list_dir(std::vector<Listed>& out, std::string& why) {
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
bool FileLink::scan_locked(TimePoint now, std::vector<std::size_t>* victims, std::string* error) {
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

void FileLink::check_indexed(Entry& e, const Listed& f) {  // mu_ held
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

}  // namespace qkd::kme::detail
