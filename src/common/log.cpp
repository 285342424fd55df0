#include "qkd/common/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace qkd {

void log_init(std::string_view name, std::string_view level) {
    auto logger = spdlog::stderr_color_mt(std::string(name));
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
    logger->set_level(spdlog::level::from_str(std::string(level)));
    spdlog::set_default_logger(logger);
}

}  // namespace qkd
