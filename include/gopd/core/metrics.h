// The metrics sink: `metrics.jsonl`, one JSON object per step, flushed per line so a
// crashed or killed run keeps every step it logged. Keys are namespaced (`loss/…`,
// `rollout/…`, `teacher/…`, `lens/…`, `perf/…`).
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace gopd::core {

// A metric that is a ratio of sums over the batch's tokens, responses or prompts: line[key] =
// numerator / denominator (0 when the denominator is 0), and the two sums under "~" + key,
// which the trainer of a multi-process job adds up over its ranks (to put the whole batch's
// ratio there) and then drops.
void put_ratio(nlohmann::json& line, const std::string& key, double numerator, double denominator);
// The same for a standard deviation from a sum, a sum of squares and a count.
void put_std(nlohmann::json& line, const std::string& key, double sum, double squares,
             double count);

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
