// Engine child SA keys -> data-plane SA specs and policies; engine info -> control JSON.
#include <cstdio>

#include "qkd/daemon/convert.hpp"

namespace qkd::daemon {

namespace {
using Fail = Err<DaemonError>;
DaemonError dp_err(std::string m) { return DaemonError{Errc::dataplane, std::move(m)}; }

std::string hex32(std::uint32_t v) {
    char b[16];
    std::snprintf(b, sizeof b, "%08x", v);
    return b;
}
std::string hex64(std::uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}
}  // namespace

dp::IpAddress to_dp(const ike::IpAddr& a) {
    dp::IpAddress r;
    r.family = a.family == 4 ? dp::IpAddress::Family::v4 : dp::IpAddress::Family::v6;
    r.bytes = a.bytes;
    return r;
}

Result<dp::IpPrefix, DaemonError> ts_to_prefix(const ike::TrafficSelector& ts) {
    if (ts.start.family != ts.end.family) return Fail{dp_err("traffic selector " + ts.str() + " mixes address families")};
    const std::size_t n = ts.start.size();
    // The range is a prefix when start and end share the first `len` bits, start has only zeros
    // after them and end only ones.
    std::size_t len = 0;
    while (len < n * 8) {
        auto bit = [&](const ike::IpAddr& a, std::size_t i) { return (a.bytes[i / 8] >> (7 - i % 8)) & 1; };
        if (bit(ts.start, len) != bit(ts.end, len)) break;
        ++len;
    }
    for (std::size_t i = len; i < n * 8; ++i) {
        bool s = (ts.start.bytes[i / 8] >> (7 - i % 8)) & 1, e = (ts.end.bytes[i / 8] >> (7 - i % 8)) & 1;
        if (s || !e) return Fail{dp_err("traffic selector " + ts.str() + " is not a CIDR block; the data plane needs prefixes")};
    }
    dp::IpPrefix p;
    p.addr = to_dp(ts.start);
    p.len = static_cast<std::uint8_t>(len);
    return p;
}

Result<std::vector<dp::PolicySpec>, DaemonError> to_policies(const ike::ChildSaKeys& k, std::uint32_t reqid) {
    std::vector<dp::PolicySpec> out;
    for (auto& l : k.local_ts) {
        auto lp = ts_to_prefix(l);
        if (!lp) return Fail{lp.error()};
        for (auto& r : k.remote_ts) {
            auto rp = ts_to_prefix(r);
            if (!rp) return Fail{rp.error()};
            dp::PolicySpec p;
            p.selector = dp::TrafficSelector{*lp, *rp, 0};
            p.reqid = reqid;
            p.outer_local = to_dp(k.local_addr);
            p.outer_remote = to_dp(k.remote_addr);
            out.push_back(p);
        }
    }
    return out;
}

Result<SaPair, DaemonError> to_sa_pair(const ike::ChildSaKeys& k, const SaConvertOptions& opt) {
    if (k.key_in.size() * 8 != k.encr.key_bits || k.key_out.size() * 8 != k.encr.key_bits || k.salt_in.size() != 4 ||
        k.salt_out.size() != 4)
        return Fail{dp_err("child SA " + hex32(k.ref.spi_in) + ": key/salt sizes do not match AES-GCM-" +
                           std::to_string(k.encr.key_bits) + " (RFC 4106: key + 4-byte salt)")};
    auto pols = to_policies(k, opt.reqid);
    if (!pols) return Fail{pols.error()};
    std::vector<dp::TrafficSelector> sels;
    for (auto& p : *pols) sels.push_back(p.selector);

    SaPair r;
    auto fill = [&](dp::SaSpec& s, dp::Direction d) {
        s.direction = d;
        s.reqid = opt.reqid;
        s.esn = k.esn;
        s.replay_window = static_cast<std::uint32_t>(k.replay_window);
        s.selectors = sels;
        if (opt.kernel_lifetimes) {
            s.soft.seconds = static_cast<std::uint64_t>(k.soft_lifetime.count());
            s.hard.seconds = static_cast<std::uint64_t>(k.hard_lifetime.count());
        }
    };
    fill(r.in, dp::Direction::inbound);
    r.in.spi = k.ref.spi_in;
    r.in.outer_src = to_dp(k.remote_addr);
    r.in.outer_dst = to_dp(k.local_addr);
    r.in.key = k.key_in.clone();
    r.in.salt = k.salt_in.clone();
    fill(r.out, dp::Direction::outbound);
    r.out.spi = k.ref.spi_out;
    r.out.outer_src = to_dp(k.local_addr);
    r.out.outer_dst = to_dp(k.remote_addr);
    r.out.key = k.key_out.clone();
    r.out.salt = k.salt_out.clone();
    if (k.encap) {
        // dp::UdpEncap: outbound = our source port -> peer port; inbound = peer port -> our port.
        r.out.encap = dp::UdpEncap{k.encap->local_port, k.encap->remote_port};
        r.in.encap = dp::UdpEncap{k.encap->remote_port, k.encap->local_port};
    }
    return r;
}

nlohmann::json ike_sa_json(const ike::IkeSaInfo& sa) {
    nlohmann::json j{{"gateway", sa.gateway},
                     {"id", sa.id},
                     {"state", std::string(ike::to_string(sa.state))},
                     {"role", sa.initiator ? "initiator" : "responder"},
                     {"spi_i", hex64(sa.spi_i)},
                     {"spi_r", hex64(sa.spi_r)},
                     {"local", sa.local.str()},
                     {"remote", sa.remote.str()},
                     {"local_id", sa.local_id},
                     {"remote_id", sa.remote_id},
                     {"algorithm", sa.algorithm},
                     {"proposal", sa.proposal},
                     {"key_exchanges", sa.key_exchanges},  // KE then ADDKE1..7, e.g. ["DH21", "MLKEM768"]
                     {"nat_local", sa.nat_local},
                     {"nat_remote", sa.nat_remote},
                     {"age_s", sa.age.count()},
                     {"rekey_in_s", nullptr},
                     {"child_sas", sa.child_sas}};
    if (sa.rekey_in) j["rekey_in_s"] = sa.rekey_in->count();
    // QKD as a key exchange: the key_ID in use (public), its age and the keys used so far.
    if (sa.qkd_keys_used > 0)
        j["qkd"] = {{"key_id", sa.qkd_key_id},
                    {"key_age_s", sa.qkd_key_age ? nlohmann::json(sa.qkd_key_age->count()) : nlohmann::json(nullptr)},
                    {"keys_used", sa.qkd_keys_used}};
    return j;
}

nlohmann::json child_sa_json(const ike::ChildSaInfo& sa, const dp::SaCounters* in, const dp::SaCounters* out) {
    nlohmann::json lts = nlohmann::json::array(), rts = nlohmann::json::array();
    for (auto& t : sa.local_ts) lts.push_back(t.str());
    for (auto& t : sa.remote_ts) rts.push_back(t.str());
    nlohmann::json j{{"gateway", sa.gateway},   {"id", sa.id},          {"ike_sa_id", sa.ike_sa_id},
                     {"spi_in", hex32(sa.spi_in)}, {"spi_out", hex32(sa.spi_out)}, {"local_ts", lts},
                     {"remote_ts", rts},        {"algorithm", sa.algorithm}, {"esn", sa.esn},
                     {"encap", sa.encap},       {"age_s", sa.age.count()}, {"rekey_in_s", nullptr}};
    if (sa.rekey_in) j["rekey_in_s"] = sa.rekey_in->count();
    j["bytes_in"] = in ? nlohmann::json(in->bytes) : nlohmann::json(nullptr);
    j["packets_in"] = in ? nlohmann::json(in->packets) : nlohmann::json(nullptr);
    j["bytes_out"] = out ? nlohmann::json(out->bytes) : nlohmann::json(nullptr);
    j["packets_out"] = out ? nlohmann::json(out->packets) : nlohmann::json(nullptr);
    if (in) {
        j["dropped_replay"] = in->dropped_replay;
        j["dropped_auth"] = in->dropped_auth;
    }
    return j;
}

}  // namespace qkd::daemon
