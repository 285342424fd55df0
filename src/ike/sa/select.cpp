// Proposal selection (RFC 7296 2.7, 3.3.6; RFC 9370 2.2.1 for ADDKE1..7) and traffic selector
// narrowing (2.9).
#include <algorithm>

#include "../src/impl.hpp"

namespace qkd::ike {
namespace {

using crypto::KeGroup;
using wire::ProtocolId;
using wire::Transform;
using wire::TransformType;

Transform encr_transform(EncrAlg e) { return {TransformType::Encr, static_cast<std::uint16_t>(e.id), e.key_bits}; }
Transform ke_transform(TransformType t, KeGroup g) { return {t, static_cast<std::uint16_t>(g), std::nullopt}; }

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

// RFC 7296 3.3.6: a proposal with a Transform Type we do not understand is unacceptable.
bool known_types(const wire::Proposal& p, bool esp) {
    for (const auto& t : p.transforms) {
        const bool ok = t.type == TransformType::Encr || t.type == TransformType::Integ || t.type == TransformType::Ke ||
                        wire::is_addke(t.type) || (esp ? t.type == TransformType::Esn : t.type == TransformType::Prf);
        if (!ok) return false;
    }
    return true;
}

std::vector<KeGroup> ids_of(const wire::Proposal& p, TransformType type) {
    std::vector<KeGroup> out;
    for (const auto& t : p.transforms)
        if (t.type == type) out.push_back(static_cast<KeGroup>(t.id));
    return out;
}

std::uint32_t spi32(const std::vector<std::uint8_t>& s) {
    return s.size() == 4 ? (std::uint32_t(s[0]) << 24 | std::uint32_t(s[1]) << 16 | std::uint32_t(s[2]) << 8 | s[3]) : 0;
}

// Responder side of RFC 9370 2.2.1 for ADDKE1..7, as strongSwan 6 selects them:
//  - a slot neither side uses has no round;
//  - a slot only one side uses is fine when that side offers NONE there (no round), else the
//    proposal is unacceptable (so a peer requiring ML-KEM gets NO_PROPOSAL_CHOSEN from us when we
//    do not configure it, and we refuse a peer that does not offer the round we require);
//  - otherwise the first of OUR methods for the slot that the peer also offers, NONE included:
//    "ke1_mlkem768-ke1_none" prefers ML-KEM, "ke1_none-ke1_mlkem768" prefers no round;
//  - a method already chosen for the first exchange or an earlier slot is skipped (RFC 9370 2.2.1
//    forbids using one method twice; strongSwan does the same).
// Unknown method IDs (e.g. a private QKD method) simply never match.
std::optional<AdditionalKeChoice> select_addke(const AdditionalKe& ours, const wire::Proposal& p, KeGroup first) {
    AdditionalKeChoice choice{};
    std::vector<KeGroup> used{first};
    for (std::size_t n = 1; n <= kMaxAdditionalKe; ++n) {
        const auto& mine = ours[n - 1];
        const auto theirs = ids_of(p, wire::addke_type(n));
        if (mine.empty() && theirs.empty()) continue;
        if (mine.empty() || theirs.empty()) {
            if (contains(mine.empty() ? theirs : mine, KeGroup::None)) continue;
            return std::nullopt;
        }
        bool found = false;
        for (auto m : mine) {
            if (m != KeGroup::None && contains(used, m)) continue;
            if (!contains(theirs, m)) continue;
            choice[n - 1] = m;
            if (m != KeGroup::None) used.push_back(m);
            found = true;
            break;
        }
        if (!found) return std::nullopt;
    }
    return choice;
}

// Initiator side: the answer's ADDKE transforms (at most one per type) against what we offered in
// that proposal. NONE, or no transform of the type, is fine where we offered NONE or nothing
// (strongSwan omits the type when it selects NONE; RFC 7296 3.3.6 reads as sending NONE).
std::optional<AdditionalKeChoice> accept_addke(const AdditionalKe& ours, const wire::Proposal& p, KeGroup first) {
    AdditionalKeChoice choice{};
    std::vector<KeGroup> used{first};
    for (std::size_t n = 1; n <= kMaxAdditionalKe; ++n) {
        const auto& mine = ours[n - 1];
        const auto got = ids_of(p, wire::addke_type(n));
        if (got.size() > 1) return std::nullopt;
        const KeGroup g = got.empty() ? KeGroup::None : got[0];
        if (g == KeGroup::None) {
            if (!mine.empty() && !contains(mine, KeGroup::None)) return std::nullopt;
            continue;
        }
        if (!contains(mine, g) || contains(used, g)) return std::nullopt;
        choice[n - 1] = g;
        used.push_back(g);
    }
    return choice;
}

void add_addke(wire::Proposal& p, const AdditionalKe& slots) {
    for (std::size_t n = 1; n <= kMaxAdditionalKe; ++n)
        for (auto g : slots[n - 1]) p.transforms.push_back(ke_transform(wire::addke_type(n), g));
}

void add_addke(wire::Proposal& p, const AdditionalKeChoice& choice) {
    for (std::size_t n = 1; n <= kMaxAdditionalKe; ++n)
        if (choice[n - 1] != KeGroup::None) p.transforms.push_back(ke_transform(wire::addke_type(n), choice[n - 1]));
}

}  // namespace

std::optional<IkeSelection> select_ike(const std::vector<IkeProposal>& ours, const wire::SaPayload& theirs,
                                       std::uint16_t preferred_ke) {
    for (const auto& p : theirs.proposals) {
        if (p.protocol != ProtocolId::Ike || has_integ(p) || !known_types(p, false)) continue;
        for (const auto& o : ours) {
            std::optional<EncrAlg> encr;
            std::optional<crypto::PrfAlg> prf;
            std::optional<KeGroup> ke;
            for (const auto& t : p.transforms) {
                if (auto e = as_encr(t); e && !encr && contains(o.encr, *e)) encr = e;
                if (t.type == TransformType::Prf && !prf && contains(o.prf, static_cast<crypto::PrfAlg>(t.id)))
                    prf = static_cast<crypto::PrfAlg>(t.id);
                if (t.type == TransformType::Ke && t.id != 0 && contains(o.ke, static_cast<KeGroup>(t.id)) &&
                    (!ke || t.id == preferred_ke))
                    ke = static_cast<KeGroup>(t.id);
            }
            if (!encr || !prf || !ke) continue;
            auto addke = select_addke(o.addke, p, *ke);
            if (!addke) continue;
            return IkeSelection{p.number, *encr, *prf, *ke, *addke};
        }
    }
    return std::nullopt;
}

std::optional<EspSelection> select_esp(const std::vector<EspProposal>& ours, const wire::SaPayload& theirs,
                                       bool with_ke, std::uint16_t preferred_ke) {
    for (const auto& p : theirs.proposals) {
        if (p.protocol != ProtocolId::Esp || p.spi.size() != 4 || has_integ(p) || !known_types(p, true)) continue;
        for (const auto& o : ours) {
            std::optional<EncrAlg> encr;
            std::optional<bool> esn;
            std::optional<KeGroup> ke;
            bool peer_has_ke = false;
            for (const auto& t : p.transforms) {
                if (auto e = as_encr(t); e && !encr && contains(o.encr, *e)) encr = e;
                if (t.type == TransformType::Esn && !esn && t.id <= 1 && contains(o.esn, t.id == 1)) esn = t.id == 1;
                if (t.type == TransformType::Ke) {
                    peer_has_ke |= t.id != 0;
                    const auto g = static_cast<KeGroup>(t.id);
                    if ((contains(o.ke, g) || (g == KeGroup::None && o.ke.empty())) && (!ke || t.id == preferred_ke))
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
            KeGroup group = KeGroup::None;
            AdditionalKeChoice addke{};
            // The child SA of IKE_AUTH never has a key exchange (RFC 7296 1.2): its KE and ADDKE
            // transforms, if any, are ignored, as strongSwan does.
            if (with_ke) {
                // PFS: both must agree on a group, or both offer none.
                if (!o.ke.empty() || peer_has_ke) {
                    if (!ke || *ke == KeGroup::None) continue;
                    group = *ke;
                }
                auto a = select_addke(o.addke, p, group);
                if (!a) continue;
                // Additional exchanges follow a first one (RFC 9370 2.2.1).
                if (group == KeGroup::None && *a != AdditionalKeChoice{}) continue;
                addke = *a;
            }
            return EspSelection{p.number, spi32(p.spi), *encr, group, *esn, addke};
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
        for (auto g : o.ke) p.transforms.push_back(ke_transform(TransformType::Ke, g));
        add_addke(p, o.addke);
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
        if (with_ke) {
            for (auto g : o.ke) p.transforms.push_back(ke_transform(TransformType::Ke, g));
            add_addke(p, o.addke);
        }
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
                    ke_transform(TransformType::Ke, s.group)};
    // A slot that selected NONE is left out, as strongSwan 6 answers (see accept_addke).
    add_addke(p, s.addke);
    return wire::SaPayload{{std::move(p)}};
}

wire::SaPayload selected_esp_payload(const EspSelection& s, std::uint32_t spi, bool with_ke) {
    wire::Proposal p;
    p.number = s.number;
    p.protocol = ProtocolId::Esp;
    p.spi = {std::uint8_t(spi >> 24), std::uint8_t(spi >> 16), std::uint8_t(spi >> 8), std::uint8_t(spi)};
    p.transforms = {encr_transform(s.encr)};
    if (with_ke && s.group != KeGroup::None) {
        p.transforms.push_back(ke_transform(TransformType::Ke, s.group));
        add_addke(p, s.addke);
    }
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
    if (has_integ(p) || !known_types(p, false) || count_type(p, TransformType::Encr) != 1 ||
        count_type(p, TransformType::Prf) != 1 || count_type(p, TransformType::Ke) != 1)
        return std::nullopt;
    const auto encr = as_encr(*first_of(p, TransformType::Encr));
    const auto prf = static_cast<crypto::PrfAlg>(first_of(p, TransformType::Prf)->id);
    const auto ke = static_cast<KeGroup>(first_of(p, TransformType::Ke)->id);
    if (!encr || !contains(o->encr, *encr) || !contains(o->prf, prf) || ke == KeGroup::None || !contains(o->ke, ke))
        return std::nullopt;
    auto addke = accept_addke(o->addke, p, ke);
    if (!addke) return std::nullopt;
    return IkeSelection{p.number, *encr, prf, ke, *addke};
}

std::optional<EspSelection> accept_esp(const std::vector<EspProposal>& ours, const wire::SaPayload& answer, bool with_ke) {
    const EspProposal* o = answered(ours, answer, ProtocolId::Esp);
    if (!o) return std::nullopt;
    const auto& p = answer.proposals[0];
    if (p.spi.size() != 4 || has_integ(p) || !known_types(p, true) || count_type(p, TransformType::Encr) != 1 ||
        count_type(p, TransformType::Ke) > 1 || count_type(p, TransformType::Esn) > 1)
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
    KeGroup group = KeGroup::None;
    if (const Transform* k = first_of(p, TransformType::Ke)) group = static_cast<KeGroup>(k->id);
    if (with_ke && !o->ke.empty()) {
        if (group == KeGroup::None || !contains(o->ke, group)) return std::nullopt;
    } else if (group != KeGroup::None) {
        return std::nullopt;
    }
    // Additional exchanges only with a PFS group, and only from what that proposal offered.
    AdditionalKeChoice addke{};
    if (group != KeGroup::None) {
        auto a = accept_addke(o->addke, p, group);
        if (!a) return std::nullopt;
        addke = *a;
    } else {
        for (std::size_t n = 1; n <= kMaxAdditionalKe; ++n)
            for (auto g : ids_of(p, wire::addke_type(n)))
                if (g != KeGroup::None) return std::nullopt;
    }
    return EspSelection{p.number, spi32(p.spi), *encr, group, esn, addke};
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
