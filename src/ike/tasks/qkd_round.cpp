// QKD as a key-exchange method (shared/docs/ike.md 1, pattern C; the QURSA wire format): a round
// with KeGroup::Qkd asks the daemon for its key through the event sink and waits; the daemon
// answers with Engine::on_qkd_key, which resumes the waiting task (ike-tasks.md, "The QKD key
// request"). The engine stays sans-I/O: it never talks to a KME.
#include "task.hpp"

namespace qkd::ike {

Step request_qkd_key(Engine::Impl& e, IkeSa& sa, std::size_t slot, bool master, const std::array<std::uint8_t, 16>& key_id) {
    QkdKeyRequest r;
    r.ike_sa_id = sa.id;
    r.gateway = sa.gateway;
    r.slot = static_cast<unsigned>(slot);
    r.master = master;
    r.key_id = key_id;
    e.sink.qkd_key_request(r);
    return Step::wait();
}

void accept_qkd_key(Engine::Impl& e, IkeSa& sa, std::size_t slot, ExternalKey& k) {
    sa.qkd_key_time = e.now();
    sa.kex.set_qkd_key(slot, k.key_id, std::move(*k.key));
    k.key.reset();
    sa.qkd_key_id = k.key_id;
    ++sa.qkd_keys_used;
}

// The daemon's answer: resume the task of that SA that waits for this slot's key.
void Engine::on_qkd_key(std::uint64_t ike_sa_id, unsigned slot, QkdKeyAnswer answer) {
    auto& e = *impl_;
    IkeSa* sa = nullptr;
    for (auto& [spi, s] : e.sas)
        if (s->id == ike_sa_id && s->state != SaState::Dead) sa = s.get();
    if (!sa) return;  // the SA is gone; the key (if any) is zeroized with `answer`
    ExternalKey k;
    k.slot = slot;
    k.key_id = answer.key_id;
    k.key = std::move(answer.key);
    k.error = std::move(answer.error);
    if (sa->active && sa->active->waiting) {
        auto task = std::move(sa->active->task);
        sa->active.reset();
        const Step st = task->resume(*sa, k);
        if (st.status == Status::Failed) {
            if (sa->state != SaState::Dead) e.start_next_task(*sa);
            e.reap();
            return;
        }
        e.start_task(*sa, std::move(task));  // build_i again, now with the key
    } else if (sa->responding && sa->responding->task) {
        auto pending = std::move(*sa->responding);
        sa->responding.reset();
        const Step st = pending.task->resume(*sa, k);
        const auto ex = pending.task->exchange();
        e.respond(*sa, ex, pending.message_id, std::move(pending.task), st);
        e.reap();
    }
}

}  // namespace qkd::ike
