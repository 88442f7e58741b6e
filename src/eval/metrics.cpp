// Implements avg@K and the unbiased pass@k estimator (product form, numerically stable).
#include "gopd/eval/metrics.h"

#include <stdexcept>

namespace gopd::eval {

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (k < 1 || k > n || c < 0 || c > n) throw std::invalid_argument("pass_at_k: bad n, c, k");
  if (n - c < k) return 1.0;
  // C(n−c, k) / C(n, k) = Π_{i=n−c+1}^{n} (1 − k / i)
  double all_wrong = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i)
    all_wrong *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - all_wrong;
}

AccuracySummary summarize_accuracy(const std::vector<int64_t>& correct, int64_t samples) {
  AccuracySummary summary;
  if (correct.empty() || samples < 1) return summary;
  double total = 0;
  for (int64_t c : correct) total += static_cast<double>(c);
  summary.avg_at_k = total / static_cast<double>(correct.size() * static_cast<size_t>(samples));
  std::vector<int64_t> ks;
  for (int64_t k = 1; k < samples; k *= 2) ks.push_back(k);
  ks.push_back(samples);
  for (int64_t k : ks) {
    double sum = 0;
    for (int64_t c : correct) sum += pass_at_k(samples, c, k);
    summary.pass_at.emplace_back(k, sum / static_cast<double>(correct.size()));
  }
  return summary;
}

}  // namespace gopd::eval
