// RFC 7296 3.3 Security Association payload: a list of proposal substructures.
//
// Proposal substructure (3.3.1):
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Last Substruc |   RESERVED    |         Proposal Length       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        SPI (variable)                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        <Transforms>                           ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Transform substructure (3.3.2), attributes (3.3.5, TV form only: AF=1, type 14 Key Length):
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Last Substruc |   RESERVED    |        Transform Length       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |Transform Type |   RESERVED    |          Transform ID         |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                      Transform Attributes                     ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#include "payloads.hpp"

namespace qkd::ike::wire {
namespace {

constexpr std::uint8_t kLastProposal = 0, kMoreProposals = 2;
constexpr std::uint8_t kLastTransform = 0, kMoreTransforms = 3;
constexpr std::uint16_t kAttrKeyLength = 0x800E;  // AF bit | 14

WireResult<Transform> decode_transform(ByteReader& r, bool& last) {
    auto more = r.u8();
    r.skip(1);
    auto len = r.u16();
    if (!r.ok()) return wire_err(WireErrc::Truncated, "transform header truncated");
    if (*more != kLastTransform && *more != kMoreTransforms)
        return wire_err(WireErrc::BadValue, "transform Last Substruc " + std::to_string(*more) + ", expected 0 or 3");
    if (*len < 8) return wire_err(WireErrc::BadLength, "transform length " + std::to_string(*len) + ", expected >= 8");
    auto body = r.sub(*len - 4);
    if (!body) return wire_err(WireErrc::Truncated, "transform length " + std::to_string(*len) + " past the proposal");
    Transform t;
    auto type = body->u8();
    body->skip(1);
    auto id = body->u16();
    if (!body->ok()) return wire_err(WireErrc::Truncated, "transform body truncated");
    t.type = static_cast<TransformType>(*type);
    t.id = *id;
    while (!body->empty()) {
        auto at = body->u16();
        auto val = body->u16();
        if (!body->ok()) return wire_err(WireErrc::Truncated, "transform attribute truncated");
        if (*at == kAttrKeyLength) {
            t.key_length = *val;
        } else if (!(*at & 0x8000)) {
            // TLV attribute: none defined for the transforms we use; skip its value.
            if (!body->skip(*val)) return wire_err(WireErrc::Truncated, "TLV transform attribute truncated");
        }
    }
    last = *more == kLastTransform;
    return t;
}

}  // namespace

WireResult<SaPayload> SaPayload::decode(ByteReader& r) {
    SaPayload sa;
    bool last = false;
    while (!last) {
        if (sa.proposals.size() == kMaxProposals)
            return wire_err(WireErrc::TooMany, "more than " + std::to_string(kMaxProposals) + " proposals");
        auto more = r.u8();
        r.skip(1);
        auto len = r.u16();
        if (!r.ok()) return wire_err(WireErrc::Truncated, "proposal header truncated");
        if (*more != kLastProposal && *more != kMoreProposals)
            return wire_err(WireErrc::BadValue, "proposal Last Substruc " + std::to_string(*more) + ", expected 0 or 2");
        if (*len < 8) return wire_err(WireErrc::BadLength, "proposal length " + std::to_string(*len) + ", expected >= 8");
        auto pr = r.sub(*len - 4);
        if (!pr) return wire_err(WireErrc::Truncated, "proposal length " + std::to_string(*len) + " past the SA payload");
        Proposal p;
        auto num = pr->u8();
        auto proto = pr->u8();
        auto spi_size = pr->u8();
        auto ntrans = pr->u8();
        if (!pr->ok()) return wire_err(WireErrc::Truncated, "proposal fields truncated");
        // RFC 7296 3.3.1: a list of proposals is numbered 1, 2, 3...; a responder's answer holds one
        // proposal that keeps the number of the proposal it accepted, so a lone proposal may carry
        // any non-zero number (the selection code maps it back to what we offered).
        const bool lone = sa.proposals.empty() && *more == kLastProposal;
        if (lone ? *num == 0 : *num != sa.proposals.size() + 1)
            return wire_err(WireErrc::BadValue, "proposal number " + std::to_string(*num) + ", expected " +
                                                    (lone ? std::string("1..255 in a single-proposal SA")
                                                          : std::to_string(sa.proposals.size() + 1)));
        if (*spi_size != 0 && *spi_size != 4 && *spi_size != 8)
            return wire_err(WireErrc::BadValue, "SPI size " + std::to_string(*spi_size) + ", expected 0, 4 or 8");
        if (*ntrans == 0 || *ntrans > kMaxTransforms)
            return wire_err(WireErrc::BadValue, "proposal with " + std::to_string(*ntrans) + " transforms, expected 1.." +
                                                    std::to_string(kMaxTransforms));
        auto spi = pr->bytes(*spi_size);
        if (!spi) return wire_err(WireErrc::Truncated, "proposal SPI truncated");
        p.number = *num;
        p.protocol = static_cast<ProtocolId>(*proto);
        p.spi.assign(spi->begin(), spi->end());
        bool tlast = false;
        for (unsigned i = 0; i < *ntrans; ++i) {
            if (tlast) return wire_err(WireErrc::BadValue, "transform marked last before Num Transforms reached");
            auto t = decode_transform(*pr, tlast);
            if (!t) return Err{t.error()};
            p.transforms.push_back(*t);
        }
        if (!tlast || !pr->expect_end())
            return wire_err(WireErrc::BadLength, "proposal length disagrees with its " + std::to_string(*ntrans) + " transforms");
        last = *more == kLastProposal;
        sa.proposals.push_back(std::move(p));
    }
    if (!r.expect_end()) return wire_err(WireErrc::BadLength, "octets after the last proposal of an SA payload");
    return sa;
}

void SaPayload::encode(ByteWriter& w) const {
    for (std::size_t i = 0; i < proposals.size(); ++i) {
        const Proposal& p = proposals[i];
        w.u8(i + 1 == proposals.size() ? kLastProposal : kMoreProposals);
        w.u8(0);
        const std::size_t len_at = w.placeholder_u16();
        const std::size_t start = len_at - 2;
        // A list we offer is numbered 1, 2, ... by its builder; an answer keeps the accepted number.
        w.u8(p.number);
        w.u8(static_cast<std::uint8_t>(p.protocol));
        w.u8(static_cast<std::uint8_t>(p.spi.size()));
        w.u8(static_cast<std::uint8_t>(p.transforms.size()));
        w.bytes(p.spi);
        for (std::size_t j = 0; j < p.transforms.size(); ++j) {
            const Transform& t = p.transforms[j];
            w.u8(j + 1 == p.transforms.size() ? kLastTransform : kMoreTransforms);
            w.u8(0);
            w.u16(t.key_length ? 12 : 8);
            w.u8(static_cast<std::uint8_t>(t.type));
            w.u8(0);
            w.u16(t.id);
            if (t.key_length) {
                w.u16(kAttrKeyLength);
                w.u16(*t.key_length);
            }
        }
        w.patch_u16(len_at, static_cast<std::uint16_t>(w.size() - start));
    }
}

}  // namespace qkd::ike::wire
