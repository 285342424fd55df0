#include "netlink.hpp"

#include <poll.h>

#include <cerrno>
#include <cstring>

namespace qkd::dp {

std::string errno_text(int err) {
    return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

DpResult<std::unique_ptr<NetlinkSocket>> NetlinkSocket::open(int bus, unsigned groups) {
    std::unique_ptr<NetlinkSocket> s(new NetlinkSocket());
    s->nl_ = mnl_socket_open(bus);
    if (!s->nl_)
        return Err{DpError{DpErrc::os_error, "netlink socket (bus " + std::to_string(bus) +
                                                 "): " + errno_text(errno)}};
    if (mnl_socket_bind(s->nl_, groups, MNL_SOCKET_AUTOPID) < 0)
        return Err{DpError{DpErrc::os_error, "netlink bind: " + errno_text(errno)}};
    s->portid_ = mnl_socket_get_portid(s->nl_);
    return s;
}

NetlinkSocket::~NetlinkSocket() {
    if (nl_) mnl_socket_close(nl_);
}

int NetlinkSocket::fd() const {
    return mnl_socket_get_fd(nl_);
}

nlmsghdr* NetlinkSocket::begin(std::uint16_t type, std::uint16_t flags) {
    std::memset(buf_.data(), 0, buf_.size());  // xfrm messages may carry keys: start clean
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
    return nlh;
}

DpResult<void> NetlinkSocket::request(nlmsghdr* nlh, const std::string& what,
                                      const std::function<void(const nlmsghdr*)>& on_reply) {
    nlh->nlmsg_flags |= NLM_F_ACK;
    const unsigned seq = nlh->nlmsg_seq = seq_++;
    const ssize_t sent = mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len);
    const int send_err = errno;
    // Wipe the request (it may hold key material) whatever happened.
    std::memset(buf_.data(), 0, nlh->nlmsg_len);
    if (sent < 0)
        return Err{DpError{DpErrc::os_error, what + ": netlink send: " + errno_text(send_err)}};

    struct Ctx {
        const std::function<void(const nlmsghdr*)>* cb;
    } ctx{&on_reply};
    auto data_cb = [](const nlmsghdr* m, void* data) -> int {
        auto* c = static_cast<Ctx*>(data);
        if (*c->cb) (*c->cb)(m);
        return MNL_CB_OK;
    };
    for (;;) {
        const ssize_t n = mnl_socket_recvfrom(nl_, buf_.data(), buf_.size());
        if (n < 0)
            return Err{DpError{DpErrc::os_error, what + ": netlink receive: " + errno_text(errno)}};
        const int ret =
            mnl_cb_run(buf_.data(), static_cast<size_t>(n), seq, portid_, data_cb, &ctx);
        if (ret == MNL_CB_ERROR) {
            const int err = errno;
            const DpErrc code = (err == ESRCH || err == ENOENT) ? DpErrc::not_found
                                : err == EEXIST                 ? DpErrc::exists
                                                                : DpErrc::netlink;
            return Err{DpError{code, what + ": kernel said " + errno_text(err)}};
        }
        if (ret == MNL_CB_STOP) return {};
    }
}

DpResult<void> NetlinkSocket::receive_events(int timeout_ms,
                                             const std::function<void(const nlmsghdr*)>& on_msg) {
    pollfd p{fd(), POLLIN, 0};
    const int pr = ::poll(&p, 1, timeout_ms);
    if (pr < 0 && errno != EINTR)
        return Err{DpError{DpErrc::os_error, "netlink poll: " + errno_text(errno)}};
    if (pr <= 0) return {};
    const ssize_t n = ::recv(fd(), buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return {};
        return Err{DpError{DpErrc::os_error, "netlink receive: " + errno_text(errno)}};
    }
    struct Ctx {
        const std::function<void(const nlmsghdr*)>* cb;
    } ctx{&on_msg};
    mnl_cb_run(
        buf_.data(), static_cast<size_t>(n), 0, 0,
        [](const nlmsghdr* m, void* data) -> int {
            (*static_cast<Ctx*>(data)->cb)(m);
            return MNL_CB_OK;
        },
        &ctx);
    return {};
}

}  // namespace qkd::dp
