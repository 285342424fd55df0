#include "qkd/dataplane/dataplane.hpp"
#include "userspace/userspace_backend.hpp"
#include "xfrm/xfrm_backend.hpp"

namespace qkd::dp {

DpResult<std::unique_ptr<DataPlane>> make_dataplane(std::string_view backend,
                                                    DataPlaneOptions options) {
    if (backend == "userspace") return make_userspace_dataplane(std::move(options));
    if (backend == "xfrm") {
        std::string why;
        if (!kernel_has_esp(&why))
            return Err{DpError{DpErrc::unavailable,
                               "dataplane \"xfrm\": the kernel cannot do ESP AES-GCM: " + why}};
        return make_xfrm_dataplane(std::move(options));
    }
    if (backend == "auto") {
        if (kernel_has_esp(nullptr)) return make_xfrm_dataplane(std::move(options));
        return make_userspace_dataplane(std::move(options));
    }
    return Err{
        DpError{DpErrc::invalid_argument, "dataplane \"" + std::string(backend) +
                                              "\": expected \"auto\", \"userspace\" or \"xfrm\""}};
}

}  // namespace qkd::dp
