// Implements the per-line-flushed metrics sink.
#include "gopd/core/metrics.h"

#include "gopd/core/error.h"

#include <algorithm>
#include <cmath>

namespace gopd::core {

void put_ratio(nlohmann::json& line, const std::string& key, double numerator, double denominator) {
  line[key] = denominator != 0 ? numerator / denominator : 0.0;
  line["~" + key] = {numerator, denominator};
}

void put_std(nlohmann::json& line, const std::string& key, double sum, double squares,
             double count) {
  const double mean = sum / count;
  line[key] = std::sqrt(std::max(0.0, squares / count - mean * mean));
  line["~" + key] = {sum, squares, count};
}

MetricsSink::MetricsSink(const std::string& path) : path_(path) {
  stream_.open(path, std::ios::app);
  if (!stream_) throw_runtime_failure(path + ": cannot open metrics file for appending");
}

void MetricsSink::write(const nlohmann::json& metrics) {
  if (!metrics.is_object()) throw_runtime_failure(path_ + ": a metrics line must be a JSON object");
  stream_ << metrics.dump() << '\n';
  stream_.flush();
  if (!stream_) throw_runtime_failure(path_ + ": write failed");
}

}  // namespace gopd::core
