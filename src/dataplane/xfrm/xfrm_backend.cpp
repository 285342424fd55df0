// The xfrm backend: the kernel does ESP; we install what IKE negotiated.
//   SA:     XFRM_MSG_NEWSA, tunnel mode, aead rfc4106(gcm(aes)) with key = key || salt and a
//           128-bit ICV, XFRMA_REPLAY_ESN_VAL for ESN or windows > 32, XFRMA_ENCAP for NAT-T.
//   policy: XFRM_MSG_NEWPOLICY out / in / fwd with one ESP tunnel template (reqid links SA).
//   rekey:  new inbound, new outbound (the kernel prefers the newest SA of a template), delete
//           old outbound, delete old inbound after a linger delay.
//   events: a second socket in XFRMNLGRP_EXPIRE delivers XFRM_MSG_EXPIRE to on_expire.
#include "xfrm/xfrm_backend.hpp"

#include <arpa/inet.h>
#include <linux/udp.h>
#include <netinet/in.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace qkd::dp {

namespace {

constexpr std::uint32_t default_policy_priority = 0x1000;
constexpr std::uint32_t legacy_replay_max =
    32;  // xfrm_usersa_info.replay_window is a 32-bit bitmap
constexpr int event_poll_ms = 200;
#ifndef UDP_ENCAP_ESPINUDP
constexpr std::uint16_t UDP_ENCAP_ESPINUDP = 2;
#endif

unsigned short af(const IpAddress& a) {
    return a.family == IpAddress::Family::v4 ? AF_INET : AF_INET6;
}
void put_addr(xfrm_address_t* out, const IpAddress& a) {
    std::memcpy(out, a.bytes.data(), a.size());
}
std::uint64_t lim(std::uint64_t v) {
    return v == 0 ? XFRM_INF : v;
}
std::string sa_name(const SaId& id) {
    return std::string(to_string(id.direction)) + " SA spi 0x" +
           [&] {
               char b[16];
               std::snprintf(b, sizeof b, "%08x", id.spi);
               return std::string(b);
           }() +
           " dst " + id.outer_dst.to_string();
}

void fill_selector(xfrm_selector* sel, const IpPrefix& src, const IpPrefix& dst,
                   std::uint8_t proto) {
    put_addr(&sel->saddr, src.addr);
    put_addr(&sel->daddr, dst.addr);
    sel->prefixlen_s = src.len;
    sel->prefixlen_d = dst.len;
    sel->family = af(src.addr);
    sel->proto = proto;
}

}  // namespace

nlmsghdr* build_xfrm_newsa(NetlinkSocket& nl, std::uint16_t type, const SaSpec& s) {
    nlmsghdr* nlh = nl.begin(type, type == XFRM_MSG_NEWSA ? NLM_F_CREATE | NLM_F_EXCL : 0);
    auto* sa =
        static_cast<xfrm_usersa_info*>(mnl_nlmsg_put_extra_header(nlh, sizeof(xfrm_usersa_info)));
    sa->family = af(s.outer_dst);
    sa->sel.family = af(s.selectors.empty() ? s.outer_dst : s.selectors.front().local.addr);
    put_addr(&sa->id.daddr, s.outer_dst);
    put_addr(&sa->saddr, s.outer_src);
    sa->id.spi = htonl(s.spi);
    sa->id.proto = IPPROTO_ESP;
    sa->mode = XFRM_MODE_TUNNEL;
    sa->reqid = s.reqid;
    sa->lft.soft_byte_limit = lim(s.soft.bytes);
    sa->lft.hard_byte_limit = lim(s.hard.bytes);
    sa->lft.soft_packet_limit = lim(s.soft.packets);
    sa->lft.hard_packet_limit = lim(s.hard.packets);
    sa->lft.soft_add_expires_seconds = s.soft.seconds;
    sa->lft.hard_add_expires_seconds = s.hard.seconds;

    // RFC 4106 8.1 / kernel rfc4106: the key blob is the AES key followed by the 4-octet salt.
    const std::size_t key_len = s.key.size() + s.salt.size();
    std::vector<std::uint8_t> blob(sizeof(xfrm_algo_aead) + key_len, 0);
    auto* aead = reinterpret_cast<xfrm_algo_aead*>(blob.data());
    std::strncpy(aead->alg_name, "rfc4106(gcm(aes))", sizeof aead->alg_name - 1);
    aead->alg_key_len = static_cast<unsigned>(key_len * 8);
    aead->alg_icv_len = 128;
    std::memcpy(aead->alg_key, s.key.data(), s.key.size());
    std::memcpy(aead->alg_key + s.key.size(), s.salt.data(), s.salt.size());
    mnl_attr_put(nlh, XFRMA_ALG_AEAD, blob.size(), blob.data());
    secure_zero(blob.data(), blob.size());

    if (s.direction == Direction::inbound && (s.esn || s.replay_window > legacy_replay_max)) {
        const std::uint32_t window = s.replay_window ? s.replay_window : 64;
        const std::uint32_t words = (window + 31) / 32;
        std::vector<std::uint8_t> esn(sizeof(xfrm_replay_state_esn) + words * 4, 0);
        auto* r = reinterpret_cast<xfrm_replay_state_esn*>(esn.data());
        r->bmp_len = words;
        r->replay_window = window;
        mnl_attr_put(nlh, XFRMA_REPLAY_ESN_VAL, esn.size(), esn.data());
    } else if (s.direction == Direction::outbound && s.esn) {
        std::vector<std::uint8_t> esn(sizeof(xfrm_replay_state_esn) + 4, 0);
        auto* r = reinterpret_cast<xfrm_replay_state_esn*>(esn.data());
        r->bmp_len = 1;
        r->replay_window = 1;  // the kernel wants a non-zero window with ESN even on outbound SAs
        mnl_attr_put(nlh, XFRMA_REPLAY_ESN_VAL, esn.size(), esn.data());
    } else {
        sa->replay_window =
            static_cast<std::uint8_t>(s.direction == Direction::inbound ? s.replay_window : 0);
    }
    if (s.esn) sa->flags |= XFRM_STATE_ESN;
    if (s.encap) {
        xfrm_encap_tmpl e{};
        e.encap_type = UDP_ENCAP_ESPINUDP;
        // Ports as seen on the wire for this SA: outbound src = ours, inbound src = the peer's.
        e.encap_sport = htons(s.encap->src_port);
        e.encap_dport = htons(s.encap->dst_port);
        mnl_attr_put(nlh, XFRMA_ENCAP, sizeof e, &e);
    }
    return nlh;
}

nlmsghdr* build_xfrm_delsa(NetlinkSocket& nl, const SaId& id) {
    nlmsghdr* nlh = nl.begin(XFRM_MSG_DELSA, 0);
    auto* sid =
        static_cast<xfrm_usersa_id*>(mnl_nlmsg_put_extra_header(nlh, sizeof(xfrm_usersa_id)));
    put_addr(&sid->daddr, id.outer_dst);
    sid->spi = htonl(id.spi);
    sid->family = af(id.outer_dst);
    sid->proto = IPPROTO_ESP;
    return nlh;
}

namespace {

struct Removal {
    SaId id;
    std::chrono::steady_clock::time_point when;
};

class XfrmDataPlane final : public DataPlane {
  public:
    explicit XfrmDataPlane(DataPlaneOptions o) : opt_(std::move(o)) {}
    ~XfrmDataPlane() override {
        stopping_ = true;
        cv_.notify_all();
        if (events_thread_.joinable()) events_thread_.join();
        flush();
    }

    DpResult<void> start() {
        auto nl = NetlinkSocket::open(NETLINK_XFRM);
        if (!nl) return Err{nl.error()};
        nl_ = std::move(*nl);
        auto ev = NetlinkSocket::open(NETLINK_XFRM, 1u << (XFRMNLGRP_EXPIRE - 1));
        if (!ev) return Err{ev.error()};
        events_ = std::move(*ev);
        events_thread_ = std::thread([this] { event_loop(); });
        return {};
    }

    std::string_view backend_name() const override { return "xfrm"; }

    DpResult<void> install_sa(SaSpec spec) override {
        if (spec.spi == 0)
            return Err{
                DpError{DpErrc::invalid_argument, "SPI 0 is reserved: expected a non-zero SPI"}};
        if (spec.reqid == 0)
            return Err{DpError{DpErrc::invalid_argument, "SA with reqid 0: expected a reqid != 0"}};
        if ((spec.key.size() != 16 && spec.key.size() != 32) || spec.salt.size() != 4)
            return Err{DpError{DpErrc::invalid_argument,
                               "AES-GCM key of " + std::to_string(spec.key.size()) +
                                   " octets and salt of " + std::to_string(spec.salt.size()) +
                                   ": expected 16 or 32, and 4"}};
        if (spec.outer_src.family != spec.outer_dst.family)
            return Err{DpError{DpErrc::invalid_argument, "outer addresses of different families"}};
        SaId id{spec.direction, spec.spi, spec.outer_dst};
        std::lock_guard lock(mu_);
        auto r =
            nl_->request(build_xfrm_newsa(*nl_, XFRM_MSG_NEWSA, spec), "install " + sa_name(id));
        if (!r) return r;
        sas_.push_back(id);
        return {};
    }

    DpResult<void> remove_sa(const SaId& id) override {
        std::lock_guard lock(mu_);
        auto r = nl_->request(build_xfrm_delsa(*nl_, id), "delete " + sa_name(id));
        std::erase_if(
            sas_, [&](const SaId& s) { return s.spi == id.spi && s.outer_dst == id.outer_dst; });
        return r;
    }

    DpResult<void> switch_outbound(const SaId& old_in, const SaId& old_out, SaSpec new_out,
                                   std::chrono::milliseconds linger) override {
        // The kernel picks the newest valid SA matching a template (xfrm_state_find), so the
        // new outbound SA takes the traffic as soon as it exists; then the old one goes.
        if (auto r = install_sa(std::move(new_out)); !r) return r;
        (void)remove_sa(old_out);
        std::lock_guard lock(mu_);
        removals_.push_back({old_in, std::chrono::steady_clock::now() + linger});
        cv_.notify_all();
        return {};
    }

    DpResult<void> install_policy(const PolicySpec& p) override { return policy(p, true); }
    DpResult<void> remove_policy(const PolicySpec& p) override { return policy(p, false); }

    DpResult<SaCounters> counters(const SaId& id) override {
        std::lock_guard lock(mu_);
        nlmsghdr* nlh = nl_->begin(XFRM_MSG_GETSA, 0);
        auto* sid =
            static_cast<xfrm_usersa_id*>(mnl_nlmsg_put_extra_header(nlh, sizeof(xfrm_usersa_id)));
        put_addr(&sid->daddr, id.outer_dst);
        sid->spi = htonl(id.spi);
        sid->family = af(id.outer_dst);
        sid->proto = IPPROTO_ESP;
        SaCounters c;
        bool got = false;
        auto r = nl_->request(nlh, "get " + sa_name(id), [&](const nlmsghdr* m) {
            if (m->nlmsg_type != XFRM_MSG_NEWSA ||
                mnl_nlmsg_get_payload_len(m) < sizeof(xfrm_usersa_info))
                return;
            const auto* info = static_cast<const xfrm_usersa_info*>(mnl_nlmsg_get_payload(m));
            c.bytes = info->curlft.bytes;
            c.packets = info->curlft.packets;
            c.dropped_replay = info->stats.replay;
            c.dropped_auth = info->stats.integrity_failed;
            mnl_attr_parse(
                m, sizeof(xfrm_usersa_info),
                [](const nlattr* a, void* data) -> int {
                    auto* cc = static_cast<SaCounters*>(data);
                    if (mnl_attr_get_type(a) == XFRMA_REPLAY_ESN_VAL &&
                        mnl_attr_get_payload_len(a) >= sizeof(xfrm_replay_state_esn)) {
                        const auto* e =
                            static_cast<const xfrm_replay_state_esn*>(mnl_attr_get_payload(a));
                        const std::uint64_t o = (std::uint64_t{e->oseq_hi} << 32) | e->oseq;
                        const std::uint64_t i = (std::uint64_t{e->seq_hi} << 32) | e->seq;
                        cc->seq = o ? o : i;
                    } else if (mnl_attr_get_type(a) == XFRMA_REPLAY_VAL &&
                               mnl_attr_get_payload_len(a) >= sizeof(xfrm_replay_state)) {
                        const auto* e =
                            static_cast<const xfrm_replay_state*>(mnl_attr_get_payload(a));
                        cc->seq = e->oseq ? e->oseq : e->seq;
                    }
                    return MNL_CB_OK;
                },
                &c);
            got = true;
        });
        if (!r) return Err{r.error()};
        if (!got)
            return Err{DpError{DpErrc::not_found, sa_name(id) + ": no answer from the kernel"}};
        return c;
    }

    DpResult<void> handle_udp_esp(std::span<const std::uint8_t>, const UdpEndpoint&) override {
        return Err{
            DpError{DpErrc::not_supported,
                    "handle_udp_esp on the xfrm backend: the kernel decapsulates ESP-in-UDP itself "
                    "(set UDP_ENCAP_ESPINUDP on the port-4500 socket)"}};
    }

    void flush() override {
        std::vector<PolicySpec> pols;
        std::vector<SaId> sas;
        {
            std::lock_guard lock(mu_);
            pols = policies_;
            sas = sas_;
        }
        for (const auto& p : pols) (void)policy(p, false);
        for (const auto& s : sas) (void)remove_sa(s);
        std::lock_guard lock(mu_);
        removals_.clear();
    }

  private:
    DpResult<void> policy(const PolicySpec& p, bool add) {
        if (p.reqid == 0)
            return Err{
                DpError{DpErrc::invalid_argument, "policy with reqid 0: expected the SA's reqid"}};
        std::lock_guard lock(mu_);
        const std::string what = std::string(add ? "install" : "delete") + " policy " +
                                 p.selector.local.to_string() + " <=> " +
                                 p.selector.remote.to_string();
        DpResult<void> first;
        // One PolicySpec = three kernel policies: out (local -> remote), in and fwd (remote ->
        // local).
        for (std::uint8_t dir : {std::uint8_t{XFRM_POLICY_OUT}, std::uint8_t{XFRM_POLICY_IN},
                                 std::uint8_t{XFRM_POLICY_FWD}}) {
            const bool out = dir == XFRM_POLICY_OUT;
            const IpPrefix& src = out ? p.selector.local : p.selector.remote;
            const IpPrefix& dst = out ? p.selector.remote : p.selector.local;
            DpResult<void> r;
            if (add) {
                nlmsghdr* nlh = nl_->begin(XFRM_MSG_NEWPOLICY, NLM_F_CREATE | NLM_F_EXCL);
                auto* pol = static_cast<xfrm_userpolicy_info*>(
                    mnl_nlmsg_put_extra_header(nlh, sizeof(xfrm_userpolicy_info)));
                fill_selector(&pol->sel, src, dst, p.selector.protocol);
                pol->dir = dir;
                pol->action = XFRM_POLICY_ALLOW;
                pol->priority = p.priority ? p.priority : default_policy_priority;
                pol->lft.soft_byte_limit = pol->lft.hard_byte_limit = XFRM_INF;
                pol->lft.soft_packet_limit = pol->lft.hard_packet_limit = XFRM_INF;
                xfrm_user_tmpl t{};
                put_addr(&t.id.daddr, out ? p.outer_remote : p.outer_local);
                put_addr(&t.saddr, out ? p.outer_local : p.outer_remote);
                t.id.proto = IPPROTO_ESP;
                t.family = af(p.outer_local);
                t.reqid = p.reqid;
                t.mode = XFRM_MODE_TUNNEL;
                t.aalgos = t.ealgos = t.calgos = ~0u;
                mnl_attr_put(nlh, XFRMA_TMPL, sizeof t, &t);
                r = nl_->request(nlh, what + " dir " + std::to_string(dir));
            } else {
                nlmsghdr* nlh = nl_->begin(XFRM_MSG_DELPOLICY, 0);
                auto* pid = static_cast<xfrm_userpolicy_id*>(
                    mnl_nlmsg_put_extra_header(nlh, sizeof(xfrm_userpolicy_id)));
                fill_selector(&pid->sel, src, dst, p.selector.protocol);
                pid->dir = dir;
                r = nl_->request(nlh, what + " dir " + std::to_string(dir));
            }
            if (!r && first) first = r;
        }
        if (add && first) policies_.push_back(p);
        if (!add)
            std::erase_if(policies_, [&](const PolicySpec& q) {
                return q.selector == p.selector && q.reqid == p.reqid;
            });
        return first;
    }

    void event_loop() {
        while (!stopping_) {
            (void)events_->receive_events(event_poll_ms, [this](const nlmsghdr* m) {
                if (m->nlmsg_type != XFRM_MSG_EXPIRE ||
                    mnl_nlmsg_get_payload_len(m) < sizeof(xfrm_user_expire))
                    return;
                const auto* e = static_cast<const xfrm_user_expire*>(mnl_nlmsg_get_payload(m));
                ExpiryEvent ev;
                ev.sa.spi = ntohl(e->state.id.spi);
                ev.sa.outer_dst.family =
                    e->state.family == AF_INET ? IpAddress::Family::v4 : IpAddress::Family::v6;
                std::memcpy(ev.sa.outer_dst.bytes.data(), &e->state.id.daddr,
                            ev.sa.outer_dst.size());
                ev.reqid = e->state.reqid;
                ev.hard = e->hard != 0;
                {
                    std::lock_guard lock(mu_);
                    for (const auto& s : sas_)
                        if (s.spi == ev.sa.spi && s.outer_dst == ev.sa.outer_dst)
                            ev.sa.direction = s.direction;
                    if (ev.hard)  // the kernel deletes hard-expired SAs itself
                        std::erase_if(sas_, [&](const SaId& s) {
                            return s.spi == ev.sa.spi && s.outer_dst == ev.sa.outer_dst;
                        });
                }
                if (opt_.on_expire) opt_.on_expire(ev);
            });
            std::vector<SaId> due;
            {
                std::lock_guard lock(mu_);
                const auto now = std::chrono::steady_clock::now();
                std::erase_if(removals_, [&](const Removal& r) {
                    if (r.when > now) return false;
                    due.push_back(r.id);
                    return true;
                });
            }
            for (const auto& id : due) (void)remove_sa(id);
        }
    }

    DataPlaneOptions opt_;
    std::unique_ptr<NetlinkSocket> nl_, events_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<SaId> sas_;
    std::vector<PolicySpec> policies_;
    std::vector<Removal> removals_;
    std::atomic<bool> stopping_{false};
    std::thread events_thread_;
};

}  // namespace

DpResult<std::unique_ptr<DataPlane>> make_xfrm_dataplane(DataPlaneOptions options) {
    auto dp = std::make_unique<XfrmDataPlane>(std::move(options));
    if (auto r = dp->start(); !r) return Err{r.error()};
    return std::unique_ptr<DataPlane>(std::move(dp));
}

}  // namespace qkd::dp
