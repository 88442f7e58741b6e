// The rows of GRPO/LENS batches and the transfer applied to them: see rows.h.
#include "gopd/lens/rows.h"

#include <cmath>
#include <stdexcept>

namespace gopd::lens {

int64_t apply_transfer(RlvrRows& rows, int64_t group, int64_t n, const TransferPlan& plan,
                       const std::vector<double>& weights, const PurifiedGroup& purified) {
  if (plan.replacements.empty()) return 0;
  if (int64_t(weights.size()) != n)
    throw std::invalid_argument("apply_transfer: one weight per rollout of the group");
  for (const auto& [slot, source] : plan.replacements) {
    const size_t row = size_t(group * n + slot);
    rows.response[row] = purified.responses[size_t(source)];
    rows.roll_prompt[row] = purified.prompt;
    rows.reward[row] = purified.reward[size_t(source)];
    rows.correct[row] = purified.correct[size_t(source)];
    rows.rollout_logprobs[row] = purified.rollout_logprobs[size_t(source)];
  }
  for (int64_t i = 0; i < n; ++i)
    rows.log_weight[size_t(group * n + i)] = std::log(weights[size_t(i)]);
  return int64_t(plan.replacements.size());
}

scoring::TrainingSequences training_sequences(const RlvrRows& rows, int64_t pad) {
  return scoring::pair_sequences(rows.prompt, rows.response, pad);
}

scoring::TrainingSequences rollout_sequences(const RlvrRows& rows, int64_t pad) {
  return scoring::pair_sequences(rows.roll_prompt, rows.response, pad);
}

torch::Tensor rollout_logprobs(const RlvrRows& rows, int64_t length) {
  torch::Tensor out =
      torch::zeros({int64_t(rows.rollout_logprobs.size()), length}, torch::kFloat);  // (B, T)
  auto values = out.accessor<float, 2>();
  for (size_t r = 0; r < rows.rollout_logprobs.size(); ++r) {
    const std::vector<float>& row = rows.rollout_logprobs[r];
    if (int64_t(row.size()) > length)
      throw std::invalid_argument("rollout_logprobs: a response is longer than length");
    for (size_t t = 0; t < row.size(); ++t) values[int64_t(r)][int64_t(t)] = row[t];
  }
  return out;
}

torch::Tensor calibration_weights(const RlvrRows& rows) {
  return (-torch::tensor(rows.log_weight, torch::kDouble)).exp().to(torch::kFloat);  // (B)
}

torch::Tensor calibrated_old_logprobs(const torch::Tensor& old_logprobs, const RlvrRows& rows) {
  return old_logprobs + torch::tensor(rows.log_weight, torch::kFloat).unsqueeze(1);
}

}  // namespace gopd::lens
