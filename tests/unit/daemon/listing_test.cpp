// Show answers: peer filter, '*' patterns, paging within the answer size.
#include <gtest/gtest.h>

#include <set>

#include "qkd/daemon/listing.hpp"

using namespace qkd::daemon;

TEST(Listing, Glob) {
    EXPECT_TRUE(glob_match("r1.peers.test", "R1.Peers.Test"));
    EXPECT_TRUE(glob_match("*.peers.test", "r1.peers.test"));
    EXPECT_TRUE(glob_match("r*", "r1.peers.test"));
    EXPECT_TRUE(glob_match("*", ""));
    EXPECT_TRUE(glob_match("a*b*c", "aXXbYYc"));
    EXPECT_FALSE(glob_match("a*b*c", "aXXbYY"));
    EXPECT_FALSE(glob_match("*.peers.test", "r1.peers.test.evil"));
    EXPECT_FALSE(glob_match("r1", "r10"));
    // Long inputs stay cheap (no exponential backtracking).
    EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*b", std::string(200, 'a')));
}

TEST(Listing, PeerFilter) {
    EXPECT_TRUE(peer_matches("", "10.99.0.2:500", "r1.peers.test"));
    EXPECT_TRUE(peer_matches("10.99.0.2", "10.99.0.2:4500", "r1.peers.test"));
    EXPECT_TRUE(peer_matches("10.99.0.2:4500", "10.99.0.2:4500", "r1.peers.test"));
    EXPECT_FALSE(peer_matches("10.99.0.2:500", "10.99.0.2:4500", "r1.peers.test"));
    EXPECT_TRUE(peer_matches("10.99.0.*", "10.99.0.7:500", "x"));
    EXPECT_FALSE(peer_matches("10.99.0.2", "10.99.0.20:500", "x"));
    EXPECT_TRUE(peer_matches("r1.*", "10.99.0.2:500", "r1.peers.test"));
    EXPECT_FALSE(peer_matches("r2.*", "10.99.0.2:500", "r1.peers.test"));
}

namespace {
std::vector<ListRow> rows(std::size_t n, std::size_t pad = 300) {
    std::vector<ListRow> v;
    for (std::size_t i = n; i >= 1; --i)  // out of order on purpose
        v.push_back(ListRow{i, nlohmann::json{{"id", i}, {"gateway", "hub"}, {"pad", std::string(pad, 'x')}}});
    v.push_back(ListRow{0, nlohmann::json{{"id", nullptr}, {"gateway", "waiting"}}});
    return v;
}
}  // namespace

TEST(Listing, PlainArrayWhenItFitsElseAnErrorThatSaysWhatToDo) {
    ControlRequest req;
    auto small = list_answer(rows(10), req);
    ASSERT_TRUE(small);
    ASSERT_TRUE(small->is_array());
    EXPECT_EQ(small->size(), 11u);
    EXPECT_EQ((*small)[0]["gateway"], "waiting");
    EXPECT_EQ((*small)[1]["id"], 1);
    auto big = list_answer(rows(1000), req);
    ASSERT_FALSE(big);
    EXPECT_NE(big.error().message.find("\"after\""), std::string::npos) << big.error().message;
}

TEST(Listing, PagesCoverEveryRowOnceAndFit) {
    for (std::size_t limit : {std::size_t{0}, std::size_t{7}}) {
        ControlRequest req;
        req.after = 0;
        req.limit = limit;
        std::set<std::uint64_t> seen;
        std::size_t waiting = 0, pages = 0;
        for (;;) {
            auto page = list_answer(rows(1000), req);
            ASSERT_TRUE(page);
            ++pages;
            EXPECT_EQ((*page)["total"], 1001);
            auto encoded = encode_response(*page);
            EXPECT_LE(encoded.size(), kMaxControlLine);
            EXPECT_EQ(encoded.find("too large"), std::string::npos);
            if (limit) {
                EXPECT_LE((*page)["items"].size(), limit);
            }
            for (auto& r : (*page)["items"]) {
                if (r["id"].is_null()) ++waiting;
                else EXPECT_TRUE(seen.insert(r["id"].get<std::uint64_t>()).second) << "row listed twice";
            }
            if ((*page)["next"].is_null()) break;
            req.after = (*page)["next"].get<std::uint64_t>();
        }
        EXPECT_EQ(seen.size(), 1000u);
        EXPECT_EQ(waiting, 1u);
        EXPECT_GT(pages, 2u);
    }
}

TEST(Listing, LaterPagesSkipWhatEndedAndShowWhatIsNew) {
    ControlRequest req;
    req.after = 500;
    auto r = rows(600);
    r.erase(r.begin());  // id 600 ended
    r.push_back(ListRow{601, nlohmann::json{{"id", 601}}});
    auto page = list_answer(std::move(r), req);
    ASSERT_TRUE(page);
    auto& items = (*page)["items"];
    EXPECT_EQ(items.front()["id"], 501);
    EXPECT_EQ(items.back()["id"], 601);
    EXPECT_EQ(items.size(), 100u);
    EXPECT_TRUE((*page)["next"].is_null());
}
