// The xfrm netlink messages as the kernel will parse them, the "auto" probe and the factory.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/xfrm.h>
#include <netinet/in.h>

#include <cstring>

#include "xfrm/xfrm_backend.hpp"

using namespace qkd::dp;

namespace {

struct Attrs {
    const nlattr* tb[XFRMA_MAX + 1] = {};
};

Attrs parse(const nlmsghdr* nlh) {
    Attrs a;
    mnl_attr_parse(
        nlh, sizeof(xfrm_usersa_info),
        [](const nlattr* at, void* d) -> int {
            auto* x = static_cast<Attrs*>(d);
            if (mnl_attr_get_type(at) <= XFRMA_MAX) x->tb[mnl_attr_get_type(at)] = at;
            return MNL_CB_OK;
        },
        &a);
    return a;
}

SaSpec spec(bool esn, bool encap) {
    SaSpec s;
    s.direction = Direction::inbound;
    s.spi = 0xc0ffee01;
    s.reqid = 42;
    s.outer_src = *IpAddress::parse("10.77.0.2");
    s.outer_dst = *IpAddress::parse("10.77.0.1");
    std::vector<std::uint8_t> k(32);
    for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(i);
    s.key = qkd::SecretBytes(k);
    s.salt = qkd::SecretBytes(std::vector<std::uint8_t>{0xaa, 0xbb, 0xcc, 0xdd});
    s.esn = esn;
    s.replay_window = 128;
    s.hard.bytes = 1000000;
    s.soft.seconds = 3000;
    s.hard.seconds = 3600;
    if (encap) s.encap = UdpEncap{4500, 31337};
    return s;
}

}  // namespace

TEST(XfrmMessage, NewSaCarriesKeySaltIcvAndTunnelMode) {
    auto nl = NetlinkSocket::open(NETLINK_XFRM);
    ASSERT_TRUE(nl.ok()) << nl.error().message;
    auto s = spec(false, false);
    const nlmsghdr* nlh = build_xfrm_newsa(**nl, XFRM_MSG_NEWSA, s);
    EXPECT_EQ(nlh->nlmsg_type, XFRM_MSG_NEWSA);
    EXPECT_TRUE(nlh->nlmsg_flags & NLM_F_CREATE);
    const auto* info = static_cast<const xfrm_usersa_info*>(mnl_nlmsg_get_payload(nlh));
    EXPECT_EQ(ntohl(info->id.spi), 0xc0ffee01u);
    EXPECT_EQ(info->id.proto, IPPROTO_ESP);
    EXPECT_EQ(info->mode, XFRM_MODE_TUNNEL);
    EXPECT_EQ(info->reqid, 42u);
    EXPECT_EQ(info->family, AF_INET);
    EXPECT_EQ(std::memcmp(&info->id.daddr, s.outer_dst.bytes.data(), 4), 0);
    EXPECT_EQ(std::memcmp(&info->saddr, s.outer_src.bytes.data(), 4), 0);
    EXPECT_EQ(info->lft.hard_byte_limit, 1000000u);
    EXPECT_EQ(info->lft.soft_byte_limit, XFRM_INF);
    EXPECT_EQ(info->lft.soft_add_expires_seconds, 3000u);
    EXPECT_EQ(info->lft.hard_add_expires_seconds, 3600u);
    EXPECT_EQ(info->flags & XFRM_STATE_ESN, 0);
    auto a = parse(nlh);
    ASSERT_NE(a.tb[XFRMA_ALG_AEAD], nullptr);
    const auto* aead =
        static_cast<const xfrm_algo_aead*>(mnl_attr_get_payload(a.tb[XFRMA_ALG_AEAD]));
    EXPECT_STREQ(aead->alg_name, "rfc4106(gcm(aes))");
    EXPECT_EQ(aead->alg_key_len, 288u);  // RFC 4106 8.1: 256-bit key + 32-bit salt
    EXPECT_EQ(aead->alg_icv_len, 128u);
    EXPECT_EQ(aead->alg_key[0], 0);
    EXPECT_EQ(static_cast<std::uint8_t>(aead->alg_key[31]), 31);
    EXPECT_EQ(static_cast<std::uint8_t>(aead->alg_key[32]), 0xaa);
    EXPECT_EQ(static_cast<std::uint8_t>(aead->alg_key[35]), 0xdd);
    // A 128-packet window does not fit the legacy 32-bit bitmap: the ESN replay state carries it.
    ASSERT_NE(a.tb[XFRMA_REPLAY_ESN_VAL], nullptr);
    const auto* r =
        static_cast<const xfrm_replay_state_esn*>(mnl_attr_get_payload(a.tb[XFRMA_REPLAY_ESN_VAL]));
    EXPECT_EQ(r->replay_window, 128u);
    EXPECT_EQ(r->bmp_len, 4u);
    EXPECT_EQ(info->replay_window, 0);  // the kernel refuses both at once
    EXPECT_EQ(a.tb[XFRMA_ENCAP], nullptr);
}

TEST(XfrmMessage, EsnAndUdpEncap) {
    auto nl = NetlinkSocket::open(NETLINK_XFRM);
    ASSERT_TRUE(nl.ok());
    auto s = spec(true, true);
    const nlmsghdr* nlh = build_xfrm_newsa(**nl, XFRM_MSG_NEWSA, s);
    const auto* info = static_cast<const xfrm_usersa_info*>(mnl_nlmsg_get_payload(nlh));
    EXPECT_NE(info->flags & XFRM_STATE_ESN, 0);
    auto a = parse(nlh);
    ASSERT_NE(a.tb[XFRMA_ENCAP], nullptr);
    const auto* e = static_cast<const xfrm_encap_tmpl*>(mnl_attr_get_payload(a.tb[XFRMA_ENCAP]));
    EXPECT_EQ(e->encap_type, 2);  // UDP_ENCAP_ESPINUDP (RFC 3948)
    EXPECT_EQ(ntohs(e->encap_sport), 4500);
    EXPECT_EQ(ntohs(e->encap_dport), 31337);
}

TEST(XfrmMessage, DelSaNamesDstSpiProto) {
    auto nl = NetlinkSocket::open(NETLINK_XFRM);
    ASSERT_TRUE(nl.ok());
    const nlmsghdr* nlh =
        build_xfrm_delsa(**nl, SaId{Direction::outbound, 0x1001, *IpAddress::parse("10.77.0.2")});
    EXPECT_EQ(nlh->nlmsg_type, XFRM_MSG_DELSA);
    const auto* id = static_cast<const xfrm_usersa_id*>(mnl_nlmsg_get_payload(nlh));
    EXPECT_EQ(ntohl(id->spi), 0x1001u);
    EXPECT_EQ(id->proto, IPPROTO_ESP);
    EXPECT_EQ(id->family, AF_INET);
}

TEST(Factory, ProbeAndBackendChoice) {
    std::string why;
    const bool esp = kernel_has_esp(&why);
    if (!esp) {
        EXPECT_FALSE(why.empty());
        auto x = make_dataplane("xfrm", {});
        ASSERT_FALSE(x.ok());
        EXPECT_EQ(x.error().code, DpErrc::unavailable);
        EXPECT_NE(x.error().message.find(why), std::string::npos);
    }
    std::printf("kernel ESP: %s %s\n", esp ? "yes" : "no", why.c_str());
    auto bad = make_dataplane("kernel", {});
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, DpErrc::invalid_argument);
    EXPECT_NE(bad.error().message.find("\"kernel\""), std::string::npos);
}
