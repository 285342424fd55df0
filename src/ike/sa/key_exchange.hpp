#pragma once
// Key exchange as one component (shared/docs/ike-tasks.md): the negotiated methods by slot
// (0 = the KE transform, 1..7 = ADDKE1..7, RFC 9370 2.2) and, for each slot, our KE data, the
// peer's, and the shared secret SK(n). IKE_SA_INIT, CREATE_CHILD_SA (child rekey with PFS, IKE
// rekey) and, with RFC 9370, each IKE_INTERMEDIATE / IKE_FOLLOWUP_KE round all go through it.
#include <array>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "../wire/constants.hpp"
#include "qkd/common/result.hpp"
#include "qkd/common/secret.hpp"
#include "qkd/crypto/ke.hpp"

namespace qkd::ike {

inline constexpr std::size_t kKeSlots = 8;  // KE + ADDKE1..ADDKE7 (RFC 9370 2.2.1)
using KeMethods = std::array<crypto::KeGroup, kKeSlots>;

// Why a key exchange round cannot go on, and the notify that says so to the peer.
struct KeFailure {
    wire::NotifyType notify = wire::NotifyType::InvalidSyntax;
    std::string why;
};

class KeyExchanges {
public:
    KeyExchanges() { methods_.fill(crypto::KeGroup::None); }
    explicit KeyExchanges(const KeMethods& m) : methods_(m) {}

    crypto::KeGroup method(std::size_t slot) const { return methods_.at(slot); }
    const KeMethods& methods() const { return methods_; }
    // Changes a slot's method (INVALID_KE_PAYLOAD retry); forgets that slot's key pair and secret.
    void set_method(std::size_t slot, crypto::KeGroup g);
    // RFC 9370 2.2.1: the next slot after `slot` with a method (NONE rounds are skipped).
    std::optional<std::size_t> next(std::size_t slot) const;

    // Cheap checks of the peer's KE payload, run before any key generation so that bogus
    // requests cost no more than a lookup: the method is the slot's, the length is the method's.
    Result<void, KeFailure> check(std::size_t slot, std::uint16_t method, std::span<const std::uint8_t> data,
                                  bool from_initiator) const;

    // Initiator: our KE data for `slot`. The key pair is made once and kept, so a COOKIE retry or
    // a rebuilt request carries the same value (RFC 7296 2.6).
    Result<std::vector<std::uint8_t>, KeFailure> build_i(std::size_t slot);
    // Responder: takes the initiator's data, makes ours and SK(slot).
    Result<std::vector<std::uint8_t>, KeFailure> process_r(std::size_t slot, std::span<const std::uint8_t> peer);
    // Initiator: takes the responder's data and makes SK(slot); our key pair is dropped.
    Result<void, KeFailure> process_i(std::size_t slot, std::span<const std::uint8_t> peer);

    // QKD (KeGroup::Qkd, QURSA wire format, shared/docs/ike.md 1): the key comes from outside
    // (Engine::on_qkd_key). The initiator's KE data is its 16-byte key_ID, the responder's is
    // empty, SK(slot) is the key. build_i / process_r of a QKD slot need the key set first.
    bool is_qkd(std::size_t slot) const { return methods_.at(slot) == crypto::KeGroup::Qkd; }
    bool has_qkd_key(std::size_t slot) const { return qkd_.at(slot).has_value(); }
    void set_qkd_key(std::size_t slot, const std::array<std::uint8_t, 16>& key_id, SecretBytes key);

    // SK(slot) once both halves were processed, else null.
    const SecretBytes* secret(std::size_t slot) const { return secrets_.at(slot) ? &*secrets_.at(slot) : nullptr; }

private:
    KeMethods methods_;
    std::array<std::optional<crypto::KeyExchange>, kKeSlots> ours_;
    std::array<std::optional<SecretBytes>, kKeSlots> secrets_;
    struct QkdKey {
        std::array<std::uint8_t, 16> key_id{};
        SecretBytes key;
    };
    std::array<std::optional<QkdKey>, kKeSlots> qkd_;
};

}  // namespace qkd::ike
