#include "qkd/kme/key_file_index.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace qkd::kme {
namespace {

constexpr std::string_view kHeader = "qkd-kme key-file index v1";
// "<size> <name>": 8 digits (64 MiB), a space, a name.
constexpr std::size_t kMaxLine = 8 + 1 + kMaxKeyFileName;

std::string errno_text(int e) { return std::strerror(e); }

// A line as it can be quoted in a message: cut short, escaped.
std::string shown(std::string_view line) { return "\"" + escaped_name(line, 80) + "\""; }

// The length of the valid UTF-8 sequence at the start of `s` (at least one byte), or 0.
std::size_t utf8_sequence(std::string_view s) {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
    else return 0;
    if (s.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i) {
        if ((b(i) & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (b(i) & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace

std::string escaped_name(std::string_view name, std::size_t max) {
    std::string out;
    std::size_t i = 0;
    while (i < name.size() && i < max) {
        const std::size_t n = utf8_sequence(name.substr(i));
        const auto c = static_cast<unsigned char>(name[i]);
        if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7f || c == '\\'))) {
            out += c == '\\' ? std::string("\\\\") : fmt::format("\\x{:02x}", c);
            ++i;
            continue;
        }
        if (n == 2 && c == 0xc2 && static_cast<unsigned char>(name[i + 1]) < 0xa0) {  // C1 controls (U+0080..U+009F)
            out += fmt::format("\\u{:04x}", static_cast<unsigned char>(name[i + 1]));
            i += 2;
            continue;
        }
        out.append(name.substr(i, n));
        i += n;
    }
    if (i < name.size()) out += "...";
    return out;
}

std::string_view key_dir_direction_name(KeyDirDirection d) {
    switch (d) {
        case KeyDirDirection::Outgoing: return "outgoing";
        case KeyDirDirection::Incoming: return "incoming";
        default: return "both";
    }
}

bool is_key_file_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxKeyFileName || name.front() == '.') return false;
    if (name.ends_with(".tmp") || name.ends_with(".part")) return false;
    for (char ch : name)
        if (ch == '/' || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) return false;
    return true;
}

KeyFileIndex::KeyFileIndex(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error(fmt::format("{}: cannot open the key-file index: {}", path_, errno_text(errno)));
    // One writer: a second KME on the same index would append lines of its own in between.
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        ::close(fd_);
        fd_ = -1;
        if (e == EWOULDBLOCK)
            throw std::runtime_error(fmt::format("{}: the key-file index is locked: another qkd-kme uses it (expected one KME per "
                                                 "state_db; stop the other one or give this one a state_db of its own)", path_));
        throw std::runtime_error(fmt::format("{}: cannot lock the key-file index: {}", path_, errno_text(e)));
    }
    // Read line by line through a fixed buffer: no line may be longer than kMaxLine.
    std::string line;
    std::uint64_t pos = 0, line_no = 0, nul_at = 0;
    bool header = false, nuls = false;  // nuls: a NUL byte was seen; only NUL bytes may follow
    char buf[65536];
    auto fail = [&](const std::string& what) {
        ::close(fd_);
        fd_ = -1;
        throw std::runtime_error(fmt::format("{}:{}: {}", path_, line_no, what));
    };
    auto take_line = [&] {
        ++line_no;
        if (!header) {
            if (line != kHeader) fail(fmt::format("expected the header line \"{}\", got {}", kHeader, shown(line)));
            header = true;
            return;
        }
        if (line.starts_with("direction ")) {
            const auto word = std::string_view(line).substr(10);
            if (!loaded_.empty() || mark_ != 0) fail(fmt::format("a direction line must come before the first file line, got {}", shown(line)));
            if (word == "outgoing") direction_ = KeyDirDirection::Outgoing;
            else if (word == "incoming") direction_ = KeyDirDirection::Incoming;
            else if (word == "both") direction_ = KeyDirDirection::Both;
            else fail(fmt::format("expected \"direction outgoing\", \"direction incoming\" or \"direction both\", got {}", shown(line)));
            return;
        }
        const auto sp = line.find(' ');
        const bool is_mark = sp == 4 && line.starts_with("mark ");
        std::uint64_t value = 0;
        const char* from = line.data() + (is_mark ? sp + 1 : 0);
        const char* end = is_mark ? line.data() + line.size() : line.data() + (sp == std::string::npos ? 0 : sp);
        auto [p, ec] = std::from_chars(from, end, value);
        if (is_mark) {
            if (from == end || ec != std::errc() || p != end || (*from == '0' && end - from > 1))
                fail(fmt::format("expected \"mark <offset>\" with a decimal offset, got {}", shown(line)));
            if (value <= mark_) fail(fmt::format("marks must increase, but mark {} follows mark {}", value, mark_));
            mark_ = value;
            return;
        }
        if (sp == std::string::npos || sp == 0 || ec != std::errc() || p != end || line[0] == '0')
            fail(fmt::format("expected \"<size> <name>\" with a decimal size or \"mark <offset>\", got {}", shown(line)));
        if (value < 1 || value > kMaxKeyFileBytes) fail(fmt::format("expected a size of 1 to {} bytes, got {}", kMaxKeyFileBytes, value));
        std::string name = line.substr(sp + 1);
        if (!is_key_file_name(name)) fail(fmt::format("expected a key file name (not hidden, no .tmp/.part, no control characters), got {}", shown(name)));
        if (!loaded_.empty() && !(loaded_.back().name < name))
            fail(fmt::format("names must increase in byte order, but {} follows {}", shown(name), shown(loaded_.back().name)));
        loaded_.push_back({std::move(name), value});
    };
    std::uint64_t at = 0;  // bytes read so far
    for (;;) {
        const ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(fmt::format("cannot read the key-file index: {}", errno_text(errno)));
        if (n == 0) break;
        for (ssize_t i = 0; i < n; ++i, ++at) {
            if (nuls) {
                if (buf[i] != '\0') {
                    ++line_no;
                    fail(fmt::format("NUL bytes from byte {} are followed by other data at byte {}; expected NUL bytes only at the "
                                     "end (the zero-filled tail a power loss can leave)", nul_at, at));
                }
                continue;
            }
            if (buf[i] == '\0') {
                nuls = true;
                nul_at = at;
                continue;
            }
            if (buf[i] != '\n') {
                if (line.size() == kMaxLine) {
                    ++line_no;
                    fail(fmt::format("expected a line of at most {} bytes", kMaxLine));
                }
                line += buf[i];
                continue;
            }
            take_line();
            pos += line.size() + 1;
            line.clear();
        }
    }
    size_ = pos;
    if (nuls) {
        // Zero-filled blocks after the last complete line: a power loss during an append (the
        // file's size reached the disk, its data did not). That append was never completed.
        spdlog::warn("{}: {} bytes after the last complete line dropped ({} NUL bytes: the tail of an append cut short by a power loss)",
                     path_, at - pos, at - nul_at);
    } else if (!line.empty()) {
        // Torn by a crash during an append: that append was never fsynced, so none of its files
        // were used. They are indexed again by the next scan.
        spdlog::warn("{}: incomplete last line {} dropped (a crash during an append)", path_, shown(line));
    }
    if (!header || !line.empty() || nuls) {
        if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0 || ::lseek(fd_, static_cast<off_t>(size_), SEEK_SET) < 0)
            fail(fmt::format("cannot truncate the key-file index: {}", errno_text(errno)));
        if (!header) {
            const std::string h = std::string(kHeader) + "\n";
            if (!write_all(fd_, h) || ::fsync(fd_) != 0) fail(fmt::format("cannot write the key-file index: {}", errno_text(errno)));
            size_ = h.size();
            // The new file's name must be durable too.
            auto dir = std::filesystem::path(path_).parent_path();
            if (int d = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
                ::fsync(d);
                ::close(d);
            }
        } else if (::fsync(fd_) != 0) {
            fail(fmt::format("cannot write the key-file index: {}", errno_text(errno)));
        }
    }
    if (::lseek(fd_, static_cast<off_t>(size_), SEEK_SET) < 0) fail(fmt::format("cannot seek in the key-file index: {}", errno_text(errno)));
}

KeyFileIndex::~KeyFileIndex() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
}

std::uint64_t KeyFileIndex::mark() const {
    std::lock_guard lk(mu_);
    return mark_;
}

bool KeyFileIndex::broken() const {
    std::lock_guard lk(mu_);
    return broken_;
}

void KeyFileIndex::inject_fault_for_test(const KeyFileIndexFault& fault) {
    std::lock_guard lk(mu_);
    fault_ = fault;
}

KeyDirDirection KeyFileIndex::direction() const {
    std::lock_guard lk(mu_);
    return direction_;
}

bool KeyFileIndex::settle_direction(KeyDirDirection d, std::string& error) {
    std::lock_guard lk(mu_);
    if (d == direction_) return true;
    if (!loaded_.empty() || mark_ != 0) {
        error = fmt::format("{}: this key-file index was built with key_dir_direction = \"{}\", the configuration now says \"{}\": "
                            "stream offsets would name other file bytes (key material handed out before could be handed out "
                            "again). Keep \"{}\", or start the link afresh: new key files in an empty key_dir and this index removed",
                            path_, key_dir_direction_name(direction_), key_dir_direction_name(d), key_dir_direction_name(direction_));
        return false;
    }
    if (!append_text(fmt::format("direction {}\n", key_dir_direction_name(d)), error)) return false;
    direction_ = d;
    return true;
}

bool KeyFileIndex::append(const std::vector<IndexedFile>& files, std::string& error) {
    std::string text;
    for (const auto& f : files) text += fmt::format("{} {}\n", f.size, f.name);
    std::lock_guard lk(mu_);
    return append_text(text, error);
}

bool KeyFileIndex::append_mark(std::uint64_t offset, std::string& error) {
    std::lock_guard lk(mu_);
    if (offset <= mark_) return true;  // already recorded
    if (!append_text(fmt::format("mark {}\n", offset), error)) return false;
    mark_ = offset;
    return true;
}

bool KeyFileIndex::append_text(const std::string& text, std::string& error) {
    if (broken_) {
        error = fmt::format("{}: the key-file index could not be repaired after a failed append (it may end in a partial line); "
                            "nothing more is appended to it: restart the KME (it drops the partial line at start)", path_);
        return false;
    }
    bool ok = false;
    int e = 0;
    if (fault_.partial_bytes || fault_.repair_fails) {
        (void)write_all(fd_, std::string_view(text).substr(0, std::min(fault_.partial_bytes, text.size())));
        e = EIO;
    } else {
        ok = write_all(fd_, text) && ::fsync(fd_) == 0;
        e = errno;
    }
    if (ok) {
        size_ += text.size();
        return true;
    }
    error = fmt::format("{}: cannot append to the key-file index: {}", path_, errno_text(e));
    // Cut a partial write off again, so the next append starts on a line of its own.
    const bool repair_fails = fault_.repair_fails;
    fault_ = {};
    if (repair_fails || ::ftruncate(fd_, static_cast<off_t>(size_)) != 0 || ::lseek(fd_, static_cast<off_t>(size_), SEEK_SET) < 0) {
        const int re = repair_fails ? EIO : errno;
        broken_ = true;  // fail closed: a later line would be glued onto the partial one
        error += fmt::format(" (and it could not be cut back to {} bytes: {}; no more appends until the KME is restarted)", size_,
                             errno_text(re));
        spdlog::error("{}", error);
    }
    return false;
}

}  // namespace qkd::kme
