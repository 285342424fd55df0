#include "qkd/daemon/drop_log.hpp"

namespace qkd::daemon {

std::optional<std::string> DropLog::note(TimePoint now, const ike::Endpoint& remote, ike::DropReason reason,
                                         std::string_view detail) {
    if (now - window_ >= interval_) {
        window_ = now;
        lines_ = 0;
    }
    const std::string addr = remote.addr.str();
    auto it = peers_.find(addr);
    if (it == peers_.end()) {
        if (peers_.size() >= max_peers_) {
            // Forget peers whose last line is older than the interval; if all are recent, count only.
            std::erase_if(peers_, [&](const auto& kv) {
                if (now - kv.second.last < interval_) return false;
                suppressed_global_ += kv.second.suppressed;
                return true;
            });
            if (peers_.size() >= max_peers_) {
                ++suppressed_global_;
                return std::nullopt;
            }
        }
        it = peers_.emplace(addr, Peer{now - interval_, 0}).first;
    }
    Peer& p = it->second;
    if (now - p.last < interval_) {
        ++p.suppressed;
        return std::nullopt;
    }
    if (lines_ >= max_lines_) {
        ++suppressed_global_;
        return std::nullopt;
    }
    std::string line = "IKE datagram from " + remote.str() + " dropped: " + std::string(ike::to_string(reason));
    if (!detail.empty()) line += " (" + std::string(detail) + ")";
    if (p.suppressed) line += "; " + std::to_string(p.suppressed) + " more from this address not logged";
    if (suppressed_global_) line += "; " + std::to_string(suppressed_global_) + " from other addresses not logged";
    p.last = now;
    p.suppressed = 0;
    suppressed_global_ = 0;
    ++lines_;
    return line;
}

}  // namespace qkd::daemon
