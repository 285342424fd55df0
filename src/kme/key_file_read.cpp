#include "key_file_link.hpp"

// FileLink (key_file_link.hpp): reads of key bytes, the checks before them, and check values.

#include "qkd/common/encoding.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <stdexcept>
#include <thread>

namespace qkd::kme::detail {

bool FileLink::has(int half, std::uint64_t offset, std::uint64_t n) {
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

void FileLink::read(int half, const std::string& label, std::uint64_t offset, std::span<std::uint8_t> out) {
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
std::string FileLink::fingerprint(std::uint64_t offset, std::uint64_t n) {
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

// Bytes [offset, offset + n) are beyond the indexed end, or in a file the last scan missed or
// found changed: worth a look at key_dir now rather than at the next lazy scan.
bool FileLink::needs_scan(std::uint64_t offset, std::uint64_t n) const {
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
void FileLink::forced_scan() {
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

}  // namespace qkd::kme::detail
