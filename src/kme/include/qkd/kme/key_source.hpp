#pragma once
// Where key material comes from (issue 2, point 3): the key source is an interface.
//
// KeyMaterial is one direction of a QKD link as a stream of secret bytes that the KMEs at both
// ends read identically by offset; that is all a slave's KME needs to deliver a reserved key.
// KeySource adds, for the directions where this KME serves masters, the budget: how much of the
// stream the device has produced so far. KeyManager allocates offsets below that budget, records
// them (high-water marks, reservations) and reads material only when it hands a key out, so a
// source never has to store or send key material itself.
//
// Built in: the emulated link (DESIGN.md §4), a KeyStream (AES-256-CTR keyed from the shared link
// seed) with a Pool (secret key rate, device buffer, scheduled outages); and a link fed by the key
// files a QKD device drops in a folder (key_files.hpp), whose material is finite, may be missing
// on one side, and can fail to read.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "qkd/common/secret.hpp"
#include "qkd/kme/config.hpp"

namespace qkd::kme {

// Implementations must be thread-safe: KeyManager calls them from several event-loop threads
// without holding a lock of its own.
class KeyMaterial {
public:
    virtual ~KeyMaterial() = default;
    // The direction, e.g. "KME_A->KME_B"; stored with reservations and high-water marks.
    virtual const std::string& label() const = 0;
    // Fills `out` with stream bytes [offset, offset + out.size()). Thread-safe. A source that can
    // fail (a key file vanished, an I/O error) throws std::runtime_error with a message naming the
    // stream and the offsets (never key bytes), with `out` wiped.
    virtual void read(std::uint64_t offset, std::span<std::uint8_t> out) const = 0;
    SecretBytes read(std::uint64_t offset, std::size_t n) const {
        SecretBytes out(n);
        read(offset, out.mut_view());
        return out;
    }
    // Bytes [offset, offset + n) are here to be read (the slave's KME checks a peer's reservation
    // with it: material the device has not delivered here cannot be promised to a slave).
    virtual bool has(std::uint64_t offset, std::size_t n) const {
        (void)offset;
        (void)n;
        return true;
    }
    // What both ends of the link must agree on for bytes [offset, offset + n): where the material
    // comes from, never the material. The master's KME sends it with a reservation and the slave's
    // KME refuses the reservation when its own differs, so two ends that do not hold the same key
    // material (different seed files, key_dir folders whose files differ) give 503, never keys
    // that differ. Emulated link: a check value derived from the seed (HKDF, independent of the
    // stream's key); key files: the files holding the first and the last byte, the positions in
    // them, and a digest chained over every indexed file's name and size up to each.
    virtual std::string fingerprint(std::uint64_t offset, std::size_t n) const {
        (void)offset;
        (void)n;
        return {};
    }
    // The peer KME has reserved material of this (incoming) direction below `end`: a source that
    // deletes used material learns how far the peer's masters have gone.
    virtual void reserved_below(std::uint64_t end, std::chrono::steady_clock::time_point now) {
        (void)end;
        (void)now;
    }
};

class KeySource : public KeyMaterial {
public:
    using TimePoint = std::chrono::steady_clock::time_point;
    // Bits the device has produced and this KME has not yet taken.
    virtual double available(TimePoint now) = 0;
    // Takes `bits` if that much is available; false (and nothing taken) otherwise.
    virtual bool take(double bits, TimePoint now) = 0;
    // The link is down (no new material) at `now`.
    virtual bool in_outage(TimePoint now) const = 0;
    // Bits KeyManager has taken and still holds, not handed out yet (keys reserved ahead on the
    // peer, prefetch_keys): a source with a device buffer keeps available() + held within it.
    virtual void set_held(double bits) { (void)bits; }
    // KeyManager resumes allocation at `offset` (its stored high-water mark) after a start: a source
    // whose budget is a position in a finite stream counts from there. Called once, before any take.
    virtual void resume_at(std::uint64_t offset) { (void)offset; }
    // How far ahead of use KeyManager persists its high-water mark: a crash skips at most this many
    // bytes. Scarce (real) material wants a small step, at the cost of more fsynced commits.
    virtual std::uint64_t mark_step() const { return 1 << 20; }
    // Called about once a second (KeyManager::expire_reservations), so a source can do its
    // housekeeping when no requests come.
    virtual void maintain(TimePoint now) { (void)now; }
    // Where the material comes from, for 503 messages (e.g. "key files in /var/lib/qkd/ab"); empty
    // for the emulated link.
    virtual std::string origin() const { return {}; }
    // Key files held (indexed and not yet deleted), for the qkd_kme_key_files gauge; -1: not a
    // file source.
    virtual std::int64_t key_files() const { return -1; }
};

// The emulated link's outgoing direction: stream `label` derived from `link_seed`, with material
// appearing at the link's key rate up to `capacity_bits`.
std::unique_ptr<KeySource> make_emulated_source(std::span<const std::uint8_t> link_seed, const std::string& label, const LinkConfig& link,
                                                double capacity_bits, KeySource::TimePoint start);
// Makes the outgoing source of one link direction (KeyManager calls it once per link, the local
// link included); an empty factory means make_emulated_source.
using KeySourceFactory = std::function<std::unique_ptr<KeySource>(std::span<const std::uint8_t> link_seed, const std::string& label,
                                                                  const LinkConfig& link, double capacity_bits, KeySource::TimePoint start)>;
// Makes the material of a direction the peer serves masters from (this KME reads it for slaves);
// it must give the same bytes as the peer's outgoing source. Empty: make_emulated_material.
using KeyMaterialFactory = std::function<std::unique_ptr<KeyMaterial>(std::span<const std::uint8_t> link_seed, const std::string& label)>;
// The emulated link's incoming direction (the peer serves its masters from it; this KME only reads).
std::unique_ptr<KeyMaterial> make_emulated_material(std::span<const std::uint8_t> link_seed, const std::string& label);

}  // namespace qkd::kme
