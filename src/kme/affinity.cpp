#include "qkd/kme/affinity.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace qkd::kme {

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) throw std::runtime_error(fmt::format("sched_getaffinity: {}", std::strerror(errno)));
    std::vector<int> out;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) out.push_back(c);
    return out;
}

std::string cpu_list_text(const std::vector<int>& cpus) {
    std::string out;
    for (std::size_t i = 0; i < cpus.size();) {
        std::size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
        if (!out.empty()) out += ',';
        out += j == i ? std::to_string(cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
        i = j + 1;
    }
    return out;
}

void check_cpu_affinity(const Config& cfg) {
    if (cfg.cpu_affinity.empty()) return;
    const auto allowed = allowed_cpus();
    for (int c : cfg.cpu_affinity)
        if (!std::binary_search(allowed.begin(), allowed.end(), c))
            throw ConfigError(fmt::format("{}: key 'kme.cpu_affinity': CPU {} is not available to this process; it may run on CPUs {}",
                                          cfg.file, c, cpu_list_text(allowed)));
}

void pin_event_loop_thread(const Config& cfg, int index) {
    if (cfg.cpu_affinity.empty()) return;
    const int cpu = cfg.cpu_affinity[static_cast<std::size_t>(index) % cfg.cpu_affinity.size()];
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0)
        throw std::runtime_error(fmt::format("cannot pin event-loop thread {} to CPU {}: {}", index, cpu, std::strerror(rc)));
}

}  // namespace qkd::kme
