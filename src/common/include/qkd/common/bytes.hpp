#pragma once
// One bounded reader for all binary parsing and its mirror writer (STYLE.md habit 4).
// Every read checks the remaining length first; a failed read poisons the reader so a
// sequence of reads can be checked once at the end with ok().
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace qkd {

class ByteReader {
public:
    explicit ByteReader(std::span<const std::uint8_t> in) : in_(in) {}

    std::optional<std::uint8_t> u8();
    std::optional<std::uint16_t> u16();
    std::optional<std::uint32_t> u32();
    std::optional<std::uint64_t> u64();
    std::optional<std::span<const std::uint8_t>> bytes(std::size_t n);
    // A sub-reader over the next n bytes; the parent advances past them.
    std::optional<ByteReader> sub(std::size_t n);
    std::span<const std::uint8_t> rest();
    bool skip(std::size_t n);

    std::size_t remaining() const { return failed_ ? 0 : in_.size() - pos_; }
    std::size_t position() const { return pos_; }
    bool empty() const { return remaining() == 0; }
    bool ok() const { return !failed_; }
    // True when everything was consumed and no read failed.
    bool expect_end() const { return !failed_ && pos_ == in_.size(); }

private:
    bool need(std::size_t n);
    std::span<const std::uint8_t> in_;
    std::size_t pos_ = 0;
    bool failed_ = false;
};

class ByteWriter {
public:
    ByteWriter() = default;
    void u8(std::uint8_t v) { out_.push_back(v); }
    void u16(std::uint16_t v);
    void u32(std::uint32_t v);
    void u64(std::uint64_t v);
    void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
    void zeros(std::size_t n) { out_.insert(out_.end(), n, 0); }
    // Reserve a big-endian 16-bit length to fill later with patch_u16.
    std::size_t placeholder_u16() { auto at = out_.size(); u16(0); return at; }
    void patch_u16(std::size_t at, std::uint16_t v);
    void patch_u32(std::size_t at, std::uint32_t v);
    std::size_t size() const { return out_.size(); }
    const std::vector<std::uint8_t>& data() const { return out_; }
    std::vector<std::uint8_t> take() { return std::move(out_); }

private:
    std::vector<std::uint8_t> out_;
};

}  // namespace qkd
