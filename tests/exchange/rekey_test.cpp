// CREATE_CHILD_SA: child rekey with and without PFS, IKE SA rekey, simultaneous rekeys (RFC 7296
// 1.3, 2.8, 2.8.1), kernel expiry events and lifetimes.
#include "harness.hpp"

using namespace qkd::ike;
using namespace qkd::ike::test;

namespace {
void up(Pair& p) {
    ASSERT_TRUE(p.a.engine.initiate("to-b").ok());
    p.net.pump();
    ASSERT_EQ(p.a.installed.size(), 1u);
}
}  // namespace

class ChildRekey : public ::testing::TestWithParam<const char*> {};

TEST_P(ChildRekey, NewSaReplacesOldOnBothSides) {
    Pair p;
    p.add(gateway(true, "aes256gcm16-prfsha512-ecp521", GetParam()), gateway(false, "aes256gcm16-prfsha512-ecp521", GetParam()));
    up(p);
    const auto old_a = p.a.installed.begin()->first;
    ASSERT_TRUE(p.a.engine.rekey_child("to-b").ok());
    // HDR, SK {N(REKEY_SA), SA, Ni, [KEi], TSi, TSr}  -->
    p.net.pump(1);
    //                  <--  HDR, SK {SA, Nr, [KEr], TSi, TSr}
    // B installed the new SA and keeps the old one until A deletes it.
    EXPECT_EQ(p.b.installed.size(), 2u);
    p.net.pump(1);
    // HDR, SK {D(ESP, old SPI)}  -->   <-- HDR, SK {D(ESP, old SPI)}
    p.net.pump();
    ASSERT_EQ(p.a.installed.size(), 1u);
    EXPECT_NE(p.a.installed.begin()->first, old_a);
    expect_matching_children(p.a, p.b);
    auto children = p.a.engine.list_child_sas();
    ASSERT_EQ(children.size(), 1u);
    const bool pfs = std::string(GetParam()).find("ecp") != std::string::npos;
    EXPECT_EQ(children[0].algorithm, pfs ? "AES256-GCM16/DH21" : "AES256-GCM16");
    EXPECT_EQ(p.a.engine.stats().child_rekeyed, 1u);
    EXPECT_EQ(p.a.events[1].rfind("rekeyed " + std::to_string(old_a), 0), 0u);
}

INSTANTIATE_TEST_SUITE_P(Pfs, ChildRekey, ::testing::Values("aes256gcm16", "aes256gcm16-ecp521"));

TEST(Rekey, ChildRekeyPfsInvalidKeRetry) {
    Pair p;
    // A offers PFS with ECP-256 first, B only ECP-521: INVALID_KE_PAYLOAD, then a retry.
    p.add(gateway(true, "aes256gcm16-prfsha512-ecp521", "aes256gcm16-ecp256-ecp521"),
          gateway(false, "aes256gcm16-prfsha512-ecp521", "aes256gcm16-ecp521"));
    up(p);
    ASSERT_TRUE(p.a.engine.rekey_child("to-b").ok());
    p.net.pump();
    ASSERT_EQ(p.a.installed.size(), 1u);
    expect_matching_children(p.a, p.b);
    EXPECT_EQ(p.a.engine.list_child_sas()[0].algorithm, "AES256-GCM16/DH21");
}

TEST(Rekey, IkeRekeyMovesChildrenAndKeepsWorking) {
    Pair p;
    p.add_default();
    up(p);
    const auto before = p.a.engine.list_ike_sas()[0];
    ASSERT_TRUE(p.a.engine.rekey_ike("to-b").ok());
    // HDR, SK {SA, Ni, KEi}  -->   <-- HDR, SK {SA, Nr, KEr}
    // HDR, SK {D(IKE)} (old SA)  -->   <-- HDR, SK {}
    p.net.pump();
    auto ia = p.a.engine.list_ike_sas(), ib = p.b.engine.list_ike_sas();
    ASSERT_EQ(ia.size(), 1u);
    ASSERT_EQ(ib.size(), 1u);
    EXPECT_NE(ia[0].spi_i, before.spi_i);
    EXPECT_EQ(ia[0].spi_i, ib[0].spi_i);
    EXPECT_EQ(ia[0].spi_r, ib[0].spi_r);
    EXPECT_EQ(ia[0].child_sas, 1u);
    EXPECT_EQ(p.a.installed.size(), 1u);  // the child SA survived untouched
    EXPECT_EQ(p.a.engine.stats().ike_rekeyed, 1u);
    ASSERT_EQ(p.a.ike_events.size(), 2u);  // Up, then Rekeyed; the old SA ends without a Down
    EXPECT_EQ(p.a.ike_events[1].rfind("Rekeyed", 0), 0u) << p.a.ike_events[1];
    EXPECT_EQ(p.b.ike_events.back().rfind("Rekeyed", 0), 0u) << p.b.ike_events.back();
    // The new IKE SA's keys agree: a child rekey and a liveness check over it succeed.
    ASSERT_TRUE(p.b.engine.rekey_child("to-a").ok());
    p.net.pump();
    ASSERT_EQ(p.a.installed.size(), 1u);
    expect_matching_children(p.a, p.b);
    EXPECT_EQ(p.a.engine.stats().child_rekeyed, 1u);
    // And the responder of the rekey can rekey the IKE SA again.
    ASSERT_TRUE(p.b.engine.rekey_ike("to-a").ok());
    p.net.pump();
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    EXPECT_EQ(p.b.engine.list_ike_sas()[0].spi_i, p.a.engine.list_ike_sas()[0].spi_i);
    EXPECT_TRUE(p.b.engine.list_ike_sas()[0].initiator);
}

TEST(Rekey, SimultaneousChildRekeyLeavesExactlyOnePair) {
    for (std::uint64_t seed = 0; seed < 6; ++seed) {
        Pair p;
        p.a.rng.s += seed * 7919;  // different nonces: either side may win
        p.add_default();
        up(p);
        // Both ends start a rekey of the same child SA before seeing the other's request.
        ASSERT_TRUE(p.a.engine.rekey_child("to-b").ok());
        ASSERT_TRUE(p.b.engine.rekey_child("to-a").ok());
        p.net.pump();
        ASSERT_EQ(p.a.installed.size(), 1u) << "seed " << seed;
        ASSERT_EQ(p.b.installed.size(), 1u) << "seed " << seed;
        expect_matching_children(p.a, p.b);
        EXPECT_EQ(p.a.engine.list_child_sas().size(), 1u);
        EXPECT_EQ(p.b.engine.list_child_sas().size(), 1u);
    }
}

TEST(Rekey, SimultaneousIkeRekeyResolvedByLowestNonce) {
    for (std::uint64_t seed = 0; seed < 6; ++seed) {
        Pair p;
        p.b.rng.s += seed * 104729;  // either side may hold the lowest nonce
        p.add_default();
        up(p);
        // Both ends send HDR, SK {SA, Ni, KEi} before seeing the other's request (RFC 7296 2.8.2).
        ASSERT_TRUE(p.a.engine.rekey_ike("to-b").ok());
        ASSERT_TRUE(p.b.engine.rekey_ike("to-a").ok());
        p.net.pump();  // no timers: resolved without TEMPORARY_FAILURE retries
        auto ia = p.a.engine.list_ike_sas(), ib = p.b.engine.list_ike_sas();
        ASSERT_EQ(ia.size(), 1u) << "seed " << seed;
        ASSERT_EQ(ib.size(), 1u) << "seed " << seed;
        EXPECT_EQ(ia[0].spi_i, ib[0].spi_i);
        EXPECT_EQ(ia[0].spi_r, ib[0].spi_r);
        EXPECT_EQ(ia[0].child_sas, 1u);
        EXPECT_EQ(ib[0].child_sas, 1u);
        expect_matching_children(p.a, p.b);
        // The survivor works: rekey its child SA from B.
        ASSERT_TRUE(p.b.engine.rekey_child("to-a").ok());
        p.net.pump();
        ASSERT_EQ(p.a.installed.size(), 1u);
        expect_matching_children(p.a, p.b);
    }
}

TEST(Rekey, LifetimesDriveRekeysAndKernelExpiryToo) {
    Pair p;
    auto ga = gateway(true), gb = gateway(false);
    ga.child_lifetime = std::chrono::seconds(120);
    ga.child_rekey_margin = std::chrono::seconds(30);
    ga.ike_lifetime = std::chrono::seconds(600);
    ga.ike_rekey_margin = std::chrono::seconds(60);
    gb.dpd_interval = ga.dpd_interval = std::chrono::seconds(0);
    p.add(std::move(ga), std::move(gb));
    up(p);
    const auto first = p.a.installed.begin()->first;
    p.net.run_for(std::chrono::seconds(100));
    ASSERT_EQ(p.a.installed.size(), 1u);
    EXPECT_NE(p.a.installed.begin()->first, first);  // rekeyed by its soft lifetime
    expect_matching_children(p.a, p.b);
    p.net.run_for(std::chrono::seconds(500));
    EXPECT_GE(p.a.engine.stats().ike_rekeyed, 1u);
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    expect_matching_children(p.a, p.b);
    // An xfrm soft-expire event on B starts a rekey from B's side.
    const auto spi_b = p.b.installed.begin()->first;
    const auto rekeyed = p.b.engine.stats().child_rekeyed;
    p.b.engine.on_child_sa_expired(spi_b, false);
    p.net.pump();
    EXPECT_EQ(p.b.engine.stats().child_rekeyed, rekeyed + 1);
    expect_matching_children(p.a, p.b);
    // A hard expiry deletes it.
    p.a.engine.on_child_sa_expired(p.a.installed.begin()->first, true);
    p.net.pump();
    EXPECT_TRUE(p.a.installed.empty());
    EXPECT_TRUE(p.b.installed.empty());
}

TEST(Rekey, RekeysAndDeletesSurviveLossyIkePath) {
    Pair p;
    p.add_default();
    up(p);
    // Every other datagram in each direction is lost from now on.
    int n[2] = {0, 0};
    p.net.filter = [&](Datagram& d) { return n[d.from]++ % 2 == 1; };
    ASSERT_TRUE(p.a.engine.rekey_child("to-b").ok());
    p.net.run_for(std::chrono::seconds(40));
    ASSERT_EQ(p.a.installed.size(), 1u);
    expect_matching_children(p.a, p.b);
    EXPECT_EQ(p.b.engine.stats().child_rekeyed, 1u);  // the retransmitted request was not processed twice
    ASSERT_TRUE(p.b.engine.rekey_ike("to-a").ok());
    // The old IKE SA's DELETE may lose its answer for good (A has already removed the SA); B then
    // closes it after its retransmissions (about 41 s).
    p.net.run_for(std::chrono::seconds(60));
    ASSERT_EQ(p.a.engine.list_ike_sas().size(), 1u);
    ASSERT_EQ(p.b.engine.list_ike_sas().size(), 1u);
    EXPECT_EQ(p.a.engine.list_ike_sas()[0].spi_i, p.b.engine.list_ike_sas()[0].spi_i);
    expect_matching_children(p.a, p.b);
}

TEST(Rekey, CrossingIkeDeletesBothComplete) {
    Pair p;
    p.add_default();
    up(p);
    // HDR, SK {D(IKE)} -->  <-- HDR, SK {D(IKE)}, sent at the same time by both ends
    ASSERT_TRUE(p.a.engine.terminate("to-b").ok());
    ASSERT_TRUE(p.b.engine.terminate("to-a").ok());
    p.net.run_for(std::chrono::seconds(60));
    EXPECT_TRUE(p.a.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.b.engine.list_ike_sas().empty());
    EXPECT_TRUE(p.a.installed.empty());
    EXPECT_TRUE(p.b.installed.empty());
    EXPECT_EQ(p.a.engine.stats().retransmits, 0u);  // each side's request was answered
}
