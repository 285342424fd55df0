// libFuzzer: the KME's request-target parser and the KME-to-KME reservation decoder.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "qkd/kme/router.hpp"
#include "qkd/kme/sync_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)qkd::kme::parse_target(in);
    if (auto b = qkd::kme::decode_sync_batch(in)) (void)qkd::kme::decode_sync_batch(qkd::kme::encode_sync_batch(*b));
    (void)qkd::kme::decode_sync_results(in, 3);
    return 0;
}
