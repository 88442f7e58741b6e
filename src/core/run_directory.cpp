// Implements run-directory creation and the run section's process-wide settings.
#include "gopd/core/run_directory.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "gopd/core/atomic_file.h"
#include "gopd/core/config_loader.h"
#include "gopd/core/error.h"
#include "gopd/core/logging.h"
#include "gopd/core/runtime.h"

namespace gopd::core {

RunDirectory prepare_run(const Config& config, bool write) {
  RunDirectory run;
  run.path = (std::filesystem::path(config.run.output_dir) / config.run.name).string();
  run.config_path = run.path + "/config.resolved.yaml";
  run.log_path = run.path + "/log.txt";
  run.metrics_path = run.path + "/metrics.jsonl";
  if (write) {
    create_directories_for(run.path, run.path);
    write_file_atomically(run.config_path, config_to_yaml(config));
    add_log_file(run.log_path);
  }
  seed_everything(static_cast<uint64_t>(config.run.seed));
  const int64_t threads = set_threads(config.run.threads);
  spdlog::info("run directory {} (seed {}, {} threads)", run.path, config.run.seed, threads);
  return run;
}

}  // namespace gopd::core
