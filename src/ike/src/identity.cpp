// Identity matching for gateway selection: exact identities, '*' patterns and lists (see
// qkd/ike/identity.hpp for the forms and the precedence).
#include "qkd/ike/identity.hpp"

#include <algorithm>

namespace qkd::ike {

namespace {

constexpr std::size_t kMaxIdentityText = 255;

Err<IdentityError> fail(IdentityErrc c, std::string m) { return Err{IdentityError{c, std::move(m)}}; }

std::uint8_t lower(std::uint8_t c) { return c >= 'A' && c <= 'Z' ? static_cast<std::uint8_t>(c - 'A' + 'a') : c; }

bool text_type(IdType t) { return t == IdType::Fqdn || t == IdType::Rfc822; }

// '*' matches any run of octets (also none); everything else one octet, ASCII case-insensitive.
// Iterative with one backtrack point (the last '*'): O(|pattern| * |text|), both <= 255.
bool glob(std::span<const std::uint8_t> p, std::span<const std::uint8_t> s) {
    std::size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
    while (si < s.size()) {
        if (pi < p.size() && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < p.size() && lower(p[pi]) == lower(s[si])) {
            ++pi;
            ++si;
        } else if (star != std::string_view::npos) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
}

}  // namespace

bool same_identity(const Identity& a, const Identity& b) {
    if (a.type != b.type || a.data.size() != b.data.size()) return false;
    if (!text_type(a.type)) return a.data == b.data;
    return std::equal(a.data.begin(), a.data.end(), b.data.begin(), [](auto x, auto y) { return lower(x) == lower(y); });
}

Result<IdentityPattern, IdentityError> IdentityPattern::parse(std::string_view text) {
    IdentityPattern p;
    if (text.empty()) return fail(IdentityErrc::Empty, "empty identity");
    if (text.size() > kMaxIdentityText)
        return fail(IdentityErrc::Invalid, "identity of " + std::to_string(text.size()) + " characters, expected at most " +
                                               std::to_string(kMaxIdentityText));
    if (text == "%any" || text == "*") {
        p.kind_ = Kind::Any;
        return p;
    }
    const std::string quoted = "\"" + std::string(text) + "\"";
    if (text.find('*') == std::string_view::npos) {
        auto id = Identity::parse(text);
        if (!id)
            return fail(IdentityErrc::Invalid,
                        quoted + " is not an identity, expected an FQDN, an IP address, user@host, @#hex or a '*' pattern");
        p.id_ = std::move(*id);
        return p;
    }
    if (text.starts_with("@#")) return fail(IdentityErrc::NotAPattern, quoted + ": a KEY_ID identity cannot contain '*'");
    std::string probe(text);
    std::replace(probe.begin(), probe.end(), '*', '1');
    if (IpAddr::parse(probe))
        return fail(IdentityErrc::NotAPattern,
                    quoted + ": IP address identities cannot be patterns, list the addresses instead");
    // strongSwan conventions as in Identity::parse: a leading '@' forces an FQDN, else an '@'
    // makes it RFC822 (user@host).
    std::string_view body = text;
    if (body.front() == '@') {
        body.remove_prefix(1);
        p.id_.type = IdType::Fqdn;
    } else {
        p.id_.type = body.find('@') != std::string_view::npos ? IdType::Rfc822 : IdType::Fqdn;
    }
    p.kind_ = Kind::Wildcard;
    p.id_.data.assign(body.begin(), body.end());
    return p;
}

std::optional<IdMatch> IdentityPattern::match(const Identity& id) const {
    switch (kind_) {
        case Kind::Any: return IdMatch{false, 0};
        case Kind::Exact:
            if (!same_identity(id_, id)) return std::nullopt;
            return IdMatch{true, id_.data.size()};
        case Kind::Wildcard:
            if (id.type != id_.type || !glob(id_.data, id.data)) return std::nullopt;
            return IdMatch{false, static_cast<std::size_t>(std::count_if(id_.data.begin(), id_.data.end(), [](auto c) { return c != '*'; }))};
    }
    return std::nullopt;
}

std::string IdentityPattern::str() const { return kind_ == Kind::Any ? "%any" : id_.str(); }

IdentityPattern IdentityPattern::exact(Identity id) {
    IdentityPattern p;
    p.id_ = std::move(id);
    return p;
}

RemoteIdentity::RemoteIdentity(Identity exact) { entries_.push_back(IdentityPattern::exact(std::move(exact))); }

Result<RemoteIdentity, IdentityError> RemoteIdentity::parse(std::string_view text) {
    auto p = IdentityPattern::parse(text);
    if (!p) return Err{p.error()};
    RemoteIdentity r;
    r.entries_.push_back(std::move(p).value());
    return r;
}

Result<RemoteIdentity, IdentityError> RemoteIdentity::parse(std::span<const std::string> texts) {
    if (texts.empty()) return fail(IdentityErrc::Empty, "empty list of identities");
    if (texts.size() > kMaxRemoteIds)
        return fail(IdentityErrc::TooMany, std::to_string(texts.size()) + " identities, at most " + std::to_string(kMaxRemoteIds));
    RemoteIdentity r;
    for (const auto& t : texts) {
        auto p = IdentityPattern::parse(t);
        if (!p) return Err{p.error()};
        for (const auto& e : r.entries_)
            if (e.kind() == p->kind() && (e.kind() == IdentityPattern::Kind::Any || same_identity(e.identity(), p->identity())))
                return fail(IdentityErrc::Invalid, "\"" + t + "\" is listed twice");
        r.entries_.push_back(std::move(p).value());
    }
    return r;
}

const Identity* RemoteIdentity::exact() const {
    if (entries_.size() != 1 || entries_[0].kind() != IdentityPattern::Kind::Exact) return nullptr;
    return &entries_[0].identity();
}

std::optional<IdMatch> RemoteIdentity::match(const Identity& id) const {
    std::optional<IdMatch> best;
    for (const auto& e : entries_)
        if (auto m = e.match(id); m && (!best || *m > *best)) best = m;
    return best;
}

std::string RemoteIdentity::str() const {
    std::string out;
    for (const auto& e : entries_) {
        if (!out.empty()) out += ", ";
        out += e.str();
    }
    return out;
}

}  // namespace qkd::ike
