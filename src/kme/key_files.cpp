#include "qkd/kme/key_files.hpp"

// The two KeySource/KeyMaterial faces of a key-file link over its shared FileLink
// (key_file_link.hpp), and the free functions of key_files.hpp other than wipe_key_file.
#include <cctype>
#include <memory>
#include <stdexcept>
#include <string>

#include "key_file_link.hpp"

namespace qkd::kme {

using detail::FileLink;
using TimePoint = std::chrono::steady_clock::time_point;

namespace {

class OutgoingFiles final : public KeySource {
public:
    OutgoingFiles(std::shared_ptr<FileLink> l, std::string label) : link_(std::move(l)), label_(std::move(label)) {}
    const std::string& label() const override { return label_; }
    void read(std::uint64_t offset, std::span<std::uint8_t> out) const override { link_->read(link_->out_half(), label_, offset, out); }
    using KeyMaterial::read;
    bool has(std::uint64_t offset, std::size_t n) const override { return link_->has(link_->out_half(), offset, n); }
    std::string fingerprint(std::uint64_t offset, std::size_t n) const override { return link_->fingerprint(offset, n); }
    double available(TimePoint now) override { return link_->available(now); }
    bool take(double bits, TimePoint now) override { return link_->take(bits, now); }
    // Down while nothing is left: a silent device shows as an outage once its last file is used.
    bool in_outage(TimePoint) const override { return link_->in_outage(); }
    void resume_at(std::uint64_t offset) override { link_->resume_at(offset); }
    // max(resume_at's offset, the index's mark): where KeyManager must start allocating.
    std::uint64_t resume_position() const { return link_->resume_position(); }
    std::uint64_t mark_step() const override { return kKeyFileMarkStep; }
    void maintain(TimePoint now) override { link_->maintain(now); }
    std::string origin() const override { return link_->origin(); }
    std::int64_t key_files() const override { return link_->files_held(); }

private:
    std::shared_ptr<FileLink> link_;
    std::string label_;
};

class IncomingFiles final : public KeyMaterial {
public:
    IncomingFiles(std::shared_ptr<FileLink> l, std::string label) : link_(std::move(l)), label_(std::move(label)) {}
    const std::string& label() const override { return label_; }
    void read(std::uint64_t offset, std::span<std::uint8_t> out) const override { link_->read(1 - link_->out_half(), label_, offset, out); }
    using KeyMaterial::read;
    bool has(std::uint64_t offset, std::size_t n) const override { return link_->has(1 - link_->out_half(), offset, n); }
    std::string fingerprint(std::uint64_t offset, std::size_t n) const override { return link_->fingerprint(offset, n); }
    void reserved_below(std::uint64_t end, std::chrono::steady_clock::time_point now) override { link_->reserved_below(end, now); }

private:
    std::shared_ptr<FileLink> link_;
    std::string label_;
};

}  // namespace

KeyFileLink make_key_file_link(const KeyFileLinkOptions& options, std::chrono::steady_clock::time_point start) {
    if (options.local_kme == options.peer_kme) throw std::invalid_argument("a key-file link joins two different KMEs");
    auto link = std::make_shared<FileLink>(options, start);
    return KeyFileLink{std::make_unique<OutgoingFiles>(link, options.local_kme + "->" + options.peer_kme),
                       std::make_unique<IncomingFiles>(link, options.peer_kme + "->" + options.local_kme)};
}

std::uint64_t resume_position(const KeySource& source) {
    const auto* files = dynamic_cast<const OutgoingFiles*>(&source);
    return files ? files->resume_position() : 0;
}

std::string key_file_index_path(const std::string& state_db, const std::string& peer_kme) {
    std::string id = peer_kme;
    for (char& ch : id)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') ch = '_';
    return state_db + ".keyfiles-" + id;
}

}  // namespace qkd::kme
