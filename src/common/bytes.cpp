#include "qkd/common/bytes.hpp"

namespace qkd {

bool ByteReader::need(std::size_t n) {
    if (failed_ || in_.size() - pos_ < n) {
        failed_ = true;
        return false;
    }
    return true;
}

std::optional<std::uint8_t> ByteReader::u8() {
    if (!need(1)) return std::nullopt;
    return in_[pos_++];
}

std::optional<std::uint16_t> ByteReader::u16() {
    if (!need(2)) return std::nullopt;
    std::uint16_t v = static_cast<std::uint16_t>((in_[pos_] << 8) | in_[pos_ + 1]);
    pos_ += 2;
    return v;
}

std::optional<std::uint32_t> ByteReader::u32() {
    if (!need(4)) return std::nullopt;
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | in_[pos_ + i];
    pos_ += 4;
    return v;
}

std::optional<std::uint64_t> ByteReader::u64() {
    if (!need(8)) return std::nullopt;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | in_[pos_ + i];
    pos_ += 8;
    return v;
}

std::optional<std::span<const std::uint8_t>> ByteReader::bytes(std::size_t n) {
    if (!need(n)) return std::nullopt;
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
}

std::optional<ByteReader> ByteReader::sub(std::size_t n) {
    auto b = bytes(n);
    if (!b) return std::nullopt;
    return ByteReader(*b);
}

std::span<const std::uint8_t> ByteReader::rest() {
    if (failed_) return {};
    auto s = in_.subspan(pos_);
    pos_ = in_.size();
    return s;
}

bool ByteReader::skip(std::size_t n) { return bytes(n).has_value(); }

void ByteWriter::u16(std::uint16_t v) {
    out_.push_back(static_cast<std::uint8_t>(v >> 8));
    out_.push_back(static_cast<std::uint8_t>(v));
}

void ByteWriter::u32(std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out_.push_back(static_cast<std::uint8_t>(v >> s));
}

void ByteWriter::u64(std::uint64_t v) {
    for (int s = 56; s >= 0; s -= 8) out_.push_back(static_cast<std::uint8_t>(v >> s));
}

void ByteWriter::patch_u16(std::size_t at, std::uint16_t v) {
    out_.at(at) = static_cast<std::uint8_t>(v >> 8);
    out_.at(at + 1) = static_cast<std::uint8_t>(v);
}

void ByteWriter::patch_u32(std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.at(at + i) = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

}  // namespace qkd
