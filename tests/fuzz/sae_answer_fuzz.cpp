// libFuzzer harness for the SAE client's answer checks and KME URL parser. The first byte picks
// the parser; the rest is the KME's answer body (or URL).
#include <cstddef>
#include <cstdint>
#include <string>

#include "qkd/sae/answer.hpp"
#include "qkd/sae/url.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
    using namespace qkd::sae;
    switch (data[0] % 4) {
        case 0: {
            HttpAnswer a{200, "application/json", body};
            (void)process_status_answer(a, StatusExpect{"SAE_A", "SAE_B", std::string("KME_A")});
            break;
        }
        case 1: {
            HttpAnswer a{200, "application/json", body};
            (void)process_keys_answer(a, KeysExpect{2, 256, {"a", "b"}});
            break;
        }
        case 2: {
            HttpAnswer a{400 + data[0] % 200, "", body};
            (void)http_error(a);
            break;
        }
        default:
            (void)parse_kme_url(body);
            break;
    }
    return 0;
}
