#include "key_file_link.hpp"

// wipe_key_file (key_files.hpp) and the file helpers of key_file_link.hpp.

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace qkd::kme {
namespace detail {

std::string errno_text(int e) { return std::strerror(e); }

KeyFileId id_of(const struct stat& st) { return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)}; }

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

}  // namespace detail

using detail::errno_text;
using detail::id_of;
using detail::open_regular;

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

}  // namespace qkd::kme
