// The task driver: starts queued exchanges as task objects, hands requests and responses to
// them, and acts on their step results (tasks/task.hpp). Message IDs, retransmission and the
// response cache stay in engine.cpp.
#include "impl.hpp"
#include "../tasks/task.hpp"

namespace qkd::ike {

using wire::ExchangeType;

void Engine::Impl::queue_task(IkeSa& sa, Task task) {
    if (sa.queue.size() >= kMaxQueuedTasks) return;
    for (const auto& t : sa.queue)
        if (t.kind == task.kind && t.child_id == task.child_id) return;  // already queued
    sa.queue.push_back(std::move(task));
    start_next_task(sa);
}

void Engine::Impl::start_next_task(IkeSa& sa) {
    while (!sa.active && !sa.queue.empty() && sa.state == SaState::Established) {
        Task t = std::move(sa.queue.front());
        sa.queue.pop_front();
        start_task(sa, make_initiator_task(*this, std::move(t)));
    }
}

void Engine::Impl::start_task(IkeSa& sa, std::unique_ptr<ExchangeTask> task) {
    std::vector<Payload> p;
    const Step st = task->build_i(sa, p);
    switch (st.status) {
        case Status::Done:
        case Status::More: send_request(sa, std::move(task), p); break;
        case Status::Wait: {
            // Nothing to send until the task gets its input (Engine::on_key).
            Outstanding o;
            o.task = std::move(task);
            o.waiting = true;
            sa.active = std::move(o);
            break;
        }
        case Status::Failed: break;  // the task dropped itself (and its SA, if it had to)
    }
}

void Engine::Impl::respond(IkeSa& sa, ExchangeType ex, std::uint32_t mid, std::unique_ptr<ExchangeTask> task, const Step& step) {
    if (step.status == Status::Wait) {
        // RFC 7296 2.3: the request stays unanswered; its retransmissions are dropped meanwhile.
        sa.responding.emplace();
        sa.responding->task = std::move(task);
        sa.responding->message_id = mid;
        return;
    }
    sa.responding.reset();
    std::vector<Payload> p;
    Step last = step;
    if (step.status != Status::Failed) last = task->build_r(sa, p);
    if (last.status == Status::Failed) {
        p.clear();
        if (last.error) p.push_back(*last.error);
    }
    send_response(sa, ex, mid, p);
    task->after_r(sa, last);
    if (const auto* link = task->followup_link()) {
        // RFC 9370 2.2.4: keep the exchange's state for its IKE_FOLLOWUP_KE, bounded and dropped
        // after kFollowupTimeout (the peer then gets STATE_NOT_FOUND).
        if (sa.followups.size() >= kMaxFollowups) sa.followups.erase(sa.followups.begin());
        PendingResponse f;
        f.link = *link;
        f.since = now();
        f.task = std::move(task);
        sa.followups.push_back(std::move(f));
    }
}

void Engine::Impl::after_response(IkeSa& sa, std::unique_ptr<ExchangeTask> task, const Step& step) {
    if (sa.state == SaState::Dead) return;
    if (step.status == Status::More) {
        start_task(sa, std::move(task));  // another round of the same task
        return;
    }
    if (step.status == Status::Wait) {
        Outstanding o;
        o.task = std::move(task);
        o.waiting = true;
        sa.active = std::move(o);
        return;
    }
    start_next_task(sa);
}

std::unique_ptr<ExchangeTask> Engine::Impl::take_followup(IkeSa& sa, const Message& m) {
    const auto* link = m.notify(wire::NotifyType::AdditionalKeyExchange);
    std::erase_if(sa.followups, [&](const PendingResponse& f) { return now() - f.since >= kFollowupTimeout; });
    for (auto it = sa.followups.begin(); link && it != sa.followups.end(); ++it)
        if (it->link == link->data) {
            auto task = std::move(it->task);
            sa.followups.erase(it);
            return task;
        }
    return nullptr;
}

void Engine::Impl::dispatch(IkeSa& sa, const Message& m) {
    const wire::Header& h = m.header;
    if (!h.is_response()) {
        sa.expected_request = h.message_id + 1;
        std::unique_ptr<ExchangeTask> task;
        if (h.exchange == ExchangeType::IkeFollowupKe) {
            // RFC 9370 2.2.4: the link data names the CREATE_CHILD_SA exchange this round belongs to.
            task = take_followup(sa, m);
            if (!task) {
                send_response(sa, h.exchange, h.message_id, {wire::make_notify(wire::NotifyType::StateNotFound)});
                return;
            }
        } else {
            task = make_responder_task(*this, m);
        }
        if (!task) {
            send_response(sa, h.exchange, h.message_id, {wire::make_notify(wire::NotifyType::InvalidSyntax)});
            return;
        }
        const Step st = task->process_r(sa, m);
        respond(sa, h.exchange, h.message_id, std::move(task), st);
        return;
    }
    Outstanding done = std::move(*sa.active);
    sa.active.reset();
    const Step st = done.task->process_i(sa, m);
    after_response(sa, std::move(done.task), st);
}

}  // namespace qkd::ike
