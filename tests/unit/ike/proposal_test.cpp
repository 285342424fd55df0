#include <gtest/gtest.h>

#include "qkd/ike/proposal.hpp"
#include "qkd/ike/types.hpp"

using namespace qkd::ike;
using qkd::crypto::KeGroup;
using qkd::crypto::PrfAlg;

TEST(Proposal, ParsesStrongSwanStrings) {
    auto p = parse_ike_proposals("aes256gcm16-prfsha512-ecp521");
    ASSERT_TRUE(p.ok());
    ASSERT_EQ(p->size(), 1u);
    EXPECT_EQ((*p)[0].encr[0], (EncrAlg{EncrId::AesGcm16, 256}));
    EXPECT_EQ((*p)[0].prf[0], PrfAlg::HmacSha512);
    EXPECT_EQ((*p)[0].ke[0], KeGroup::Ecp521);
    auto multi = parse_ike_proposals("aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-curve25519-modp2048, aes128gcm16-prfsha256-ecp256");
    ASSERT_TRUE(multi.ok());
    EXPECT_EQ(multi->size(), 2u);
    EXPECT_EQ((*multi)[0].ke.size(), 3u);
    auto esp = parse_esp_proposals("aes256gcm16-ecp521-esn-noesn");
    ASSERT_TRUE(esp.ok());
    EXPECT_EQ((*esp)[0].ke[0], KeGroup::Ecp521);
    EXPECT_EQ((*esp)[0].esn, (std::vector<bool>{true, false}));
    auto plain = parse_esp_proposals("aes128gcm16");
    ASSERT_TRUE(plain.ok());
    EXPECT_TRUE((*plain)[0].ke.empty());
    EXPECT_EQ((*plain)[0].esn, std::vector<bool>{false});
}

TEST(Proposal, ErrorsQuoteTheInput) {
    auto bad = parse_ike_proposals("aes256gcm16-prfsha512-ecp999");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ProposalErrc::UnknownToken);
    EXPECT_NE(bad.error().message.find("ecp999"), std::string::npos);
    EXPECT_NE(bad.error().message.find("ecp521"), std::string::npos);  // says what is expected
    EXPECT_EQ(parse_ike_proposals("aes256gcm16-ecp521").error().code, ProposalErrc::Missing);
    EXPECT_EQ(parse_ike_proposals("").error().code, ProposalErrc::Empty);
    EXPECT_EQ(parse_ike_proposals("aes256gcm16-prfsha512-ecp521,").error().code, ProposalErrc::Empty);
    EXPECT_EQ(parse_esp_proposals("aes256cbc").error().code, ProposalErrc::UnknownToken);
    EXPECT_EQ(parse_esp_proposals("ecp521").error().code, ProposalErrc::Missing);
}

TEST(Proposal, AlgorithmStrings) {
    EXPECT_EQ(algorithm_string({EncrId::AesGcm16, 256}, KeGroup::Ecp521), "PSK/DH21/AES256-GCM16");
    EXPECT_EQ(algorithm_string({EncrId::AesGcm16, 128}, KeGroup::Curve25519), "PSK/DH31/AES128-GCM16");
    EXPECT_EQ(ike_proposal_string({EncrId::AesGcm16, 256}, PrfAlg::HmacSha512, KeGroup::Ecp521), "aes256gcm16-prfsha512-ecp521");
    EXPECT_EQ(esp_proposal_string({EncrId::AesGcm16, 256}, KeGroup::None, true), "aes256gcm16-esn");
    EXPECT_EQ(esp_algorithm_string({EncrId::AesGcm16, 256}, KeGroup::Ecp521), "AES256-GCM16/DH21");
}

TEST(Types, AddressesSelectorsIdentities) {
    auto ts = TrafficSelector::parse_cidr("10.1.2.3/16");
    ASSERT_TRUE(ts.has_value());
    EXPECT_EQ(ts->start.str(), "10.1.0.0");
    EXPECT_EQ(ts->end.str(), "10.1.255.255");
    EXPECT_EQ(ts->str(), "10.1.0.0/16");
    EXPECT_EQ(TrafficSelector::parse_cidr("10.0.0.1")->str(), "10.0.0.1/32");
    EXPECT_EQ(TrafficSelector::parse_cidr("0.0.0.0/0")->str(), "0.0.0.0/0");
    EXPECT_EQ(TrafficSelector::parse_cidr("2001:db8::/33")->end.str(), "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff");
    EXPECT_FALSE(TrafficSelector::parse_cidr("10.0.0.0/33").has_value());
    EXPECT_FALSE(TrafficSelector::parse_cidr("10.0.0/8").has_value());
    EXPECT_FALSE(TrafficSelector::parse_cidr("10.0.0.0/x").has_value());
    EXPECT_EQ(Identity::parse("192.0.2.1")->type, IdType::Ipv4);
    EXPECT_EQ(Identity::parse("@gw.example")->str(), "gw.example");
    EXPECT_EQ(Identity::parse("gw.example")->type, IdType::Fqdn);
    EXPECT_EQ(Identity::parse("user@gw.example")->type, IdType::Rfc822);
    EXPECT_EQ(Identity::parse("@#0a0b")->data, (std::vector<std::uint8_t>{10, 11}));
    EXPECT_FALSE(Identity::parse("").has_value());
    EXPECT_FALSE(Identity::parse("@").has_value());
    EXPECT_EQ((Endpoint{IpAddr::v4(192, 0, 2, 1), 500}).str(), "192.0.2.1[500]");
}
