// libFuzzer harness for IKEv2 message parsing: the outer header and payload chain, the
// per-exchange rules, the inner payload chain of SK/SKF bodies, and a responder Engine's
// on_datagram (which must never crash, whatever arrives on UDP 500/4500).
#include <cstddef>
#include <cstdint>

#include "../../src/ike/wire/message.hpp"
#include "qkd/ike/engine.hpp"

namespace {

struct NullSink final : qkd::ike::EventSink {
    void send_datagram(const qkd::ike::Endpoint&, const qkd::ike::Endpoint&, std::span<const std::uint8_t>) override {}
    void child_sa_up(const qkd::ike::ChildSaKeys&) override {}
    void child_sa_rekeyed(const qkd::ike::ChildSaRef&, const qkd::ike::ChildSaKeys&) override {}
    void child_sa_down(const qkd::ike::ChildSaRef&) override {}
};

struct CountingRng final : qkd::Rng {
    std::uint8_t n = 0;
    void fill(std::span<std::uint8_t> out) override {
        for (auto& b : out) b = ++n;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace qkd::ike;
    std::span<const std::uint8_t> in(data, size);
    auto m = wire::decode_outer(in);
    if (m.ok()) {
        (void)wire::check_rules(m->header, m->encrypted, m->plain);
        if (m->encrypted) {
            // Parse the body as if it were decrypted, to reach the inner payload decoders.
            auto inner = wire::decode_chain(m->ciphertext, m->inner_first);
            if (inner.ok()) (void)wire::check_rules(m->header, true, *inner);
        }
    }
    static CountingRng rng;
    static NullSink sink;
    static Engine engine(qkd::SystemClock::instance(), rng, sink);
    static const bool configured = [] {
        GatewayConfig g;
        g.name = "fuzz";
        g.local = {IpAddr::v4(192, 0, 2, 1), 500};
        g.remote = {IpAddr::v4(198, 51, 100, 1), 500};
        g.local_id = *Identity::parse("a.example");
        g.remote_id = *Identity::parse("b.example");
        g.psk = qkd::SecretBytes(32);
        g.ike_proposals = parse_ike_proposals("aes256gcm16-prfsha512-ecp256").value();
        g.esp_proposals = parse_esp_proposals("aes256gcm16").value();
        g.local_ts = {*TrafficSelector::parse_cidr("10.1.0.0/16")};
        g.remote_ts = {*TrafficSelector::parse_cidr("10.2.0.0/16")};
        return engine.add_gateway(std::move(g)).ok();
    }();
    if (!configured) __builtin_trap();
    engine.on_datagram({IpAddr::v4(192, 0, 2, 1), 500}, {IpAddr::v4(198, 51, 100, 1), 500}, in);
    engine.on_datagram({IpAddr::v4(192, 0, 2, 1), 4500}, {IpAddr::v4(198, 51, 100, 1), 4500}, in);
    return 0;
}
