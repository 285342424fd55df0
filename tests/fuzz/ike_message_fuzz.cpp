// libFuzzer harness for IKEv2 message parsing: the outer header and payload chain, the
// per-exchange rules (IKE_INTERMEDIATE and IKE_FOLLOWUP_KE included), the inner payload chain of
// SK/SKF bodies, proposal selection over every decoded SA payload (ADDKE1..7, NONE, proposal
// numbers), the KE data checks of every method (ML-KEM sizes and modulus check), and a responder
// Engine's on_datagram (which must never crash, whatever arrives on UDP 500/4500).
// Post-quantum seeds: tests/fuzz/make_ike_pq_seeds.py.
#include <cstddef>
#include <cstdint>

#include "../../src/ike/src/impl.hpp"
#include "../../src/ike/wire/message.hpp"
#include "qkd/crypto/ke.hpp"
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

// Selection and KE checks over what a message carries, against post-quantum proposals.
void negotiate(const std::vector<qkd::ike::wire::Payload>& payloads) {
    using namespace qkd::ike;
    static const auto ike = parse_ike_proposals(
                                "aes256gcm16-prfsha512-ecp256-ke1_mlkem768-ke1_none-ke2_mlkem1024-ke2_none,"
                                "aes128gcm16-prfsha256-mlkem768,aes256gcm16-prfsha512-x25519-ke1_ecp256-ke3_mlkem512")
                                .value();
    static const auto esp = parse_esp_proposals("aes256gcm16-ecp256-ke1_mlkem768-ke1_none,aes128gcm16-esn").value();
    for (const auto& p : payloads) {
        if (const auto* sa = std::get_if<wire::SaPayload>(&p.body)) {
            for (std::uint16_t ke : {0, 19, 36}) {
                if (auto s = select_ike(ike, *sa, ke)) (void)accept_ike(ike, selected_ike_payload(*s, {}));
                for (bool with_ke : {false, true})
                    if (auto s = select_esp(esp, *sa, with_ke, ke)) (void)accept_esp(esp, selected_esp_payload(*s, 1, with_ke), with_ke);
            }
            (void)accept_ike(ike, *sa);
            (void)accept_esp(esp, *sa, true);
            (void)accept_esp(esp, *sa, false);
        } else if (const auto* ke = std::get_if<wire::KePayload>(&p.body)) {
            const auto g = static_cast<qkd::crypto::KeGroup>(ke->group);
            (void)qkd::crypto::check_peer_data(g, ke->data, true);
            (void)qkd::crypto::check_peer_data(g, ke->data, false);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace qkd::ike;
    std::span<const std::uint8_t> in(data, size);
    auto m = wire::decode_outer(in);
    if (m.ok()) {
        (void)wire::check_rules(m->header, m->encrypted, m->plain);
        negotiate(m->plain);
        if (m->encrypted) {
            // Parse the body as if it were decrypted, to reach the inner payload decoders.
            auto inner = wire::decode_chain(m->ciphertext, m->inner_first);
            if (inner.ok()) {
                (void)wire::check_rules(m->header, true, *inner);
                negotiate(*inner);
            }
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
        // A responder that also allows the post-quantum proposals, so IKE_SA_INIT reaches ADDKE
        // selection and ML-KEM in the KE slot.
        g.ike_proposals = parse_ike_proposals("aes256gcm16-prfsha512-ecp256,aes256gcm16-prfsha512-ecp256-ke1_mlkem768-ke1_none,"
                                              "aes256gcm16-prfsha512-mlkem768")
                              .value();
        g.esp_proposals = parse_esp_proposals("aes256gcm16,aes256gcm16-ecp256-ke1_mlkem768").value();
        g.local_ts = {*TrafficSelector::parse_cidr("10.1.0.0/16")};
        g.remote_ts = {*TrafficSelector::parse_cidr("10.2.0.0/16")};
        return engine.add_gateway(std::move(g)).ok();
    }();
    if (!configured) __builtin_trap();
    engine.on_datagram({IpAddr::v4(192, 0, 2, 1), 500}, {IpAddr::v4(198, 51, 100, 1), 500}, in);
    engine.on_datagram({IpAddr::v4(192, 0, 2, 1), 4500}, {IpAddr::v4(198, 51, 100, 1), 4500}, in);
    return 0;
}
