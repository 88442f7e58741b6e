// Batch statistics of the trainer: see batch_stats.h.
#include "gopd/train/batch_stats.h"

#include <algorithm>
#include <cmath>

namespace gopd::train {

void ImportanceWeightStats::add(const torch::Tensor& weights, const torch::Tensor& mask) {
  torch::NoGradGuard no_grad;
  const torch::Tensor valid = mask > 0;
  const torch::Tensor w = weights.detach().to(torch::kDouble);
  const torch::Tensor part_max = w.masked_fill(valid.logical_not(), 0.0).max();  // weights are ≥ 0
  sum_ = sum_.defined() ? sum_ + (w * valid).sum() : (w * valid).sum();
  tokens_ = tokens_.defined() ? tokens_ + valid.sum() : valid.sum();
  max_ = max_.defined() ? torch::maximum(max_, part_max) : part_max;
}

void ImportanceWeightStats::put(nlohmann::json& line) const {
  if (!tokens_.defined() || tokens_.item<int64_t>() == 0) return;
  put_ratio(line, "actor/importance_weight_mean", sum_.item<double>(), tokens_.item<double>());
  line["actor/importance_weight_max"] = max_.item<double>();
}

void DistillBatchStats::add(int64_t begin, int64_t end,
                            const objective::GopdTokenLogprobs& logprobs,
                            const torch::Tensor& lambda, const torch::Tensor& rollout,
                            const torch::Tensor& own_reference, const torch::Tensor& mask,
                            double cap) {
  if (seen_[size_t(begin)]) return;
  for (int64_t r = begin; r < end; ++r) seen_[size_t(r)] = true;
  torch::NoGradGuard no_grad;
  const torch::Tensor valid = (mask > 0).to(torch::kDouble);  // (b, T)
  const torch::Tensor teacher = logprobs.teacher.to(torch::kDouble).masked_fill(mask == 0, 0.0);
  const torch::Tensor old = logprobs.old.to(torch::kDouble).masked_fill(mask == 0, 0.0);
  const torch::Tensor advantage =
      objective::gopd_advantage(logprobs, lambda, mask).to(torch::kDouble);
  torch::Tensor reward = teacher - old;  // (b, T)
  if (logprobs.reference.defined()) {
    const torch::Tensor reference =
        logprobs.reference.to(torch::kDouble).masked_fill(mask == 0, 0.0);
    const torch::Tensor lam = lambda.to(torch::kDouble).unsqueeze(1);
    reward = torch::where(own_reference.unsqueeze(1), lam * (teacher - reference), reward);
  }
  // (advantage, advantage², log π_old − log π_T, reward, tokens) summed over the valid tokens
  const torch::Tensor sums =
      torch::stack({(advantage * valid).sum(), (advantage.square() * valid).sum(),
                    ((old - teacher) * valid).sum(), (reward * valid).sum(), valid.sum()});
  sums_ = sums_.defined() ? sums_ + sums : sums;  // (5) fp64
  importance_.add(objective::truncated_importance_weights(logprobs.old, rollout, cap), mask);
}

void DistillBatchStats::put(nlohmann::json& line) const {
  if (!sums_.defined()) return;
  const torch::Tensor sums = sums_.to(torch::kCPU).contiguous();
  const double* s = sums.data_ptr<double>();
  const double tokens = s[4];
  if (tokens == 0) return;
  put_ratio(line, "gopd/advantage_mean", s[0], tokens);
  put_std(line, "gopd/advantage_std", s[0], s[1], tokens);
  put_ratio(line, "gopd/reverse_kl_estimate", s[2], tokens);
  put_ratio(line, "gopd/reward_mean", s[3], tokens);
  importance_.put(line);
}

void put_rollout_metrics(const rollout::RolloutBatch& batch, double rollout_seconds,
                         double entropy_sum, double entropy_tokens, nlohmann::json& line) {
  const double rows = double(batch.finish_reasons.size());
  const double generated = double(batch.generated_tokens);
  put_ratio(line, "rollout/response_length_mean", generated, rows);
  put_ratio(line, "rollout/entropy", entropy_sum, entropy_tokens);
  int64_t truncated = 0;
  for (const rollout::FinishReason reason : batch.finish_reasons) {
    truncated += reason == rollout::FinishReason::kLength ? 1 : 0;
  }
  put_ratio(line, "rollout/truncated_fraction", double(truncated), rows);
  line["perf/rollout_s"] = rollout_seconds;
  line["perf/rollout_tokens_per_s"] = generated / std::max(rollout_seconds, 1e-9);
}

}  // namespace gopd::train
