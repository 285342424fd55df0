#pragma once
// Rate-limited log lines for datagrams the IKE engine dropped (EventSink::datagram_dropped):
// at most one line per peer address per interval, and at most `max_lines` lines per interval in
// all (a flood from spoofed addresses must not flood the log). A line carries the number of drops
// from that peer that were not logged since its previous line.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "qkd/ike/engine.hpp"

namespace qkd::daemon {

class DropLog {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    explicit DropLog(std::chrono::milliseconds interval = std::chrono::seconds{1}, std::size_t max_lines = 10,
                     std::size_t max_peers = 4096)
        : interval_(interval), max_lines_(max_lines), max_peers_(max_peers) {}

    // The line to log for this drop now, or nothing (then the drop is counted for a later line).
    std::optional<std::string> note(TimePoint now, const ike::Endpoint& remote, ike::DropReason reason, std::string_view detail);

private:
    struct Peer {
        TimePoint last{};
        std::uint64_t suppressed = 0;
    };
    std::chrono::milliseconds interval_;
    std::size_t max_lines_, max_peers_;
    std::unordered_map<std::string, Peer> peers_;  // by address (not port)
    TimePoint window_{};
    std::size_t lines_ = 0;
    std::uint64_t suppressed_global_ = 0;  // dropped lines of peers we could not track
};

}  // namespace qkd::daemon
