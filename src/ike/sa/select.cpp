// Proposal selection (RFC 7296 2.7, 3.3.6) and traffic selector narrowing (2.9).
#include <algorithm>

#include "../src/impl.hpp"

namespace qkd::ike {
namespace {

using wire::ProtocolId;
using wire::Transform;
using wire::TransformType;

Transform encr_transform(EncrAlg e) { return {TransformType::Encr, static_cast<std::uint16_t>(e.id), e.key_bits}; }

std::optional<EncrAlg> as_encr(const Transform& t) {
    if (t.type != TransformType::Encr || t.id != static_cast<std::uint16_t>(EncrId::AesGcm16) || !t.key_length ||
        (*t.key_length != 128 && *t.key_length != 256))
        return std::nullopt;
    return EncrAlg{EncrId::AesGcm16, *t.key_length};
}

template <class T, class V>
bool contains(const std::vector<T>& v, const V& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

// An AEAD proposal must not carry an integrity algorithm other than NONE (RFC 5282 8).
bool has_integ(const wire::Proposal& p) {
    for (const auto& t : p.transforms)
        if (t.type == TransformType::Integ && t.id != 0) return true;
    return false;
}

std::uint32_t spi32(const std::vector<std::uint8_t>& s) {
    return s.size() == 4 ? (std::uint32_t(s[0]) << 24 | std::uint32_t(s[1]) << 16 | std::uint32_t(s[2]) << 8 | s[3]) : 0;
}

}  // namespace

std::optional<IkeSelection> select_ike(const std::vector<IkeProposal>& ours, const wire::SaPayload& theirs,
                                       std::uint16_t preferred_ke) {
    for (const auto& p : theirs.proposals) {
        if (p.protocol != ProtocolId::Ike || has_integ(p)) continue;
        for (const auto& o : ours) {
            std::optional<EncrAlg> encr;
            std::optional<crypto::PrfAlg> prf;
            std::optional<crypto::KeGroup> ke;
            for (const auto& t : p.transforms) {
                if (auto e = as_encr(t); e && !encr && contains(o.encr, *e)) encr = e;
                if (t.type == TransformType::Prf && !prf && contains(o.prf, static_cast<crypto::PrfAlg>(t.id)))
                    prf = static_cast<crypto::PrfAlg>(t.id);
                if (t.type == TransformType::Ke && contains(o.ke, static_cast<crypto::KeGroup>(t.id)) &&
                    (!ke || t.id == preferred_ke))
                    ke = static_cast<crypto::KeGroup>(t.id);
            }
            if (encr && prf && ke) return IkeSelection{p.number, *encr, *prf, *ke};
        }
    }
    return std::nullopt;
}

std::optional<EspSelection> select_esp(const std::vector<EspProposal>& ours, const wire::SaPayload& theirs,
                                       bool with_ke, std::uint16_t preferred_ke) {
    for (const auto& p : theirs.proposals) {
        if (p.protocol != ProtocolId::Esp || p.spi.size() != 4 || has_integ(p)) continue;
        for (const auto& o : ours) {
            std::optional<EncrAlg> encr;
            std::optional<bool> esn;
            std::optional<crypto::KeGroup> ke;
            bool peer_has_ke = false;
            for (const auto& t : p.transforms) {
                if (auto e = as_encr(t); e && !encr && contains(o.encr, *e)) encr = e;
                if (t.type == TransformType::Esn && !esn && t.id <= 1 && contains(o.esn, t.id == 1)) esn = t.id == 1;
                if (t.type == TransformType::Ke) {
                    peer_has_ke |= t.id != 0;
                    const auto g = static_cast<crypto::KeGroup>(t.id);
                    if ((contains(o.ke, g) || (g == crypto::KeGroup::None && o.ke.empty())) && (!ke || t.id == preferred_ke))
                        ke = g;
                }
            }
            // ESN is mandatory in ESP proposals (RFC 7296 3.3.3); accept its absence as "no ESN".
            if (!esn && contains(o.esn, false)) {
                bool any_esn = false;
                for (const auto& t : p.transforms) any_esn |= t.type == TransformType::Esn;
                if (!any_esn) esn = false;
            }
            if (!encr || !esn) continue;
            crypto::KeGroup group = crypto::KeGroup::None;
            if (with_ke) {
                // PFS: both must agree on a group, or both offer none.
                if (!o.ke.empty() || peer_has_ke) {
                    if (!ke || *ke == crypto::KeGroup::None) continue;
                    group = *ke;
                }
            }
            return EspSelection{p.number, spi32(p.spi), *encr, group, *esn};
        }
    }
    return std::nullopt;
}

wire::SaPayload ike_sa_payload(const std::vector<IkeProposal>& ours, std::span<const std::uint8_t> spi) {
    wire::SaPayload sa;
    std::uint8_t n = 1;
    for (const auto& o : ours) {
        wire::Proposal p;
        p.number = n++;
        p.protocol = ProtocolId::Ike;
        p.spi.assign(spi.begin(), spi.end());
        for (auto e : o.encr) p.transforms.push_back(encr_transform(e));
        for (auto f : o.prf) p.transforms.push_back({TransformType::Prf, static_cast<std::uint16_t>(f), std::nullopt});
        for (auto g : o.ke) p.transforms.push_back({TransformType::Ke, static_cast<std::uint16_t>(g), std::nullopt});
        sa.proposals.push_back(std::move(p));
    }
    return sa;
}

wire::SaPayload esp_sa_payload(const std::vector<EspProposal>& ours, std::uint32_t spi, bool with_ke) {
    wire::SaPayload sa;
    std::uint8_t n = 1;
    for (const auto& o : ours) {
        wire::Proposal p;
        p.number = n++;
        p.protocol = ProtocolId::Esp;
        p.spi = {std::uint8_t(spi >> 24), std::uint8_t(spi >> 16), std::uint8_t(spi >> 8), std::uint8_t(spi)};
        for (auto e : o.encr) p.transforms.push_back(encr_transform(e));
        if (with_ke)
            for (auto g : o.ke) p.transforms.push_back({TransformType::Ke, static_cast<std::uint16_t>(g), std::nullopt});
        for (bool e : o.esn) p.transforms.push_back({TransformType::Esn, static_cast<std::uint16_t>(e ? 1 : 0), std::nullopt});
        sa.proposals.push_back(std::move(p));
    }
    return sa;
}

wire::SaPayload selected_ike_payload(const IkeSelection& s, std::span<const std::uint8_t> spi) {
    wire::Proposal p;
    p.number = s.number;
    p.protocol = ProtocolId::Ike;
    p.spi.assign(spi.begin(), spi.end());
    p.transforms = {encr_transform(s.encr), {TransformType::Prf, static_cast<std::uint16_t>(s.prf), std::nullopt},
                    {TransformType::Ke, static_cast<std::uint16_t>(s.group), std::nullopt}};
    return wire::SaPayload{{std::move(p)}};
}

wire::SaPayload selected_esp_payload(const EspSelection& s, std::uint32_t spi, bool with_ke) {
    wire::Proposal p;
    p.number = s.number;
    p.protocol = ProtocolId::Esp;
    p.spi = {std::uint8_t(spi >> 24), std::uint8_t(spi >> 16), std::uint8_t(spi >> 8), std::uint8_t(spi)};
    p.transforms = {encr_transform(s.encr)};
    if (with_ke && s.group != crypto::KeGroup::None)
        p.transforms.push_back({TransformType::Ke, static_cast<std::uint16_t>(s.group), std::nullopt});
    p.transforms.push_back({TransformType::Esn, static_cast<std::uint16_t>(s.esn ? 1 : 0), std::nullopt});
    return wire::SaPayload{{std::move(p)}};
}

// RFC 7296 3.3.1 and 3.3.6: the answer holds exactly one proposal, numbered like the proposal it
// accepts, with one transform of each type we offered there, each one we offered in that proposal.
// A responder that picked our second proposal answers with number 2 (strongSwan does), so the
// number, not the first match among our proposals, says which of ours it took.
namespace {

// The proposal of ours an answer's number refers to; nullptr when the number is not one we sent.
template <class P>
const P* answered(const std::vector<P>& ours, const wire::SaPayload& answer, ProtocolId proto) {
    if (answer.proposals.size() != 1) return nullptr;
    const auto& p = answer.proposals[0];
    if (p.protocol != proto || p.number < 1 || p.number > ours.size()) return nullptr;
    return &ours[p.number - 1];
}

std::size_t count_type(const wire::Proposal& p, TransformType t) {
    return static_cast<std::size_t>(
        std::count_if(p.transforms.begin(), p.transforms.end(), [t](const Transform& x) { return x.type == t; }));
}

const Transform* first_of(const wire::Proposal& p, TransformType t) {
    for (const auto& x : p.transforms)
        if (x.type == t) return &x;
    return nullptr;
}

}  // namespace

std::optional<IkeSelection> accept_ike(const std::vector<IkeProposal>& ours, const wire::SaPayload& answer) {
    const IkeProposal* o = answered(ours, answer, ProtocolId::Ike);
    if (!o) return std::nullopt;
    const auto& p = answer.proposals[0];
    if (has_integ(p) || count_type(p, TransformType::Encr) != 1 || count_type(p, TransformType::Prf) != 1 ||
        count_type(p, TransformType::Ke) != 1)
        return std::nullopt;
    for (const auto& t : p.transforms)
        if (t.type != TransformType::Encr && t.type != TransformType::Prf && t.type != TransformType::Ke &&
            t.type != TransformType::Integ)
            return std::nullopt;  // a transform type we did not offer
    const auto encr = as_encr(*first_of(p, TransformType::Encr));
    const auto prf = static_cast<crypto::PrfAlg>(first_of(p, TransformType::Prf)->id);
    const auto ke = static_cast<crypto::KeGroup>(first_of(p, TransformType::Ke)->id);
    if (!encr || !contains(o->encr, *encr) || !contains(o->prf, prf) || !contains(o->ke, ke)) return std::nullopt;
    return IkeSelection{p.number, *encr, prf, ke};
}

std::optional<EspSelection> accept_esp(const std::vector<EspProposal>& ours, const wire::SaPayload& answer, bool with_ke) {
    const EspProposal* o = answered(ours, answer, ProtocolId::Esp);
    if (!o) return std::nullopt;
    const auto& p = answer.proposals[0];
    if (p.spi.size() != 4 || has_integ(p) || count_type(p, TransformType::Encr) != 1 ||
        count_type(p, TransformType::Ke) > 1 || count_type(p, TransformType::Esn) > 1)
        return std::nullopt;
    for (const auto& t : p.transforms)
        if (t.type != TransformType::Encr && t.type != TransformType::Ke && t.type != TransformType::Esn &&
            t.type != TransformType::Integ)
            return std::nullopt;
    const auto encr = as_encr(*first_of(p, TransformType::Encr));
    if (!encr || !contains(o->encr, *encr)) return std::nullopt;
    // ESN is mandatory in ESP proposals (RFC 7296 3.3.3); accept its absence as "no ESN".
    bool esn = false;
    if (const Transform* e = first_of(p, TransformType::Esn)) {
        if (e->id > 1) return std::nullopt;
        esn = e->id == 1;
    }
    if (!contains(o->esn, esn)) return std::nullopt;
    // PFS group: only in a CREATE_CHILD_SA (with_ke) where we offered groups; otherwise absent or NONE.
    crypto::KeGroup group = crypto::KeGroup::None;
    if (const Transform* k = first_of(p, TransformType::Ke)) group = static_cast<crypto::KeGroup>(k->id);
    if (with_ke && !o->ke.empty()) {
        if (group == crypto::KeGroup::None || !contains(o->ke, group)) return std::nullopt;
    } else if (group != crypto::KeGroup::None) {
        return std::nullopt;
    }
    return EspSelection{p.number, spi32(p.spi), *encr, group, esn};
}

namespace {
bool addr_le(const IpAddr& a, const IpAddr& b) { return std::lexicographical_compare(a.bytes.begin(), a.bytes.begin() + a.size(), b.bytes.begin(), b.bytes.begin() + b.size()) || a == b; }
}  // namespace

std::vector<TrafficSelector> narrow(const std::vector<TrafficSelector>& proposed, const std::vector<TrafficSelector>& allowed) {
    std::vector<TrafficSelector> out;
    for (const auto& p : proposed) {
        for (const auto& a : allowed) {
            if (p.start.family != a.start.family) continue;
            if (p.ip_proto != 0 && a.ip_proto != 0 && p.ip_proto != a.ip_proto) continue;
            TrafficSelector ts;
            ts.start = addr_le(p.start, a.start) ? a.start : p.start;
            ts.end = addr_le(p.end, a.end) ? p.end : a.end;
            if (!addr_le(ts.start, ts.end)) continue;
            ts.ip_proto = p.ip_proto ? p.ip_proto : a.ip_proto;
            ts.port_start = std::max(p.port_start, a.port_start);
            ts.port_end = std::min(p.port_end, a.port_end);
            if (ts.port_start > ts.port_end) continue;
            if (std::find(out.begin(), out.end(), ts) == out.end()) out.push_back(ts);
            // A subset is a valid narrowing (RFC 7296 2.9); more would not fit one TS payload's limit.
            if (out.size() == kMaxTrafficSelectors) return out;
        }
    }
    return out;
}

}  // namespace qkd::ike
