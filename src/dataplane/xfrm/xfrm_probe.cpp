// dataplane = "auto": can this kernel do ESP with rfc4106(gcm(aes))? Asked the only reliable way:
// by installing an SA. In a scratch network namespace (a short-lived thread unshares, so the
// process keeps its own), else on TEST-NET-1 addresses in the current one, deleted at once.
#include <sched.h>

#include <thread>

#include "qkd/common/rng.hpp"
#include "xfrm/xfrm_backend.hpp"

namespace qkd::dp {

namespace {

bool try_install(bool scratch_ns, std::string* why) {
    auto nl = NetlinkSocket::open(NETLINK_XFRM);
    if (!nl) {
        if (why) *why = nl.error().message;
        return false;
    }
    SaSpec s;
    s.direction = Direction::inbound;
    std::uint8_t spi_bytes[4];
    random_bytes(spi_bytes);
    s.spi = 0x100u | (std::uint32_t{spi_bytes[0]} << 24 | std::uint32_t{spi_bytes[1]} << 16 |
                      std::uint32_t{spi_bytes[2]} << 8);
    s.reqid = 1;
    s.outer_src = IpAddress::v4(0xc0000201);  // 192.0.2.1
    s.outer_dst = IpAddress::v4(0xc0000202);  // 192.0.2.2
    s.key = SecretBytes(32);
    s.salt = SecretBytes(4);
    s.replay_window = 32;
    auto r =
        (*nl)->request(build_xfrm_newsa(**nl, XFRM_MSG_NEWSA, s), "probe ESP rfc4106(gcm(aes)) SA");
    if (!r) {
        if (why) *why = r.error().message;
        return false;
    }
    if (!scratch_ns)
        (void)(*nl)->request(build_xfrm_delsa(**nl, SaId{s.direction, s.spi, s.outer_dst}),
                             "delete probe SA");
    return true;
}

}  // namespace

bool kernel_has_esp(std::string* why) {
    bool ok = false;
    bool scratch = false;
    std::string reason;
    std::thread t([&] {
        // unshare(CLONE_NEWNET) affects only this thread; the namespace dies with it.
        scratch = ::unshare(CLONE_NEWNET) == 0;
        ok = try_install(scratch, &reason);
    });
    t.join();
    if (why) *why = reason;
    return ok;
}

}  // namespace qkd::dp
