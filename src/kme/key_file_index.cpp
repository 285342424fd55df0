#include "qkd/kme/key_file_index.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
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

// A line as it can be quoted in a message: cut short, control characters as '?'.
std::string shown(std::string_view line) {
    std::string q(line.substr(0, 80));
    for (char& ch : q)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
    return "\"" + q + (line.size() > 80 ? "...\"" : "\"");
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
    // Read line by line through a fixed buffer: no line may be longer than kMaxLine.
    std::string line;
    std::uint64_t pos = 0, line_no = 0;
    bool header = false;
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
        const auto sp = line.find(' ');
        std::uint64_t size = 0;
        const char* end = line.data() + (sp == std::string::npos ? 0 : sp);
        auto [p, ec] = std::from_chars(line.data(), end, size);
        if (sp == std::string::npos || sp == 0 || ec != std::errc() || p != end || line[0] == '0')
            fail(fmt::format("expected \"<size> <name>\" with a decimal size, got {}", shown(line)));
        if (size < 1 || size > kMaxKeyFileBytes) fail(fmt::format("expected a size of 1 to {} bytes, got {}", kMaxKeyFileBytes, size));
        std::string name = line.substr(sp + 1);
        if (!is_key_file_name(name)) fail(fmt::format("expected a key file name (not hidden, no .tmp/.part, no control characters), got {}", shown(name)));
        if (!loaded_.empty() && !(loaded_.back().name < name))
            fail(fmt::format("names must increase in byte order, but {} follows {}", shown(name), shown(loaded_.back().name)));
        loaded_.push_back({std::move(name), size});
    };
    for (;;) {
        const ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(fmt::format("cannot read the key-file index: {}", errno_text(errno)));
        if (n == 0) break;
        for (ssize_t i = 0; i < n; ++i) {
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
    if (!line.empty()) {
        // Torn by a crash during an append: that append was never fsynced, so none of its files
        // were used. They are indexed again by the next scan.
        spdlog::warn("{}: incomplete last line {} dropped (a crash during an append)", path_, shown(line));
    }
    if (!header || !line.empty()) {
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
        }
    }
    if (::lseek(fd_, static_cast<off_t>(size_), SEEK_SET) < 0) fail(fmt::format("cannot seek in the key-file index: {}", errno_text(errno)));
}

KeyFileIndex::~KeyFileIndex() {
    if (fd_ >= 0) ::close(fd_);
}

bool KeyFileIndex::append(const std::vector<IndexedFile>& files, std::string& error) {
    std::string text;
    for (const auto& f : files) text += fmt::format("{} {}\n", f.size, f.name);
    if (write_all(fd_, text) && ::fsync(fd_) == 0) {
        size_ += text.size();
        return true;
    }
    error = fmt::format("{}: cannot append to the key-file index: {}", path_, errno_text(errno));
    // Cut a partial write off again, so the next append starts on a line of its own.
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0 || ::lseek(fd_, static_cast<off_t>(size_), SEEK_SET) < 0)
        error += fmt::format(" (and it could not be cut back to {} bytes: {})", size_, errno_text(errno));
    return false;
}

}  // namespace qkd::kme
