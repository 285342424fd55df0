#pragma once
// Exchanges as task objects (shared/docs/ike-tasks.md, after libcharon's tasks): one class per
// exchange kind with the four steps of both roles,
//
//   initiator:  build_i  --request-->   process_r  (responder)
//               process_i <--response-- build_r
//
// and every step answers done, more (another round of the same task: an IKE_SA_INIT retry with a
// cookie, the next IKE_INTERMEDIATE), wait (an input from outside, e.g. a QKD key: nothing is
// sent until Engine::on_key resumes the task) or failed(notify).
//
// The engine (src/engine.cpp) keeps message IDs, retransmission and the response cache; a task
// never sends by itself. A responder task that waits leaves its request unanswered: a
// retransmission of it is dropped until the answer exists, then answered from the cache.
#include <memory>
#include <string>
#include <vector>

#include "../src/impl.hpp"

namespace qkd::ike {

enum class Status { Done, More, Wait, Failed };

struct Step {
    Status status = Status::Done;
    std::optional<Payload> error;  // Failed, responder: the notify to answer with
    std::string why;               // Failed: for the log / IkeSaEvent::Failed
    static Step done() { return {}; }
    static Step more() { return {Status::More, {}, {}}; }
    static Step wait() { return {Status::Wait, {}, {}}; }
    static Step failed(Payload notify, std::string why) { return {Status::Failed, std::move(notify), std::move(why)}; }
    static Step failed(wire::NotifyType n, std::string why) { return failed(wire::make_notify(n), std::move(why)); }
    // An initiator task that ends without a notify to send.
    static Step abort(std::string why) { return {Status::Failed, {}, std::move(why)}; }
};

// An input a waiting task gets from outside the engine (Engine::on_key).
struct ExternalKey {
    unsigned slot = 0;
    std::array<std::uint8_t, 16> key_id{};  // QKD: the key's ETSI 014 key_ID (binary UUID)
    std::optional<SecretBytes> key;  // empty: the key source failed
    std::string error;
};

class ExchangeTask {
public:
    ExchangeTask(Engine::Impl& e, Task spec) : e_(e), spec_(std::move(spec)) {}
    virtual ~ExchangeTask() = default;
    ExchangeTask(const ExchangeTask&) = delete;
    ExchangeTask& operator=(const ExchangeTask&) = delete;

    const Task& spec() const { return spec_; }
    virtual wire::ExchangeType exchange() const = 0;

    // Initiator: the request's payloads, then the response.
    virtual Step build_i(IkeSa& sa, std::vector<Payload>& out) = 0;
    virtual Step process_i(IkeSa& sa, const Message& response) = 0;
    // Responder: the request, then the response's payloads; after_r runs once it was sent.
    virtual Step process_r(IkeSa& sa, const Message& request) = 0;
    virtual Step build_r(IkeSa& sa, std::vector<Payload>& out) = 0;
    virtual void after_r(IkeSa&, const Step&) {}
    // RFC 9370 2.2.4: non-null while this responder task awaits an IKE_FOLLOWUP_KE with this link
    // data (the engine keeps the task on the IKE SA until then).
    virtual const std::vector<std::uint8_t>* followup_link() const { return nullptr; }
    // A waiting task gets its input; it answers as the step that waited would have.
    virtual Step resume(IkeSa&, ExternalKey&) { return Step::failed(wire::NotifyType::InvalidSyntax, "nothing to resume"); }

protected:
    Engine::Impl& e_;
    Task spec_;
};

// QKD rounds (tasks/qkd_round.cpp): asks the daemon for the key (EventSink::qkd_key_request) and
// answers wait; accept_qkd_key stores what Engine::on_qkd_key brought into the SA's key exchange.
Step request_qkd_key(Engine::Impl& e, IkeSa& sa, std::size_t slot, bool master, const std::array<std::uint8_t, 16>& key_id);
void accept_qkd_key(Engine::Impl& e, IkeSa& sa, std::size_t slot, ExternalKey& k);

// Factories (one file per exchange in tasks/).
std::unique_ptr<ExchangeTask> make_ike_init(Engine::Impl& e);
std::unique_ptr<ExchangeTask> make_ike_intermediate(Engine::Impl& e);
std::unique_ptr<ExchangeTask> make_ike_auth(Engine::Impl& e);
std::unique_ptr<ExchangeTask> make_child_rekey(Engine::Impl& e, Task spec);
std::unique_ptr<ExchangeTask> make_ike_rekey(Engine::Impl& e, Task spec);
std::unique_ptr<ExchangeTask> make_informational(Engine::Impl& e, Task spec);  // Delete and Liveness
// RFC 9242 3.3.2: an IKE_INTERMEDIATE message as IntAuth covers it, IntAuth_N_A | IntAuth_N_P
// (as if neither encrypted nor fragmented), from its header, first inner payload and inner octets.
std::vector<std::uint8_t> int_auth_octets(const wire::Header& h, PayloadType first, std::span<const std::uint8_t> inner);

// The initiator task for a queued Task, and the responder task for a request.
std::unique_ptr<ExchangeTask> make_initiator_task(Engine::Impl& e, Task spec);
std::unique_ptr<ExchangeTask> make_responder_task(Engine::Impl& e, const Message& request);

}  // namespace qkd::ike
