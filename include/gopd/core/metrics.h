// The metrics sink: `metrics.jsonl`, one JSON object per step, flushed per line so a
// crashed or killed run keeps every step it logged. Keys are namespaced (`loss/…`,
// `rollout/…`, `teacher/…`, `lens/…`, `perf/…`).
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace gopd::core {

class MetricsSink {
 public:
  // Opens `path` for appending (a resumed run continues the same file).
  explicit MetricsSink(const std::string& path);
  void write(const nlohmann::json& metrics);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream stream_;
};

}  // namespace gopd::core
