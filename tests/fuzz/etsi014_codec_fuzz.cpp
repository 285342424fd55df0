// libFuzzer: every ETSI 014 JSON decoder on arbitrary bytes; round trip what decodes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "qkd/etsi014/codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    using namespace qkd::etsi014;
    if (auto s = decode_status(in)) (void)decode_status(encode(*s));
    if (auto r = decode_key_request(in)) (void)decode_key_request(encode(*r));
    if (auto k = decode_key_ids(in)) (void)decode_key_ids(encode(*k));
    if (auto c = decode_key_container(in)) (void)decode_key_container(encode(*c));
    (void)decode_error(in);
    return 0;
}
