// Statistics of a whole batch, gathered while its micro-batches are updated (micro-batch
// averages would give neither a batch's std nor its maximum). Sums stay tensors until put():
// one sync per log line, not per micro-batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "gopd/core/metrics.h"
#include "gopd/objective/gopd_loss.h"
#include "gopd/rollout/rollout_engine.h"

namespace gopd::train {

using core::put_ratio;  // ratios whose sums the ranks of a job add up (core/metrics.h)
using core::put_std;

// Truncated importance weights over the batch: "actor/importance_weight_mean" and "_max" over
// the response tokens of every pass, which see the same weights when π_old is fixed.
class ImportanceWeightStats {
 public:
  void add(const torch::Tensor& weights, const torch::Tensor& mask);  // (b, T) each
  void put(nlohmann::json& line) const;

 private:
  torch::Tensor sum_;     // () fp64
  torch::Tensor tokens_;  // () int64
  torch::Tensor max_;     // () fp64
};

// The sampled-token G-OPD statistics, from the first pass over each row (at θ = θ_old):
// "gopd/advantage_mean", "gopd/advantage_std", "gopd/reverse_kl_estimate" (log π_old − log π_T),
// "gopd/reward_mean" and the truncated importance weights. The reward is λ·(log π_T − log π_ref)
// on rows whose teacher has a reference of its own, and log π_T − log π_old on rows of a λ = 1
// teacher, whose reference is skipped (the teacher stands in for it, which would read as 0).
class DistillBatchStats {
 public:
  explicit DistillBatchStats(int64_t rows) : seen_(size_t(rows), false) {}
  void add(int64_t begin, int64_t end, const objective::GopdTokenLogprobs& logprobs,
           const torch::Tensor& lambda,         // (b) fp32
           const torch::Tensor& rollout,        // (b, T) the sampler's log-probs
           const torch::Tensor& own_reference,  // (b) bool
           const torch::Tensor& mask, double cap);
  void put(nlohmann::json& line) const;

 private:
  std::vector<bool> seen_;
  torch::Tensor sums_;  // (5) fp64, see add()
  ImportanceWeightStats importance_;
};

// Metrics of a step's rollout shared by every on-policy algorithm: response length, entropy of
// the updated tokens (`entropy_sum` over `entropy_tokens`), truncation, and rollout speed.
void put_rollout_metrics(const rollout::RolloutBatch& batch, double rollout_seconds,
                         double entropy_sum, double entropy_tokens, nlohmann::json& line);

}  // namespace gopd::train
