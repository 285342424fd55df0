// Small value parsers for the config: IPv4 addresses, CIDRs, durations.
#include <charconv>

#include "qkd/daemon/config.hpp"

namespace qkd::daemon {

namespace {
using Fail = Err<DaemonError>;
DaemonError bad(std::string msg) { return DaemonError{Errc::config_value, std::move(msg)}; }

bool parse_uint(std::string_view s, std::uint64_t max, std::uint64_t& out) {
    if (s.empty() || s.size() > 12) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size() && out <= max;
}
}  // namespace

std::string_view errc_text(Errc c) {
    switch (c) {
        case Errc::config_syntax: return "config syntax";
        case Errc::config_value: return "config value";
        case Errc::psk_file: return "PSK file";
        case Errc::control_request: return "control request";
        case Errc::control_io: return "control socket";
        case Errc::socket: return "socket";
        case Errc::engine: return "IKE engine";
        case Errc::dataplane: return "data plane";
    }
    return "unknown";
}

Result<std::uint32_t, DaemonError> parse_ipv4(std::string_view s) {
    std::uint32_t addr = 0;
    std::string_view rest = s;
    for (int i = 0; i < 4; ++i) {
        auto dot = rest.find('.');
        auto part = i < 3 ? rest.substr(0, dot) : rest;
        if ((i < 3 && dot == std::string_view::npos) || (part.size() > 1 && part[0] == '0'))
            return Fail{bad("\"" + std::string(s) + "\" is not an IPv4 address, expected a.b.c.d")};
        std::uint64_t v = 0;
        if (!parse_uint(part, 255, v))
            return Fail{bad("\"" + std::string(s) + "\" is not an IPv4 address, expected a.b.c.d")};
        addr = (addr << 8) | static_cast<std::uint32_t>(v);
        if (i < 3) rest = rest.substr(dot + 1);
    }
    return addr;
}

std::string ipv4_to_string(std::uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." + std::to_string((a >> 8) & 255) + "." +
           std::to_string(a & 255);
}

Result<Cidr, DaemonError> parse_cidr(std::string_view s) {
    auto slash = s.find('/');
    std::uint64_t prefix = 32;
    auto addr_part = s.substr(0, slash);
    if (slash != std::string_view::npos && !parse_uint(s.substr(slash + 1), 32, prefix))
        return Fail{bad("\"" + std::string(s) + "\" has a bad prefix length, expected a.b.c.d/0..32")};
    auto a = parse_ipv4(addr_part);
    if (!a) return Fail{bad("\"" + std::string(s) + "\" is not a CIDR, expected a.b.c.d/len")};
    std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
    if ((*a & ~mask) != 0)
        return Fail{bad("\"" + std::string(s) + "\" has host bits set, expected " + ipv4_to_string(*a & mask) + "/" +
                        std::to_string(prefix))};
    return Cidr{*a, static_cast<std::uint8_t>(prefix)};
}

std::string Cidr::to_string() const { return ipv4_to_string(addr) + "/" + std::to_string(prefix); }

Result<std::chrono::seconds, DaemonError> parse_duration(std::string_view s) {
    if (s.empty()) return Fail{bad("empty duration, expected e.g. \"3600\", \"90s\", \"45m\", \"4h\" or \"1d\"")};
    std::uint64_t mult = 1;
    std::string_view num = s;
    switch (s.back()) {
        case 's': mult = 1; num.remove_suffix(1); break;
        case 'm': mult = 60; num.remove_suffix(1); break;
        case 'h': mult = 3600; num.remove_suffix(1); break;
        case 'd': mult = 86400; num.remove_suffix(1); break;
        default: break;
    }
    std::uint64_t v = 0;
    if (!parse_uint(num, 100000000, v))
        return Fail{bad("duration \"" + std::string(s) + "\" is invalid, expected e.g. \"3600\", \"90s\", \"45m\", \"4h\" or \"1d\"")};
    return std::chrono::seconds(static_cast<std::int64_t>(v * mult));
}

}  // namespace qkd::daemon
