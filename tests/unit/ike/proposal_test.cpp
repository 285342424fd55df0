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

// strongSwan 6 syntax for RFC 9370 additional key exchanges and ML-KEM (issue 15).
TEST(Proposal, AdditionalKeyExchanges) {
    auto p = parse_ike_proposals("aes256gcm16-prfsha512-ecp521-ke1_mlkem768");
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_EQ((*p)[0].ke, std::vector<KeGroup>{KeGroup::Ecp521});
    EXPECT_EQ((*p)[0].addke[0], std::vector<KeGroup>{KeGroup::MlKem768});
    for (std::size_t n = 1; n < kMaxAdditionalKe; ++n) EXPECT_TRUE((*p)[0].addke[n].empty());

    auto two = parse_ike_proposals("aes256gcm16-prfsha512-x25519-ke1_mlkem768-ke2_mlkem1024");
    ASSERT_TRUE(two.ok());
    EXPECT_EQ((*two)[0].ke, std::vector<KeGroup>{KeGroup::Curve25519});  // x25519 = curve25519 = 31
    EXPECT_EQ((*two)[0].addke[1], std::vector<KeGroup>{KeGroup::MlKem1024});

    auto optional = parse_ike_proposals("aes256gcm16-prfsha512-ecp521-ke1_mlkem768-ke1_none");
    ASSERT_TRUE(optional.ok());
    EXPECT_EQ((*optional)[0].addke[0], (std::vector<KeGroup>{KeGroup::MlKem768, KeGroup::None}));

    auto pq_only = parse_ike_proposals("aes256gcm16-prfsha512-mlkem768");
    ASSERT_TRUE(pq_only.ok());
    EXPECT_EQ((*pq_only)[0].ke, std::vector<KeGroup>{KeGroup::MlKem768});

    auto seven = parse_ike_proposals(
        "aes256gcm16-prfsha512-ecp256-ke1_ecp384-ke2_ecp521-ke3_curve25519-ke4_mlkem512-ke5_mlkem768-ke6_mlkem1024-"
        "ke7_modp2048-ke7_none, aes128gcm16-prfsha256-ecp521");
    ASSERT_TRUE(seven.ok()) << seven.error().message;
    ASSERT_EQ(seven->size(), 2u);
    EXPECT_EQ((*seven)[0].addke[6], (std::vector<KeGroup>{KeGroup::Modp2048, KeGroup::None}));
    EXPECT_EQ((*seven)[0].addke[3], std::vector<KeGroup>{KeGroup::MlKem512});
    for (const auto& slot : (*seven)[1].addke) EXPECT_TRUE(slot.empty());

    auto esp = parse_esp_proposals("aes256gcm16-ecp521-ke1_mlkem768, aes256gcm16-mlkem768-esn");
    ASSERT_TRUE(esp.ok()) << esp.error().message;
    EXPECT_EQ((*esp)[0].ke, std::vector<KeGroup>{KeGroup::Ecp521});
    EXPECT_EQ((*esp)[0].addke[0], std::vector<KeGroup>{KeGroup::MlKem768});
    EXPECT_EQ((*esp)[1].ke, std::vector<KeGroup>{KeGroup::MlKem768});
    EXPECT_EQ((*esp)[1].esn, std::vector<bool>{true});
}

// A bad string names the token and says what was expected.
TEST(Proposal, AdditionalKeyExchangeErrors) {
    struct Case {
        std::string text, want;
        ProposalErrc code;
    } cases[] = {
        {"aes256gcm16-prfsha512-ecp521-ke8_mlkem768", "\"ke8_mlkem768\" in IKE proposal", ProposalErrc::UnknownToken},
        {"aes256gcm16-prfsha512-ecp521-ke8_mlkem768", "expected ke1_ .. ke7_", ProposalErrc::UnknownToken},
        {"aes256gcm16-prfsha512-ecp521-ke0_mlkem768", "names round 0", ProposalErrc::UnknownToken},
        {"aes256gcm16-prfsha512-ecp521-ke1_kyber768", "unknown key exchange method \"kyber768\"", ProposalErrc::UnknownToken},
        {"aes256gcm16-prfsha512-ecp521-ke1_kyber768", "mlkem768", ProposalErrc::UnknownToken},
        {"aes256gcm16-prfsha512-ecp521-ke1_", "unknown key exchange method \"\"", ProposalErrc::UnknownToken},
        {"aes256gcm16-prfsha512-mlkem999", "unknown algorithm \"mlkem999\"", ProposalErrc::UnknownToken},
        {"aes256gcm16-prfsha512-mlkem999", "ke1_<method> .. ke7_<method>", ProposalErrc::UnknownToken},
        {"aes256gcm16-prfsha512-ke1_mlkem768", "needs an encryption algorithm, a PRF and a key exchange", ProposalErrc::Missing},
        {"aes256gcm16-ke1_mlkem768", "no key exchange method for the first one", ProposalErrc::Missing},
        {"aes256gcm16-ecp521-ke9_none", "\"ke9_none\" in ESP proposal", ProposalErrc::UnknownToken},
    };
    for (const auto& c : cases) {
        auto r = c.text.find("prf") != std::string::npos ? parse_ike_proposals(c.text).error()
                                                         : parse_esp_proposals(c.text).error();
        EXPECT_EQ(r.code, c.code) << c.text;
        EXPECT_NE(r.message.find(c.want), std::string::npos) << c.text << ": " << r.message;
    }
}

TEST(Proposal, AlgorithmStringsWithAdditionalExchanges) {
    const EncrAlg aes256{EncrId::AesGcm16, 256};
    AdditionalKeChoice mlkem{};
    mlkem[0] = KeGroup::MlKem768;
    EXPECT_EQ(algorithm_string(aes256, KeGroup::Ecp521, mlkem), "PSK/DH21+MLKEM768/AES256-GCM16");
    EXPECT_EQ(algorithm_string(aes256, KeGroup::MlKem768), "PSK/MLKEM768/AES256-GCM16");
    AdditionalKeChoice two{};
    two[0] = KeGroup::MlKem768;
    two[1] = KeGroup::MlKem1024;
    EXPECT_EQ(algorithm_string(aes256, KeGroup::Curve25519, two), "PSK/DH31+MLKEM768+MLKEM1024/AES256-GCM16");
    AdditionalKeChoice gap{};  // ADDKE1 NONE, ADDKE2 ML-KEM-768: printed in order, NONE left out
    gap[1] = KeGroup::MlKem768;
    EXPECT_EQ(algorithm_string(aes256, KeGroup::Ecp521, gap), "PSK/DH21+MLKEM768/AES256-GCM16");
    EXPECT_EQ(esp_algorithm_string(aes256, KeGroup::Ecp521, mlkem), "AES256-GCM16/DH21+MLKEM768");
    EXPECT_EQ(esp_algorithm_string(aes256, KeGroup::None, mlkem), "AES256-GCM16");
    EXPECT_EQ(ike_proposal_string(aes256, PrfAlg::HmacSha512, KeGroup::Ecp521, mlkem), "aes256gcm16-prfsha512-ecp521-ke1_mlkem768");
    EXPECT_EQ(ike_proposal_string(aes256, PrfAlg::HmacSha512, KeGroup::Ecp521, gap), "aes256gcm16-prfsha512-ecp521-ke2_mlkem768");
    EXPECT_EQ(ike_proposal_string(aes256, PrfAlg::HmacSha512, KeGroup::MlKem768), "aes256gcm16-prfsha512-mlkem768");
    EXPECT_EQ(esp_proposal_string(aes256, KeGroup::Ecp521, true, mlkem), "aes256gcm16-ecp521-ke1_mlkem768-esn");
    EXPECT_EQ(ke_method_label(KeGroup::MlKem1024), "MLKEM1024");
    // What the strings print parses back to the same choice.
    auto back = parse_ike_proposals(ike_proposal_string(aes256, PrfAlg::HmacSha512, KeGroup::Curve25519, two));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ((*back)[0].addke[1], std::vector<KeGroup>{KeGroup::MlKem1024});
}
