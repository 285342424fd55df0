// Show answers: filters and pages (see listing.hpp and control.hpp).
#include "qkd/daemon/listing.hpp"

#include <algorithm>
#include <cctype>

namespace qkd::daemon {

namespace {
using Fail = Err<DaemonError>;
char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }
}  // namespace

bool glob_match(std::string_view p, std::string_view t) {
    // Iterative wildcard match with one backtrack point: O(|p| * |t|) at worst, no recursion.
    std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
    while (ti < t.size()) {
        if (pi < p.size() && p[pi] != '*' && lower(p[pi]) == lower(t[ti])) {
            ++pi;
            ++ti;
        } else if (pi < p.size() && p[pi] == '*') {
            star = pi++;
            mark = ti;
        } else if (star != std::string_view::npos) {
            pi = star + 1;
            ti = ++mark;
        } else {
            return false;
        }
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
}

bool peer_matches(std::string_view filter, std::string_view remote_endpoint, std::string_view remote_id) {
    if (filter.empty()) return true;
    std::string_view addr = remote_endpoint;
    if (auto c = addr.rfind(':'); c != std::string_view::npos && addr.find('[') == std::string_view::npos &&
                                   addr.find(':') == c)
        addr = addr.substr(0, c);  // IPv4 "a.b.c.d:port"
    return glob_match(filter, addr) || glob_match(filter, remote_endpoint) || glob_match(filter, remote_id);
}

Result<nlohmann::json, DaemonError> list_answer(std::vector<ListRow> rows, const ControlRequest& req) {
    std::stable_sort(rows.begin(), rows.end(), [](const ListRow& a, const ListRow& b) { return a.id < b.id; });
    if (!req.after) {
        std::size_t bytes = 0;
        nlohmann::json out = nlohmann::json::array();
        for (auto& r : rows) {
            bytes += r.row.dump().size() + 1;
            if (bytes > kMaxControlLine - 64)
                return Fail{DaemonError{Errc::control_request,
                                        std::to_string(rows.size()) + " SAs do not fit in one answer of " +
                                            std::to_string(kMaxControlLine) +
                                            " bytes: ask for pages (\"after\": 0, then the answer's \"next\"; qkdgate "
                                            "does) or filter by \"gateway\" or \"peer\""}};
            out.push_back(std::move(r.row));
        }
        return out;
    }
    const std::uint64_t after = *req.after;
    auto in_page = [after](const ListRow& r) { return r.id > after || (r.id == 0 && after == 0); };
    nlohmann::json items = nlohmann::json::array();
    std::size_t bytes = 0, total = rows.size(), taken = 0;
    std::uint64_t last_id = after;
    nlohmann::json next = nullptr;
    for (auto& r : rows) {
        if (!in_page(r)) continue;
        const std::size_t n = r.row.dump().size() + 1;
        const bool full = taken > 0 && (bytes + n > kPageBudget || (req.limit && taken >= req.limit));
        if (full) {
            next = last_id;
            break;
        }
        bytes += n;
        ++taken;
        last_id = r.id;
        items.push_back(std::move(r.row));
    }
    return nlohmann::json{{"items", std::move(items)}, {"next", std::move(next)}, {"total", total}};
}

}  // namespace qkd::daemon
