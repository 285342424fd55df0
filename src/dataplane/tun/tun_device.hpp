#pragma once
// A TUN device (IFF_TUN | IFF_NO_PI: one read or write = one IP packet) and the rtnetlink calls
// the userspace backend needs: link up + MTU, an address, routes for the remote selectors.
#include <memory>
#include <string>

#include "netlink.hpp"
#include "qkd/dataplane/dataplane.hpp"

namespace qkd::dp {

class TunDevice {
  public:
    // Creates (or attaches to) the device, sets the MTU, brings it up, optionally adds `address`.
    // With `offload`, IFF_VNET_HDR + TUNSETOFFLOAD(CSUM, TSO4, TSO6): every read and write
    // carries a vnet_hdr_len-octet virtio_net_hdr in front of the packet (see gso.hpp).
    static DpResult<std::unique_ptr<TunDevice>> open(const std::string& name, unsigned mtu,
                                                     const std::optional<IpAddress>& address,
                                                     bool offload = false, unsigned txqueuelen = 0);
    bool vnet_hdr() const { return vnet_hdr_; }
    ~TunDevice();
    TunDevice(const TunDevice&) = delete;
    TunDevice& operator=(const TunDevice&) = delete;

    int fd() const { return fd_; }
    int ifindex() const { return ifindex_; }
    const std::string& name() const { return name_; }

    // Route `dst` through this device (RTM_NEWROUTE, scope link, preferred source = the device
    // address when one was given).
    DpResult<void> add_route(const IpPrefix& dst);
    DpResult<void> remove_route(const IpPrefix& dst);

  private:
    TunDevice() = default;
    DpResult<void> route(const IpPrefix& dst, bool add);
    int fd_ = -1;
    bool vnet_hdr_ = false;
    int ifindex_ = 0;
    std::string name_;
    std::optional<IpAddress> address_;
    std::unique_ptr<NetlinkSocket> rtnl_;
};

}  // namespace qkd::dp
