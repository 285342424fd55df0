// RFC 7296 3.2 generic payload header, chained through Next Payload:
//  0                   1                   2                   3
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#include "message.hpp"

namespace qkd::ike::wire {
namespace {

bool is_known(PayloadType t) {
    switch (t) {
        case PayloadType::Sa: case PayloadType::Ke: case PayloadType::IdI: case PayloadType::IdR:
        case PayloadType::Cert: case PayloadType::CertReq: case PayloadType::Auth: case PayloadType::Nonce:
        case PayloadType::Notify: case PayloadType::Delete: case PayloadType::VendorId: case PayloadType::TsI:
        case PayloadType::TsR: case PayloadType::Cp: case PayloadType::Eap:
            return true;
        default:
            return false;
    }
}

WireResult<PayloadBody> decode_body(PayloadType t, ByteReader& r) {
    auto wrap = [](auto res) -> WireResult<PayloadBody> {
        if (!res) return Err{res.error()};
        return PayloadBody(std::move(res).value());
    };
    switch (t) {
        case PayloadType::Sa: return wrap(SaPayload::decode(r));
        case PayloadType::Ke: return wrap(KePayload::decode(r));
        case PayloadType::IdI: case PayloadType::IdR: return wrap(IdPayload::decode(r));
        case PayloadType::Auth: return wrap(AuthPayload::decode(r));
        case PayloadType::Nonce: return wrap(NoncePayload::decode(r));
        case PayloadType::Notify: return wrap(NotifyPayload::decode(r));
        case PayloadType::Delete: return wrap(DeletePayload::decode(r));
        case PayloadType::TsI: case PayloadType::TsR: return wrap(TsPayload::decode(r));
        default: {
            auto rest = r.rest();
            return PayloadBody(OpaquePayload{{rest.begin(), rest.end()}});
        }
    }
}

struct ChainState {
    std::vector<Payload> payloads;
    bool sk = false;
    PayloadType sk_type = PayloadType::None, inner_first = PayloadType::None;
    std::size_t sk_start = 0;  // offset of the SK/SKF generic header in the input
    std::span<const std::uint8_t> sk_body;
};

// Walks a chain; stops at SK/SKF, which must be the last payload (RFC 7296 3.14).
WireResult<ChainState> walk(std::span<const std::uint8_t> in, std::size_t base, PayloadType first, bool allow_sk) {
    ChainState st;
    ByteReader r(in);
    PayloadType next = first;
    while (next != PayloadType::None) {
        if (st.payloads.size() == kMaxPayloads)
            return wire_err(WireErrc::TooMany, "more than " + std::to_string(kMaxPayloads) + " payloads");
        const std::size_t start = r.position();
        auto np = r.u8();
        auto flags = r.u8();
        auto len = r.u16();
        if (!r.ok()) return wire_err(WireErrc::Truncated, to_string(next) + " payload header truncated");
        if (*len < kPayloadHeaderSize)
            return wire_err(WireErrc::BadLength, to_string(next) + " payload length " + std::to_string(*len) + ", expected >= 4");
        auto body = r.sub(*len - kPayloadHeaderSize);
        if (!body)
            return wire_err(WireErrc::Truncated, to_string(next) + " payload length " + std::to_string(*len) +
                                                     " runs past the message");
        const bool critical = *flags & kCritical;
        if (next == PayloadType::Sk || next == PayloadType::Skf) {
            if (!allow_sk) return wire_err(WireErrc::RuleViolation, "nested Encrypted payload");
            if (!r.empty()) return wire_err(WireErrc::RuleViolation, "Encrypted payload is not the last payload");
            st.sk = true;
            st.sk_type = next;
            st.inner_first = static_cast<PayloadType>(*np);
            st.sk_start = base + start;
            st.sk_body = body->rest();
            return st;
        }
        if (!is_known(next)) {
            // RFC 7296 2.5: unknown critical payloads fail the message; others are skipped.
            if (critical)
                return wire_err(WireErrc::UnsupportedCritical,
                                "unsupported critical payload type " + std::to_string(static_cast<unsigned>(next)));
            next = static_cast<PayloadType>(*np);
            continue;
        }
        auto decoded = decode_body(next, *body);
        if (!decoded) return Err{decoded.error()};
        st.payloads.push_back(Payload{next, critical, std::move(decoded).value()});
        next = static_cast<PayloadType>(*np);
    }
    if (!r.empty()) return wire_err(WireErrc::BadLength, std::to_string(r.remaining()) + " octets after the last payload");
    return st;
}

}  // namespace

const NotifyPayload* Message::notify(NotifyType t) const {
    for (const auto& p : payloads)
        if (auto* n = std::get_if<NotifyPayload>(&p.body); n && n->type == t) return n;
    return nullptr;
}

std::vector<const NotifyPayload*> Message::notifies() const {
    std::vector<const NotifyPayload*> out;
    for (const auto& p : payloads)
        if (auto* n = std::get_if<NotifyPayload>(&p.body)) out.push_back(n);
    return out;
}

const NotifyPayload* Message::first_error() const {
    for (const auto* n : notifies())
        if (n->is_error()) return n;
    return nullptr;
}

std::size_t Message::count(PayloadType t) const {
    std::size_t n = 0;
    for (const auto& p : payloads) n += p.type == t;
    return n;
}

WireResult<OuterMessage> decode_outer(std::span<const std::uint8_t> datagram) {
    auto h = Header::decode(datagram);
    if (!h) return Err{h.error()};
    auto st = walk(datagram.subspan(kHeaderSize), kHeaderSize, h->next_payload, true);
    if (!st) return Err{st.error()};
    OuterMessage m;
    m.header = *h;
    m.plain = std::move(st->payloads);
    if (!st->sk) return m;
    m.encrypted = true;
    m.fragment = st->sk_type == PayloadType::Skf;
    m.inner_first = st->inner_first;
    ByteReader body(st->sk_body);
    std::size_t aad_len = st->sk_start + kPayloadHeaderSize;
    if (m.fragment) {
        // RFC 7383 2.5: Fragment Number and Total Fragments precede the IV and are authenticated.
        auto num = body.u16();
        auto total = body.u16();
        if (!body.ok()) return wire_err(WireErrc::Truncated, "Encrypted Fragment payload truncated");
        if (*num == 0 || *total == 0 || *num > *total || *total > kMaxFragments)
            return wire_err(WireErrc::BadValue, "fragment " + std::to_string(*num) + " of " + std::to_string(*total) +
                                                    ", expected 1 <= number <= total <= " + std::to_string(kMaxFragments));
        if (*num != 1 && m.inner_first != PayloadType::None)
            return wire_err(WireErrc::BadValue, "non-first fragment with Next Payload != 0");
        m.frag = {*num, *total};
        aad_len += 4;
    }
    auto iv = body.bytes(crypto::kGcmIvSize);
    auto ct = body.rest();
    if (!iv || ct.size() < crypto::kGcmIcvSize + 1)
        return wire_err(WireErrc::Truncated, "Encrypted payload of " + std::to_string(st->sk_body.size()) +
                                                 " octets is shorter than IV + pad length + ICV");
    m.iv = *iv;
    m.ciphertext = ct;
    m.aad = datagram.first(aad_len);
    return m;
}

WireResult<std::vector<Payload>> decode_chain(std::span<const std::uint8_t> in, PayloadType first) {
    auto st = walk(in, 0, first, false);
    if (!st) return Err{st.error()};
    return std::move(st->payloads);
}

std::optional<SkCrypter> SkCrypter::create(std::span<const std::uint8_t> sk_e_out, std::span<const std::uint8_t> sk_e_in) {
    if (sk_e_out.size() < 20 || sk_e_in.size() < 20) return std::nullopt;
    auto split = [](std::span<const std::uint8_t> k) {
        return std::pair(k.first(k.size() - crypto::kGcmSaltSize), k.last(crypto::kGcmSaltSize));
    };
    auto [ko, so] = split(sk_e_out);
    auto [ki, si] = split(sk_e_in);
    auto o = crypto::AesGcm::create(ko, so);
    auto i = crypto::AesGcm::create(ki, si);
    if (!o || !i) return std::nullopt;
    SkCrypter c;
    c.out_.emplace(std::move(o).value());
    c.in_.emplace(std::move(i).value());
    return c;
}

WireResult<std::vector<std::uint8_t>> SkCrypter::open(const OuterMessage& m) {
    std::vector<std::uint8_t> pt(m.ciphertext.size() - crypto::kGcmIcvSize);
    if (!in_->open(m.iv, m.aad, m.ciphertext, pt))
        return wire_err(WireErrc::DecryptFailed, "Encrypted payload ICV check failed");
    // RFC 7296 3.14: the last octet is the Pad Length; padding may be any value.
    const std::size_t pad = pt.back();
    if (pad + 1 > pt.size())
        return wire_err(WireErrc::BadLength, "Pad Length " + std::to_string(pad) + " exceeds the decrypted " +
                                                 std::to_string(pt.size()) + " octets");
    pt.resize(pt.size() - pad - 1);
    return pt;
}

void SkCrypter::seal(std::span<const std::uint8_t> aad, std::span<const std::uint8_t> plaintext, ByteWriter& w) {
    std::uint8_t iv[crypto::kGcmIvSize];
    const std::uint64_t n = ++iv_counter_;
    for (int i = 0; i < 8; ++i) iv[i] = static_cast<std::uint8_t>(n >> (56 - 8 * i));
    std::vector<std::uint8_t> pt(plaintext.begin(), plaintext.end());
    pt.push_back(0);  // Pad Length 0: GCM needs no block padding
    std::vector<std::uint8_t> out(pt.size() + crypto::kGcmIcvSize);
    if (!out_->seal(iv, aad, pt, out)) std::abort();  // only fails on misuse
    w.bytes(iv);
    w.bytes(out);
}

PayloadType encode_chain(ByteWriter& w, const std::vector<Payload>& payloads) {
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        const auto& p = payloads[i];
        w.u8(static_cast<std::uint8_t>(i + 1 < payloads.size() ? payloads[i + 1].type : PayloadType::None));
        w.u8(p.critical ? kCritical : 0);
        const std::size_t len_at = w.placeholder_u16();
        std::visit(
            [&](const auto& b) {
                if constexpr (std::is_same_v<std::decay_t<decltype(b)>, OpaquePayload>)
                    w.bytes(b.data);
                else
                    b.encode(w);
            },
            p.body);
        w.patch_u16(len_at, static_cast<std::uint16_t>(w.size() - len_at + 2));
    }
    return payloads.empty() ? PayloadType::None : payloads.front().type;
}

std::vector<std::uint8_t> encode_plain(Header h, const std::vector<Payload>& payloads) {
    ByteWriter w;
    h.next_payload = payloads.empty() ? PayloadType::None : payloads.front().type;
    h.length = 0;
    h.encode(w);
    encode_chain(w, payloads);
    w.patch_u32(24, static_cast<std::uint32_t>(w.size()));
    return w.take();
}

std::vector<std::vector<std::uint8_t>> encode_encrypted(Header h, const std::vector<Payload>& payloads,
                                                        SkCrypter& crypter, std::size_t max_size) {
    ByteWriter inner;
    const PayloadType first = encode_chain(inner, payloads);
    const auto& pt = inner.data();
    std::vector<std::vector<std::uint8_t>> out;
    const std::size_t whole = kHeaderSize + kPayloadHeaderSize + SkCrypter::overhead() + pt.size();
    if (max_size == 0 || whole <= max_size || h.exchange == ExchangeType::IkeSaInit) {
        ByteWriter w;
        h.next_payload = PayloadType::Sk;
        h.encode(w);
        w.u8(static_cast<std::uint8_t>(first));
        w.u8(0);
        w.u16(static_cast<std::uint16_t>(kPayloadHeaderSize + SkCrypter::overhead() + pt.size()));
        w.patch_u32(24, static_cast<std::uint32_t>(whole));
        const std::vector<std::uint8_t> aad = w.data();
        crypter.seal(aad, pt, w);
        out.push_back(w.take());
        return out;
    }
    // RFC 7383 2.5: every fragment carries Fragment Number and Total Fragments and its own ICV.
    const std::size_t per = max_size - kHeaderSize - kPayloadHeaderSize - 4 - SkCrypter::overhead();
    const std::size_t total = (pt.size() + per - 1) / per;
    for (std::size_t i = 0; i < total; ++i) {
        const auto chunk = std::span(pt).subspan(i * per, std::min(per, pt.size() - i * per));
        ByteWriter w;
        h.next_payload = PayloadType::Skf;
        h.encode(w);
        w.u8(static_cast<std::uint8_t>(i == 0 ? first : PayloadType::None));
        w.u8(0);
        w.u16(static_cast<std::uint16_t>(kPayloadHeaderSize + 4 + SkCrypter::overhead() + chunk.size()));
        w.u16(static_cast<std::uint16_t>(i + 1));
        w.u16(static_cast<std::uint16_t>(total));
        w.patch_u32(24, static_cast<std::uint32_t>(w.size() + SkCrypter::overhead() + chunk.size()));
        const std::vector<std::uint8_t> aad = w.data();
        crypter.seal(aad, chunk, w);
        out.push_back(w.take());
    }
    return out;
}

Payload make_notify(NotifyType t, std::vector<std::uint8_t> data, ProtocolId proto, std::vector<std::uint8_t> spi) {
    NotifyPayload n;
    n.type = t;
    n.data = std::move(data);
    n.protocol = proto;
    n.spi = std::move(spi);
    return Payload{PayloadType::Notify, false, std::move(n)};
}

}  // namespace qkd::ike::wire
