// PSK files: small, private, and parsed without copying the secret into std::string.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "qkd/common/encoding.hpp"
#include "qkd/daemon/config.hpp"

namespace qkd::daemon {

namespace {
using Fail = Err<DaemonError>;
DaemonError bad(const std::string& path, std::string msg) { return DaemonError{Errc::psk_file, "PSK file " + path + ": " + std::move(msg)}; }

int hexval(std::uint8_t c) {
    // Branch-light nibble decode; validity of the whole string is public.
    int v = -1;
    v = (c >= '0' && c <= '9') ? c - '0' : v;
    v = (c >= 'a' && c <= 'f') ? c - 'a' + 10 : v;
    v = (c >= 'A' && c <= 'F') ? c - 'A' + 10 : v;
    return v;
}
}  // namespace

Result<SecretBytes, DaemonError> read_psk_file(const std::string& path, bool strict_permissions) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return Fail{bad(path, std::string("cannot open: ") + std::strerror(errno))};
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return Fail{bad(path, "not a regular file")};
    }
    if (strict_permissions && (st.st_mode & 077) != 0) {
        ::close(fd);
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return Fail{bad(path, std::string("mode ") + mode + " lets group or others access it, expected 0600 or 0400 (chmod 600)")};
    }
    if (strict_permissions && st.st_uid != 0 && st.st_uid != ::geteuid()) {
        ::close(fd);
        return Fail{bad(path, "owned by uid " + std::to_string(st.st_uid) + ", expected root or the daemon's user")};
    }
    SecretBytes raw(kMaxPskBytes + 1);
    std::size_t got = 0;
    while (got < raw.size()) {
        ssize_t n = ::read(fd, raw.data() + got, raw.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            return Fail{bad(path, std::string("read failed: ") + std::strerror(errno))};
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (got > kMaxPskBytes) return Fail{bad(path, "larger than " + std::to_string(kMaxPskBytes) + " bytes")};
    raw.resize(got);
    // The secret is the first line; trailing CR/LF/spaces are not part of it.
    std::size_t len = 0;
    while (len < got && raw[len] != '\n' && raw[len] != '\r') ++len;
    while (len > 0 && (raw[len - 1] == ' ' || raw[len - 1] == '\t')) --len;
    auto line = raw.view().first(len);
    auto starts = [&](std::string_view p) {
        return line.size() >= p.size() && std::memcmp(line.data(), p.data(), p.size()) == 0;
    };
    SecretBytes out;
    if (starts("0x") || starts("0X")) {
        auto hex = line.subspan(2);
        if (hex.empty() || hex.size() % 2 != 0) return Fail{bad(path, "0x form needs an even, non-zero number of hex digits")};
        out = SecretBytes(hex.size() / 2);
        int badbits = 0;
        for (std::size_t i = 0; i < out.size(); ++i) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            badbits |= (hi | lo) & 0x100;  // -1 has every bit set
            out[i] = static_cast<std::uint8_t>(((hi & 15) << 4) | (lo & 15));
        }
        if (badbits) return Fail{bad(path, "0x form contains a non-hex character")};
    } else if (starts("base64:")) {
        std::string_view b64(reinterpret_cast<const char*>(line.data()) + 7, line.size() - 7);
        auto d = base64_decode_secret(b64);
        if (!d) return Fail{bad(path, "base64: form is not valid Base64 (RFC 4648, padded)")};
        out = std::move(*d);
    } else {
        out = SecretBytes(line);
    }
    if (out.size() < 16)
        return Fail{bad(path, "the PSK has " + std::to_string(out.size()) + " bytes, expected at least 16")};
    return out;
}

}  // namespace qkd::daemon
