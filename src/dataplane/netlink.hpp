#pragma once
// A blocking request/ack netlink socket over libmnl, shared by rtnetlink (tun/) and xfrm (xfrm/).
#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qkd/dataplane/dataplane.hpp"

namespace qkd::dp {

inline constexpr std::size_t netlink_buf_size = 16384;

class NetlinkSocket {
  public:
    // bus: NETLINK_ROUTE or NETLINK_XFRM; groups: multicast groups to join (0 for none).
    static DpResult<std::unique_ptr<NetlinkSocket>> open(int bus, unsigned groups = 0);
    ~NetlinkSocket();
    NetlinkSocket(const NetlinkSocket&) = delete;
    NetlinkSocket& operator=(const NetlinkSocket&) = delete;

    // Starts a message in the internal buffer; fill it with mnl_attr_put* and call request().
    nlmsghdr* begin(std::uint16_t type, std::uint16_t flags);
    // Sends the message with NLM_F_ACK and waits for the acknowledgement. Returns the kernel's
    // errno as a DpError{netlink} quoting `what`. `on_reply` receives any data messages.
    DpResult<void> request(nlmsghdr* nlh, const std::string& what,
                           const std::function<void(const nlmsghdr*)>& on_reply = {});
    // Receives one buffer of multicast messages (blocking up to timeout_ms; 0 = poll).
    DpResult<void> receive_events(int timeout_ms,
                                  const std::function<void(const nlmsghdr*)>& on_msg);
    int fd() const;

  private:
    NetlinkSocket() = default;
    mnl_socket* nl_ = nullptr;
    unsigned portid_ = 0;
    unsigned seq_ = 1;
    std::vector<char> buf_ = std::vector<char>(netlink_buf_size);
};

std::string errno_text(int err);

}  // namespace qkd::dp
