#pragma once
// CPU affinity of the event-loop threads ([kme] cpu_affinity), like nginx's worker_cpu_affinity.
// On a small machine shared with other servers, a single-threaded KME that the scheduler moves
// between CPUs pays for each move in its latency tail (bench/kme/README.md, session 5).
#include <string>
#include <vector>

#include "qkd/kme/config.hpp"

namespace qkd::kme {

// The CPUs this process may run on (sched_getaffinity), ascending.
std::vector<int> allowed_cpus();

// Throws ConfigError (file, key, the CPUs that are allowed) if cpu_affinity names a CPU this
// process may not run on. Call before starting the event-loop threads.
void check_cpu_affinity(const Config& cfg);

// Pins the calling thread, event-loop thread number `index` (0 = the first), to
// cpu_affinity[index % size]; does nothing when cpu_affinity is empty. Threads the caller starts
// afterwards inherit the pin, so start helper threads before. Throws std::runtime_error on failure.
void pin_event_loop_thread(const Config& cfg, int index);

// "0-3,6": a CPU list as /proc and taskset print it.
std::string cpu_list_text(const std::vector<int>& cpus);

}  // namespace qkd::kme
