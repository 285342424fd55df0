// Per-exchange payload rules (RFC 7296 1.2-1.5 and 3), declared as one table and checked in one
// place before any handler runs (STYLE.md habit 3). Rows for IKE_INTERMEDIATE (RFC 9242) and
// IKE_FOLLOWUP_KE (RFC 9370 2.2.3) are here for their handlers.
#include <array>
#include <initializer_list>

#include "message.hpp"

namespace qkd::ike::wire {
namespace {

constexpr std::uint8_t kMany = 255;

struct PayloadRule {
    PayloadType type;
    std::uint8_t min, max;
};

struct MessageRule {
    ExchangeType exchange;
    bool response;
    bool encrypted;  // all payloads inside SK / SKF
    std::initializer_list<PayloadRule> payloads;
    NotifyType required_notify{};  // a Notify type the message must carry (0 = none)
};

using P = PayloadType;
const MessageRule kRules[] = {
    // HDR, SAi1, KEi, Ni, [N+], [V+] -->
    {ExchangeType::IkeSaInit, false, false,
     {{P::Sa, 1, 1}, {P::Ke, 1, 1}, {P::Nonce, 1, 1}, {P::Notify, 0, kMany}, {P::VendorId, 0, kMany}}},
    // <-- HDR, SAr1, KEr, Nr, [CERTREQ], [N+], [V+]
    {ExchangeType::IkeSaInit, true, false,
     {{P::Sa, 1, 1}, {P::Ke, 1, 1}, {P::Nonce, 1, 1}, {P::CertReq, 0, kMany}, {P::Notify, 0, kMany},
      {P::VendorId, 0, kMany}}},
    // HDR, SK {IDi, [CERT+], [N(INITIAL_CONTACT)], [[N(HTTP_CERT_LOOKUP_SUPPORTED)], CERTREQ+], [IDr],
    //          AUTH, [CP(CFG_REQUEST)], [N(IPCOMP_SUPPORTED)+], [N(USE_TRANSPORT_MODE)], ...,
    //          SAi2, TSi, TSr, [V+]} -->   (SAi2/TSi/TSr absent for a childless IKE SA, RFC 6023)
    {ExchangeType::IkeAuth, false, true,
     {{P::IdI, 1, 1}, {P::Cert, 0, 4}, {P::CertReq, 0, kMany}, {P::IdR, 0, 1}, {P::Auth, 1, 1}, {P::Cp, 0, 1},
      {P::Sa, 0, 1}, {P::TsI, 0, 1}, {P::TsR, 0, 1}, {P::Notify, 0, kMany}, {P::VendorId, 0, kMany}}},
    // <-- HDR, SK {IDr, [CERT+], AUTH, [CP(CFG_REPLY)], ..., SAr2, TSi, TSr, [N+], [V+]}
    {ExchangeType::IkeAuth, true, true,
     {{P::IdR, 1, 1}, {P::Cert, 0, 4}, {P::Auth, 1, 1}, {P::Cp, 0, 1}, {P::Sa, 0, 1}, {P::TsI, 0, 1},
      {P::TsR, 0, 1}, {P::Notify, 0, kMany}, {P::VendorId, 0, kMany}}},
    // HDR, SK {[N(REKEY_SA)], SA, Ni, [KEi], [TSi, TSr]} -->
    {ExchangeType::CreateChildSa, false, true,
     {{P::Sa, 1, 1}, {P::Nonce, 1, 1}, {P::Ke, 0, 1}, {P::TsI, 0, 1}, {P::TsR, 0, 1}, {P::Notify, 0, kMany},
      {P::VendorId, 0, kMany}}},
    // <-- HDR, SK {SA, Nr, [KEr], [TSi, TSr], [N(ADDITIONAL_KEY_EXCHANGE)(link)]}  (RFC 9370 2.2.3:
    //     the link notify announces the IKE_FOLLOWUP_KE rounds; any Notify is allowed here)
    {ExchangeType::CreateChildSa, true, true,
     {{P::Sa, 1, 1}, {P::Nonce, 1, 1}, {P::Ke, 0, 1}, {P::TsI, 0, 1}, {P::TsR, 0, 1}, {P::Notify, 0, kMany},
      {P::VendorId, 0, kMany}}},
    // HDR, SK {[N,] [D,] [CP,] ...} <-->
    {ExchangeType::Informational, false, true,
     {{P::Notify, 0, kMany}, {P::Delete, 0, kMany}, {P::Cp, 0, 1}, {P::VendorId, 0, kMany}}},
    {ExchangeType::Informational, true, true,
     {{P::Notify, 0, kMany}, {P::Delete, 0, kMany}, {P::Cp, 0, 1}, {P::VendorId, 0, kMany}}},
    // RFC 9242 3 / RFC 9370 2.2.2: HDR, SK {[KEi(n)], [N+]} -->  <-- HDR, SK {[KEr(n)], [N+]}
    // (an IKE_INTERMEDIATE without a key exchange carries no KE; other extensions add notifies)
    {ExchangeType::IkeIntermediate, false, true, {{P::Ke, 0, 1}, {P::Notify, 0, kMany}, {P::VendorId, 0, kMany}}},
    {ExchangeType::IkeIntermediate, true, true, {{P::Ke, 0, 1}, {P::Notify, 0, kMany}, {P::VendorId, 0, kMany}}},
    // RFC 9370 2.2.3: HDR, SK {KEi(n), N(ADDITIONAL_KEY_EXCHANGE)(link)} -->
    {ExchangeType::IkeFollowupKe, false, true,
     {{P::Ke, 1, 1}, {P::Notify, 0, kMany}, {P::VendorId, 0, kMany}},
     NotifyType::AdditionalKeyExchange},
    //                  <-- HDR, SK {KEr(n), [N(ADDITIONAL_KEY_EXCHANGE)(link)]}  (or an error notify,
    //                      e.g. STATE_NOT_FOUND, 2.2.4)
    {ExchangeType::IkeFollowupKe, true, true, {{P::Ke, 1, 1}, {P::Notify, 0, kMany}, {P::VendorId, 0, kMany}}},
};

}  // namespace

WireResult<bool> check_rules(const Header& h, bool encrypted, const std::vector<Payload>& payloads) {
    const MessageRule* rule = nullptr;
    for (const auto& r : kRules)
        if (r.exchange == h.exchange && r.response == h.is_response()) rule = &r;
    if (!rule)
        return wire_err(WireErrc::RuleViolation,
                        "exchange type " + std::to_string(static_cast<unsigned>(h.exchange)) + " is not supported");
    if (rule->encrypted != encrypted)
        return wire_err(WireErrc::RuleViolation, to_string(h.exchange) + (rule->encrypted
                                                                              ? " payloads must be inside an Encrypted payload"
                                                                              : " must not carry an Encrypted payload"));
    // An error notify or a COOKIE request replaces the usual content (RFC 7296 2.6, 2.21), so the
    // minimum counts do not apply to such messages; the maximums always do.
    bool error_reply = false;
    for (const auto& p : payloads)
        if (auto* n = std::get_if<NotifyPayload>(&p.body); n && (n->is_error() || n->type == NotifyType::Cookie))
            error_reply |= h.is_response();
    for (const auto& p : payloads) {
        bool allowed = false;
        for (const auto& pr : rule->payloads) allowed |= pr.type == p.type;
        if (!allowed)
            return wire_err(WireErrc::RuleViolation, to_string(p.type) + " payload is not allowed in " +
                                                         to_string(h.exchange) + (h.is_response() ? " response" : " request"));
    }
    for (const auto& pr : rule->payloads) {
        std::size_t n = 0;
        for (const auto& p : payloads) n += p.type == pr.type;
        if (n > pr.max)
            return wire_err(WireErrc::RuleViolation, to_string(h.exchange) + " with " + std::to_string(n) + " " +
                                                         to_string(pr.type) + " payloads, at most " + std::to_string(pr.max));
        if (n < pr.min && !error_reply)
            return wire_err(WireErrc::RuleViolation, to_string(h.exchange) + (h.is_response() ? " response" : " request") +
                                                         " without the required " + to_string(pr.type) + " payload");
    }
    if (rule->required_notify != NotifyType{} && !error_reply) {
        bool found = false;
        for (const auto& p : payloads)
            if (auto* n = std::get_if<NotifyPayload>(&p.body)) found |= n->type == rule->required_notify;
        if (!found)
            return wire_err(WireErrc::RuleViolation, to_string(h.exchange) + (h.is_response() ? " response" : " request") +
                                                         " without the required N(" + to_string(rule->required_notify) + ")");
    }
    return true;
}

}  // namespace qkd::ike::wire
