// Implements console + file logging on spdlog's default logger.
#include "gopd/core/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "gopd/core/error.h"

namespace gopd::core {

void init_logging(const std::string& level) {
  bool known = false;
  for (const char* name : kLogLevels) known = known || level == name;
  if (!known) {
    throw_bad_input("--log-level: expected one of trace, debug, info, warn, error, off, got \"" +
                    level + "\"");
  }
  spdlog::drop("gopd");
  auto logger = spdlog::stderr_color_mt("gopd");
  logger->set_pattern("%^[%H:%M:%S %l]%$ %v");
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

void add_log_file(const std::string& path) {
  auto logger = spdlog::default_logger();
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
    sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e %l] %v");
    logger->sinks().push_back(sink);
  } catch (const spdlog::spdlog_ex& error) {
    throw_runtime_failure(path + ": cannot open log file: " + error.what());
  }
  logger->flush_on(spdlog::level::trace);
}

}  // namespace gopd::core
