// Request-target parsing for the KME (kept free of coroutines so every build, the fuzz one
// included, compiles it with all sanitizers).
#include <optional>
#include <string>
#include <string_view>

#include "qkd/kme/router.hpp"

namespace qkd::kme {
namespace {

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::string> pct_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return std::nullopt;
            out += static_cast<char>(h * 16 + l);
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

}  // namespace

std::optional<Target> parse_target(std::string_view target) {
    Target t;
    auto q = target.find('?');
    std::string_view path = target.substr(0, q);
    if (path.empty() || path.front() != '/') return std::nullopt;
    std::size_t i = 1;
    while (i <= path.size()) {
        auto j = path.find('/', i);
        if (j == std::string_view::npos) j = path.size();
        auto seg = pct_decode(path.substr(i, j - i), false);
        if (!seg) return std::nullopt;
        t.segments.push_back(std::move(*seg));
        i = j + 1;
    }
    if (q != std::string_view::npos) {
        std::string_view qs = target.substr(q + 1);
        std::size_t a = 0;
        while (a < qs.size()) {
            auto b = qs.find('&', a);
            if (b == std::string_view::npos) b = qs.size();
            auto kv = qs.substr(a, b - a);
            if (!kv.empty()) {
                auto eq = kv.find('=');
                auto k = pct_decode(kv.substr(0, eq), true);
                auto v = pct_decode(eq == std::string_view::npos ? std::string_view{} : kv.substr(eq + 1), true);
                if (!k || !v) return std::nullopt;
                t.query.emplace_back(std::move(*k), std::move(*v));
            }
            a = b + 1;
        }
    }
    return t;
}

}  // namespace qkd::kme
