// Logging through spdlog: one console sink (stderr, so stdout stays clean for JSON output)
// and, for runs, a file sink at `<run dir>/log.txt`.
#pragma once

#include <string>

namespace gopd::core {

// Names accepted by --log-level and run.log_level.
inline constexpr const char* kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};

// Installs the default logger (console) at `level`; throws Error (exit 2) on an unknown name.
void init_logging(const std::string& level);

// Adds a file sink so every later message also goes to `path` (appended, flushed per line).
void add_log_file(const std::string& path);

}  // namespace gopd::core
