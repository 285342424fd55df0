#include "qkd/kme/key_source.hpp"

#include "qkd/kme/key_stream.hpp"
#include "qkd/kme/pool.hpp"

namespace qkd::kme {
namespace {

class EmulatedSource final : public KeySource {
public:
    EmulatedSource(std::span<const std::uint8_t> seed, const std::string& label, const LinkConfig& link, double cap, TimePoint start)
        : stream_(seed, label), pool_(link, cap, start) {}
    const std::string& label() const override { return stream_.label(); }
    void read(std::uint64_t offset, std::span<std::uint8_t> out) const override { stream_.read(offset, out); }
    double available(TimePoint now) override { return pool_.available(now); }
    bool take(double bits, TimePoint now) override { return pool_.take(bits, now); }
    bool in_outage(TimePoint now) const override { return pool_.in_outage(now); }
    void set_held(double bits) override { pool_.set_held(bits); }
    std::string fingerprint(std::uint64_t offset, std::size_t n) const override { return stream_.fingerprint(offset, n); }

private:
    KeyStream stream_;
    Pool pool_;
};

}  // namespace

std::unique_ptr<KeySource> make_emulated_source(std::span<const std::uint8_t> link_seed, const std::string& label, const LinkConfig& link,
                                                double capacity_bits, KeySource::TimePoint start) {
    return std::make_unique<EmulatedSource>(link_seed, label, link, capacity_bits, start);
}

std::unique_ptr<KeyMaterial> make_emulated_material(std::span<const std::uint8_t> link_seed, const std::string& label) {
    return std::make_unique<KeyStream>(link_seed, label);
}

}  // namespace qkd::kme
