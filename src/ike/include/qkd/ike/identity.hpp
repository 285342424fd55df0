#pragma once
// Which peer identities a gateway accepts (RFC 7296 3.5 and 2.15 leave the match of a received
// IDi/IDr against configuration to local policy). strongSwan users know the forms from
// swanctl.conf `remote { id = ... }`:
//
//   "gw-b.example"            one exact identity (the only form an initiator can use: it is
//                             sent as IDr)
//   "*@bench.qkdgate"         a pattern: each '*' matches any run of characters (also none) of
//   "bench-*.west.example"    an FQDN or RFC822 identity of the same type as the pattern
//   "%any" or "*"             every identity
//   ["a.example", "*@b.org"]  a list: the identity matches when one entry does
//
// FQDN and RFC822 text compares ASCII case-insensitively (DNS names are, RFC 4343; strongSwan
// does the same for both types); IP addresses and KEY_IDs compare octet by octet and cannot be
// patterns. A gateway with anything but one exact identity can only respond.
#include <compare>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkd/common/error.hpp"
#include "qkd/common/result.hpp"
#include "qkd/ike/types.hpp"

namespace qkd::ike {

inline constexpr std::size_t kMaxRemoteIds = 64;  // entries of one remote_id list

// The same identity under the rules above (type equal; text types case-insensitive).
bool same_identity(const Identity& a, const Identity& b);

// How well an identity matched, compared member by member: an exact entry beats every pattern;
// among patterns, more literal (non-'*') characters win, so "bench-*.west" beats "*.west"
// beats "*"/"%any" (0).
struct IdMatch {
    bool exact = false;
    std::size_t literal = 0;
    auto operator<=>(const IdMatch&) const = default;
};

enum class IdentityErrc { Empty, Invalid, NotAPattern, TooMany };
using IdentityError = qkd::Error<IdentityErrc>;

class IdentityPattern {
public:
    enum class Kind : std::uint8_t { Exact, Wildcard, Any };

    static Result<IdentityPattern, IdentityError> parse(std::string_view text);
    static IdentityPattern exact(Identity id);
    std::optional<IdMatch> match(const Identity& id) const;
    Kind kind() const { return kind_; }
    const Identity& identity() const { return id_; }  // Exact: the identity; Wildcard: type + text with '*'
    std::string str() const;                          // as written (without a leading '@')

private:
    Kind kind_ = Kind::Exact;
    Identity id_;
};

class RemoteIdentity {
public:
    RemoteIdentity() = default;
    RemoteIdentity(Identity exact);  // NOLINT(google-explicit-constructor): one exact identity

    // One entry, or a list of entries (at most kMaxRemoteIds, none twice).
    static Result<RemoteIdentity, IdentityError> parse(std::string_view text);
    static Result<RemoteIdentity, IdentityError> parse(std::span<const std::string> texts);

    bool empty() const { return entries_.empty(); }
    // The identity an initiator sends as IDr: set only for one exact entry.
    const Identity* exact() const;
    // The best match over all entries; nullopt = not accepted.
    std::optional<IdMatch> match(const Identity& id) const;
    const std::vector<IdentityPattern>& entries() const { return entries_; }
    std::string str() const;  // "gw-b.example" or "a.example, *@b.org"

private:
    std::vector<IdentityPattern> entries_;
};

}  // namespace qkd::ike
