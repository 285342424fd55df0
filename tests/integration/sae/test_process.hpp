#pragma once
// Helpers for integration tests: free loopback ports, child processes, waiting for a listener.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace qkd::sae::testing {

// A loopback TCP port that was free a moment ago.
std::uint16_t free_port();

// True once 127.0.0.1:port accepts a TCP connection (polls until `within` passes).
bool wait_for_port(std::uint16_t port, std::chrono::milliseconds within);

// A child process (fork + execv), SIGTERM + wait on destruction.
class Child {
public:
    explicit Child(const std::vector<std::string>& argv);
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    pid_t pid() const { return pid_; }
    bool running();
    void stop();

private:
    pid_t pid_ = -1;
};

// A listening socket that never calls accept(): the kernel completes TCP handshakes, nobody
// ever answers.
class SilentListener {
public:
    SilentListener();
    ~SilentListener();
    std::uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

}  // namespace qkd::sae::testing
