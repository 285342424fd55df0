#include "ike_sa.hpp"

#include "../tasks/task.hpp"

namespace qkd::ike {

std::string_view to_string(SaState s) {
    switch (s) {
        case SaState::New: return "NEW";
        case SaState::InitSent: return "INIT_SENT";
        case SaState::InitDone: return "INIT_DONE";
        case SaState::AuthSent: return "AUTH_SENT";
        case SaState::Established: return "ESTABLISHED";
        case SaState::Deleting: return "DELETING";
        case SaState::Dead: return "DEAD";
    }
    return "?";
}

// Out of line: ExchangeTask is complete only here.
Outstanding::Outstanding() = default;
Outstanding::~Outstanding() = default;
Outstanding::Outstanding(Outstanding&&) noexcept = default;
Outstanding& Outstanding::operator=(Outstanding&&) noexcept = default;
const Task& Outstanding::spec() const { return task->spec(); }
PendingResponse::PendingResponse() = default;
PendingResponse::~PendingResponse() = default;
PendingResponse::PendingResponse(PendingResponse&&) noexcept = default;
PendingResponse& PendingResponse::operator=(PendingResponse&&) noexcept = default;

std::string install_ike_keys(IkeSa& sa, const SecretBytes& skeyseed) {
    auto keys = keymat::derive_ike_keys(*sa.prf, skeyseed, sa.nonce_i, sa.nonce_r, sa.spi_i, sa.spi_r, sa.encr.key_bits / 8 + 4);
    if (!keys) return keys.error().message;
    sa.crypter = sa.initiator ? wire::SkCrypter::create(keys->sk_ei.view(), keys->sk_er.view())
                              : wire::SkCrypter::create(keys->sk_er.view(), keys->sk_ei.view());
    sa.sk_d = std::move(keys->sk_d);
    sa.sk_pi = std::move(keys->sk_pi);
    sa.sk_pr = std::move(keys->sk_pr);
    return {};
}

bool transition(IkeSa& sa, SaState to) {
    bool ok = false;
    switch (sa.state) {
        case SaState::New: ok = to == SaState::InitSent || to == SaState::InitDone || to == SaState::Dead; break;
        case SaState::InitSent: ok = to == SaState::AuthSent || to == SaState::InitSent || to == SaState::Dead; break;
        case SaState::InitDone: ok = to == SaState::Established || to == SaState::Dead; break;
        case SaState::AuthSent: ok = to == SaState::Established || to == SaState::Dead; break;
        case SaState::Established: ok = to == SaState::Deleting || to == SaState::Dead; break;
        case SaState::Deleting: ok = to == SaState::Dead; break;
        case SaState::Dead: ok = false; break;
    }
    if (ok) sa.state = to;
    return ok;
}

}  // namespace qkd::ike
