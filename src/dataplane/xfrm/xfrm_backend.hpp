#pragma once
#include <linux/xfrm.h>

#include <memory>

#include "netlink.hpp"
#include "qkd/dataplane/dataplane.hpp"

namespace qkd::dp {

// The kernel backend: SAs and policies over NETLINK_XFRM, XFRM_MSG_EXPIRE events to the callback.
DpResult<std::unique_ptr<DataPlane>> make_xfrm_dataplane(DataPlaneOptions options);

// Message builders shared with the probe (xfrm_probe.cpp). The request is left in `nl`'s buffer.
nlmsghdr* build_xfrm_newsa(NetlinkSocket& nl, std::uint16_t type, const SaSpec& s);
nlmsghdr* build_xfrm_delsa(NetlinkSocket& nl, const SaId& id);

}  // namespace qkd::dp
