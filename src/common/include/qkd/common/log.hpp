#pragma once
#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace qkd {

// level: trace, debug, info, warn, error, off. Logs go to stderr.
void log_init(std::string_view name, std::string_view level);

}  // namespace qkd
