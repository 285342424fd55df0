#pragma once
// RFC 7296 3.1 IKE header:
//                      1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                       IKE SA Initiator's SPI                  |
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                       IKE SA Responder's SPI                  |
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                          Message ID                           |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                            Length                             |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#include <cstdint>
#include <span>

#include "constants.hpp"
#include "error.hpp"
#include "qkd/common/bytes.hpp"

namespace qkd::ike::wire {

struct Header {
    std::uint64_t spi_i = 0, spi_r = 0;
    PayloadType next_payload = PayloadType::None;
    std::uint8_t version = kVersion;
    ExchangeType exchange = ExchangeType::IkeSaInit;
    std::uint8_t flags = 0;
    std::uint32_t message_id = 0;
    std::uint32_t length = 0;

    bool is_response() const { return flags & kFlagResponse; }
    bool from_initiator() const { return flags & kFlagInitiator; }

    // Checks the major version and that Length equals the datagram size.
    static WireResult<Header> decode(std::span<const std::uint8_t> datagram);
    void encode(ByteWriter& w) const;  // Length as given; patch it after the payloads
};

// The IKE SPIs of a datagram without a full decode, for the dispatcher.
bool peek_spis(std::span<const std::uint8_t> datagram, std::uint64_t& spi_i, std::uint64_t& spi_r);

}  // namespace qkd::ike::wire
