// Accuracy over K samples per prompt: avg@K (mean correctness of all samples) and the
// unbiased pass@k estimator of Chen et al. (2021), pass@k = 1 − C(n−c, k) / C(n, k) for n
// samples of which c are correct, averaged over prompts.
#pragma once

#include <cstdint>
#include <vector>

namespace gopd::eval {

// Probability that at least one of k samples drawn without replacement from n (c correct)
// is correct. Requires 1 <= k <= n, 0 <= c <= n.
double pass_at_k(int64_t n, int64_t c, int64_t k);

struct AccuracySummary {
  double avg_at_k = 0.0;
  std::vector<std::pair<int64_t, double>> pass_at;  // (k, pass@k) for k = 1, 2, 4, …, K
};

// `correct[i]` = number of correct samples of prompt i, each prompt having `samples` samples.
AccuracySummary summarize_accuracy(const std::vector<int64_t>& correct, int64_t samples);

}  // namespace gopd::eval
