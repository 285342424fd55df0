// Inbound ESP parsing: the first octet picks the path.
//   even: the input is an ESP packet as received (SPI .. ICV), decrypted in place by an SA;
//   odd:  the input is a *plaintext* (inner packet, padding, pad length, next header) sealed with
//         the SA's key, so the fuzzer reaches the checks behind the ICV (padding, next header)
//         and the inner packet parser.
#include <cstdint>
#include <vector>

#include "../unit/dataplane/esp_reference.hpp"
#include "qkd/dataplane/esp_sa.hpp"
#include "qkd/dataplane/inner_packet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace qkd::dp;
    if (size < 1) return 0;
    static const std::vector<std::uint8_t> key(32, 0x42), salt{1, 2, 3, 4};
    SaSpec s;
    s.direction = Direction::inbound;
    s.spi = 0x01020304;
    s.key = qkd::SecretBytes(key);
    s.salt = qkd::SecretBytes(salt);
    s.esn = data[0] & 2;
    auto sa = std::move(EspSa::create(std::move(s)).value());
    std::vector<std::uint8_t> pkt(data + 1, data + size);
    if (data[0] & 1) pkt = esp_ref::build(key, salt, 0x01020304, 1, data[0] & 2, pkt);
    std::size_t inner_len = 0;
    std::uint8_t nh = 0;
    if (sa->decrypt_in_place(pkt, &inner_len, &nh) == EspStatus::ok)
        (void)parse_inner_packet(std::span(pkt).subspan(esp_prefix_len, inner_len));
    return 0;
}
