// C2SP CCTV ML-KEM-768 vectors: a fully traced run (intermediate), the implicit-rejection
// strcmp trap, the SampleNTT "unlucky" seed needing > 575 SHAKE-128 bytes, and 780 encapsulation
// keys failing the modulus check.
#include <zlib.h>

#include <map>

#include "kat_util.hpp"

namespace qkd::mlkem::kat {
namespace {

constexpr auto kP = ParamSet::MlKem768;

// "name = hex" lines; later duplicates win; lines whose value is not plain hex are ignored.
std::map<std::string, std::vector<std::uint8_t>> parse_cctv(const std::string& text) {
    std::map<std::string, std::vector<std::uint8_t>> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find(" = ");
        if (eq == std::string::npos) continue;
        const std::string value = line.substr(eq + 3);
        if (value.empty() || value.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) continue;
        out[line.substr(0, eq)] = hex(value);
    }
    return out;
}

TEST(MlKemCctv, IntermediateEncapsDecaps) {
    // KeyGen in this file is FIPS 203 ipd (no k byte in G): only Encaps/Decaps are checked.
    auto v = parse_cctv(read_file("cctv/intermediate-ML-KEM-768.txt"));
    ASSERT_TRUE(v.count("ek") && v.count("dk") && v.count("m") && v.count("K") && v.count("c"));
    auto enc = encaps_internal(kP, v["ek"], v["m"]);
    ASSERT_TRUE(enc.ok());
    EXPECT_EQ(enc->ciphertext, v["c"]);
    EXPECT_EQ(bytes(enc->shared_secret), v["K"]);
    auto k = decaps(kP, v["dk"], v["c"]);
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(bytes(*k), v["K"]);
    // A tampered ciphertext must give a different (implicit-rejection) key.
    auto c2 = v["c"];
    c2[0] ^= 1;
    auto k2 = decaps(kP, v["dk"], c2);
    ASSERT_TRUE(k2.ok());
    EXPECT_NE(bytes(*k2), v["K"]);
}

TEST(MlKemCctv, Strcmp) {
    auto v = parse_cctv(read_file("cctv/strcmp-ML-KEM-768.txt"));
    ASSERT_TRUE(v.count("dk") && v.count("c") && v.count("K"));
    auto k = decaps(kP, v["dk"], v["c"]);
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(bytes(*k), v["K"]);
}

TEST(MlKemCctv, Unlucky) {
    auto v = parse_cctv(read_file("cctv/unlucky-ML-KEM-768.txt"));
    ASSERT_TRUE(v.count("d") && v.count("z") && v.count("ek") && v.count("dk") && v.count("m") &&
                v.count("K") && v.count("c"));
    auto kp = keygen_internal(kP, v["d"], v["z"]);
    ASSERT_TRUE(kp.ok());
    EXPECT_EQ(kp->ek, v["ek"]);
    EXPECT_EQ(bytes(kp->dk), v["dk"]);
    auto enc = encaps_internal(kP, v["ek"], v["m"]);
    ASSERT_TRUE(enc.ok());
    EXPECT_EQ(enc->ciphertext, v["c"]);
    EXPECT_EQ(bytes(enc->shared_secret), v["K"]);
    auto k = decaps(kP, v["dk"], v["c"]);
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(bytes(*k), v["K"]);
}

TEST(MlKemCctv, ModulusCheckRejects) {
    const std::string path = vector_path("cctv/modulus-ML-KEM-768.txt.gz");
    gzFile f = gzopen(path.c_str(), "rb");
    ASSERT_NE(f, nullptr) << "cannot open " << path;
    std::string text;
    char buf[65536];
    int got;
    while ((got = gzread(f, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(got));
    gzclose(f);
    std::istringstream in(text);
    std::string line;
    int n = 0;
    const std::vector<std::uint8_t> m(32, 0x42);
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        const auto ek = hex(line);
        ASSERT_EQ(ek.size(), ek_size(kP)) << "line " << n + 1;
        EXPECT_FALSE(check_ek(kP, ek)) << "line " << n + 1;
        auto r = encaps_internal(kP, ek, m);
        ASSERT_FALSE(r.ok()) << "line " << n + 1;
        EXPECT_EQ(r.error(), Error::BadEncapsulationKey);
        ++n;
    }
    EXPECT_EQ(n, 780);
}

}  // namespace
}  // namespace qkd::mlkem::kat
