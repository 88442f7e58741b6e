// Implements the per-line-flushed metrics sink.
#include "gopd/core/metrics.h"

#include "gopd/core/error.h"

namespace gopd::core {

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
