#pragma once
#include <memory>

#include "qkd/dataplane/dataplane.hpp"

namespace qkd::dp {

// RFC 4303 ESP over a TUN device: one thread per direction plus a housekeeping thread.
DpResult<std::unique_ptr<DataPlane>> make_userspace_dataplane(DataPlaneOptions options);

}  // namespace qkd::dp
