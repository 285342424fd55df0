#pragma once
// The emulated quantum channel (DESIGN.md §4): both KMEs of a pair hold the same link seed and
// derive the same key stream from it. The stream is AES-256-CTR keyed by HKDF(seed, direction), so
// any byte range can be produced at any time from its offset alone; key material therefore never
// needs to be stored or sent between KMEs, only (offset, length).
// One stream per direction ("KME_A->KME_B" and "KME_B->KME_A") so each KME can be master without
// ever handing out material that the other KME handed out.
#include <cstdint>
#include <span>
#include <string>

#include "qkd/common/secret.hpp"
#include "qkd/kme/key_source.hpp"

namespace qkd::kme {

class KeyStream final : public KeyMaterial {
public:
    KeyStream(std::span<const std::uint8_t> link_seed, const std::string& direction_label);
    // Fills `out` with stream bytes [offset, offset + out.size()). Thread-safe.
    void read(std::uint64_t offset, std::span<std::uint8_t> out) const override;
    using KeyMaterial::read;  // read(offset, n) -> SecretBytes
    const std::string& label() const override { return label_; }
    // "seed check <16 hex digits>": the same for both KMEs exactly when they hold the same seed.
    std::string fingerprint(std::uint64_t, std::size_t) const override { return check_; }

private:
    SecretBytes key_;  // AES-256 key
    std::string check_;
    std::string label_;
    std::uint64_t id_;  // process-unique, for the per-thread cipher context cache
};

// Reads a link seed file: hex text (at least 32 bytes = 64 hex digits), whitespace ignored.
// Throws std::runtime_error naming the file on error.
SecretBytes read_seed_file(const std::string& path);

}  // namespace qkd::kme
