// Training batches and the rows of GRPO/LENS batches: see sequences.h.
#include "gopd/train/sequences.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace gopd::train {

// Prompt + response pairs as one batch: prompts left-padded to the longest, responses
// right-padded to the longest; mask = the response tokens.
TrainingSequences pair_sequences(const std::vector<std::vector<int64_t>>& prompts,
                                 const std::vector<std::vector<int64_t>>& responses, int64_t pad) {
  int64_t longest_prompt = 1;
  int64_t longest_response = 1;
  for (const auto& prompt : prompts) longest_prompt = std::max<int64_t>(longest_prompt, int64_t(prompt.size()));
  for (const auto& response : responses) {
    longest_response = std::max<int64_t>(longest_response, int64_t(response.size()));
  }
  const int64_t rows = int64_t(prompts.size());
  TrainingSequences sequences;
  sequences.prompt_length = longest_prompt;
  sequences.input_ids = torch::full({rows, longest_prompt + longest_response}, pad, torch::kLong);
  sequences.attention_mask = torch::zeros({rows, longest_prompt + longest_response}, torch::kLong);
  sequences.targets = torch::full({rows, longest_response}, pad, torch::kLong);
  sequences.mask = torch::zeros({rows, longest_response}, torch::kFloat);
  auto ids = sequences.input_ids.accessor<int64_t, 2>();
  auto attention = sequences.attention_mask.accessor<int64_t, 2>();
  auto targets = sequences.targets.accessor<int64_t, 2>();
  auto mask = sequences.mask.accessor<float, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    const auto& prompt = prompts[size_t(r)];
    const auto& response = responses[size_t(r)];
    const int64_t offset = longest_prompt - int64_t(prompt.size());
    for (size_t i = 0; i < prompt.size(); ++i) {
      ids[r][offset + int64_t(i)] = prompt[i];
      attention[r][offset + int64_t(i)] = 1;
    }
    for (size_t i = 0; i < response.size(); ++i) {
      ids[r][longest_prompt + int64_t(i)] = response[i];
      attention[r][longest_prompt + int64_t(i)] = 1;
      targets[r][int64_t(i)] = response[i];
      mask[r][int64_t(i)] = 1.0f;
    }
  }
  return sequences;
}

int64_t apply_transfer(RlvrRows& rows, int64_t group, int64_t n, const lens::TransferPlan& plan,
                       const std::vector<double>& weights, const PurifiedGroup& purified) {
  if (plan.replacements.empty()) return 0;
  if (int64_t(weights.size()) != n) throw std::invalid_argument("apply_transfer: one weight per rollout of the group");
  for (const auto& [slot, source] : plan.replacements) {
    const size_t row = size_t(group * n + slot);
    rows.response[row] = purified.responses[size_t(source)];
    rows.roll_prompt[row] = purified.prompt;
    rows.reward[row] = purified.reward[size_t(source)];
    rows.correct[row] = purified.correct[size_t(source)];
    rows.rollout_logprobs[row] = purified.rollout_logprobs[size_t(source)];
  }
  for (int64_t i = 0; i < n; ++i) rows.log_weight[size_t(group * n + i)] = std::log(weights[size_t(i)]);
  return int64_t(plan.replacements.size());
}

TrainingSequences training_sequences(const RlvrRows& rows, int64_t pad) {
  return pair_sequences(rows.prompt, rows.response, pad);
}

TrainingSequences rollout_sequences(const RlvrRows& rows, int64_t pad) {
  return pair_sequences(rows.roll_prompt, rows.response, pad);
}

torch::Tensor rollout_logprobs(const RlvrRows& rows, int64_t length) {
  torch::Tensor out = torch::zeros({int64_t(rows.rollout_logprobs.size()), length}, torch::kFloat);  // (B, T)
  auto values = out.accessor<float, 2>();
  for (size_t r = 0; r < rows.rollout_logprobs.size(); ++r) {
    const std::vector<float>& row = rows.rollout_logprobs[r];
    if (int64_t(row.size()) > length) throw std::invalid_argument("rollout_logprobs: a response is longer than length");
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

}  // namespace gopd::train
