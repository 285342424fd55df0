#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "qkd/common/clock.hpp"

namespace kmetest {

inline std::filesystem::path temp_dir(const std::string& name) {
    auto d = std::filesystem::temp_directory_path() / ("qkd-kme-test-" + name + "-" + std::to_string(::getpid()) + "-" +
                                                      std::to_string(std::random_device{}()));
    std::filesystem::create_directories(d);
    return d;
}

inline void write(const std::filesystem::path& p, const std::string& s) { std::ofstream(p) << s; }

class FakeClock final : public qkd::Clock {
public:
    std::chrono::steady_clock::time_point now() const override { return t; }
    std::chrono::system_clock::time_point wall() const override { return w; }
    void advance(std::chrono::milliseconds d) {
        t += d;
        w += d;
    }
    std::chrono::steady_clock::time_point t = std::chrono::steady_clock::time_point(std::chrono::hours(1000));
    std::chrono::system_clock::time_point w = std::chrono::system_clock::time_point(std::chrono::hours(480000));
};

}  // namespace kmetest
