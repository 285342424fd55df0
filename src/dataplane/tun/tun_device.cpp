#include "tun/tun_device.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace qkd::dp {

namespace {
unsigned char family_of(const IpAddress& a) {
    return a.family == IpAddress::Family::v4 ? AF_INET : AF_INET6;
}
}  // namespace

DpResult<std::unique_ptr<TunDevice>> TunDevice::open(const std::string& name, unsigned mtu,
                                                     const std::optional<IpAddress>& address,
                                                     bool offload, unsigned txqueuelen) {
    if (name.empty() || name.size() >= IFNAMSIZ)
        return Err{DpError{DpErrc::invalid_argument, "TUN name '" + name + "': expected 1.." +
                                                         std::to_string(IFNAMSIZ - 1) +
                                                         " characters"}};
    if (mtu < 576 || mtu > 65000)
        return Err{DpError{DpErrc::invalid_argument,
                           "TUN MTU " + std::to_string(mtu) + ": expected 576..65000"}};
    std::unique_ptr<TunDevice> t(new TunDevice());
    t->name_ = name;
    t->address_ = address;
    t->fd_ = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);  // the data threads poll
    if (t->fd_ < 0)
        return Err{DpError{DpErrc::os_error, "open /dev/net/tun: " + errno_text(errno)}};
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
    std::memcpy(ifr.ifr_name, name.data(), name.size());
    if (::ioctl(t->fd_, TUNSETIFF, &ifr) < 0)
        return Err{DpError{DpErrc::os_error, "TUNSETIFF '" + name + "': " + errno_text(errno)}};
    if (offload) {
        t->vnet_hdr_ = true;
        // Best effort: without these the header is still there, only always "no offload".
        (void)::ioctl(t->fd_, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    }
    t->ifindex_ = static_cast<int>(if_nametoindex(name.c_str()));
    if (t->ifindex_ == 0)
        return Err{
            DpError{DpErrc::os_error, "if_nametoindex '" + name + "': " + errno_text(errno)}};

    auto nl = NetlinkSocket::open(NETLINK_ROUTE);
    if (!nl) return Err{nl.error()};
    t->rtnl_ = std::move(*nl);

    // RTM_NEWLINK: MTU and IFF_UP.
    nlmsghdr* nlh = t->rtnl_->begin(RTM_NEWLINK, 0);
    auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = t->ifindex_;
    ifm->ifi_flags = IFF_UP;
    ifm->ifi_change = IFF_UP;
    mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    if (txqueuelen) mnl_attr_put_u32(nlh, IFLA_TXQLEN, txqueuelen);
    if (auto r = t->rtnl_->request(nlh, "set " + name + " up, mtu " + std::to_string(mtu)); !r)
        return Err{r.error()};

    if (address) {
        nlh = t->rtnl_->begin(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
        auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
        ifa->ifa_family = family_of(*address);
        ifa->ifa_prefixlen = static_cast<unsigned char>(address->size() * 8);
        ifa->ifa_index = static_cast<unsigned>(t->ifindex_);
        ifa->ifa_scope = RT_SCOPE_UNIVERSE;
        mnl_attr_put(nlh, IFA_LOCAL, address->size(), address->bytes.data());
        mnl_attr_put(nlh, IFA_ADDRESS, address->size(), address->bytes.data());
        if (auto r = t->rtnl_->request(nlh, "add address " + address->to_string() + " to " + name);
            !r)
            return Err{r.error()};
    }
    return t;
}

TunDevice::~TunDevice() {
    if (fd_ >= 0) ::close(fd_);  // a non-persistent TUN disappears with its routes
}

DpResult<void> TunDevice::add_route(const IpPrefix& dst) {
    return route(dst, true);
}
DpResult<void> TunDevice::remove_route(const IpPrefix& dst) {
    return route(dst, false);
}

DpResult<void> TunDevice::route(const IpPrefix& dst, bool add) {
    nlmsghdr* nlh =
        rtnl_->begin(add ? RTM_NEWROUTE : RTM_DELROUTE, add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
    auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
    rtm->rtm_family = family_of(dst.addr);
    rtm->rtm_dst_len = dst.len;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = RTPROT_STATIC;
    rtm->rtm_scope = RT_SCOPE_LINK;
    rtm->rtm_type = RTN_UNICAST;
    mnl_attr_put(nlh, RTA_DST, dst.addr.size(), dst.addr.bytes.data());
    mnl_attr_put_u32(nlh, RTA_OIF, static_cast<std::uint32_t>(ifindex_));
    if (address_ && address_->family == dst.addr.family)
        mnl_attr_put(nlh, RTA_PREFSRC, address_->size(), address_->bytes.data());
    return rtnl_->request(
        nlh, std::string(add ? "add" : "delete") + " route " + dst.to_string() + " dev " + name_);
}

}  // namespace qkd::dp
