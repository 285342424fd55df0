// libFuzzer: the KME's request-target parser, the KME-to-KME reservation decoder, and the HTTP/1.1
// request reader fed the input in pieces, as TLS records would bring it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "qkd/kme/http_reader.hpp"
#include "qkd/kme/router.hpp"
#include "qkd/kme/sync_codec.hpp"

namespace {

// First input byte: the low 7 bits + 1 are the piece size (1..128 bytes); the high bit picks
// small limits (so that 413 and 431 are reached by short inputs) or the server's (8192, 65536).
// Returns what came out: each request's method, target and body, then "error" or "more"; the same
// input must give the same outcome however it is split. The input is followed by an empty line:
// Beast checks the request line of a header that came in one piece at once but waits for the end
// of one that came in several, so an unfinished bad header is refused in the first case and
// pending in the second; once the header ends, both are refused.
std::string read_requests(const std::uint8_t* input, std::size_t input_size, bool whole) {
    std::string log;
    if (input_size == 0) return log;
    std::string bytes(reinterpret_cast<const char*>(input), input_size);
    bytes += "\r\n\r\n";
    const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
    const std::size_t size = bytes.size();
    const std::size_t piece = whole ? size : (data[0] & 0x7f) + 1u;
    const bool small = (data[0] & 0x80) != 0;
    const std::size_t header_limit = small ? 512 : 8192, body_limit = small ? 256 : 65536;
    qkd::kme::RequestReader reader(header_limit, body_limit);
    std::size_t fed = 0;
    for (std::size_t at = 1; at < size;) {
        const std::size_t n = std::min(piece, size - at);
        auto room = reader.prepare(n);
        if (room.size() < n) __builtin_trap();
        std::memcpy(room.data(), data + at, n);
        reader.commit(n);
        at += n;
        fed += n;
        // As the server does: parse, take complete requests, stop at NeedMore or Error.
        for (;;) {  // each pass takes a request or stops
            if (reader.buffered() > fed) __builtin_trap();
            const auto o = reader.parse();
            if (o.state == qkd::kme::RequestReader::State::Error) {
                if (o.status != 400 && o.status != 413 && o.status != 431 && o.status != 501) __builtin_trap();
                if (std::getenv("KME_FUZZ_PRINT")) std::fprintf(stderr, "error %u: %s\n", o.status, o.message.c_str());
                return log + "error";  // the server answers and closes
            }
            if (o.state == qkd::kme::RequestReader::State::NeedMore) {
                (void)reader.continue_due();
                break;
            }
            if (reader.continue_due()) __builtin_trap();  // never once the request is complete
            const auto req = reader.take();
            if (req.body().size() > body_limit) __builtin_trap();
            log += std::string(req.method_string()) + " " + std::string(req.target()) + " [" + req.body() + "]\n";
            if (reader.buffered() == 0 && !reader.idle()) __builtin_trap();
        }
    }
    return log + "more";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)qkd::kme::parse_target(in);
    if (auto b = qkd::kme::decode_sync_batch(in)) (void)qkd::kme::decode_sync_batch(qkd::kme::encode_sync_batch(*b));
    (void)qkd::kme::decode_sync_results(in, 3);
    const auto split = read_requests(data, size, false), whole = read_requests(data, size, true);
    if (split != whole) {  // the outcome depends on how the input was split
        std::fprintf(stderr, "in pieces:\n%s\nwhole:\n%s\n", split.c_str(), whole.c_str());
        __builtin_trap();
    }
    return 0;
}
