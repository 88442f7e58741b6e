// Training sequences and the logits that predict them: see sequences.h.
#include "gopd/scoring/sequences.h"

#include <algorithm>

namespace gopd::scoring {

TrainingSequences pair_sequences(const std::vector<std::vector<int64_t>>& prompts,
                                 const std::vector<std::vector<int64_t>>& responses, int64_t pad) {
  int64_t longest_prompt = 1;
  int64_t longest_response = 1;
  for (const auto& prompt : prompts)
    longest_prompt = std::max<int64_t>(longest_prompt, int64_t(prompt.size()));
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

TrainingSequences sequences_from_rollout(const rollout::RolloutBatch& batch) {
  TrainingSequences sequences;
  sequences.input_ids = torch::cat({batch.prompt_ids, batch.response_ids}, 1);
  sequences.attention_mask = torch::cat({batch.prompt_mask, batch.response_mask}, 1);
  sequences.targets = batch.response_ids;
  sequences.mask = batch.response_mask.to(torch::kFloat);
  sequences.prompt_length = batch.prompt_ids.size(1);
  return sequences;
}

torch::Tensor target_logits(model::Transformer model, const TrainingSequences& sequences,
                            int64_t begin, int64_t end, int64_t vocab_width) {
  const torch::Tensor ids = sequences.input_ids.slice(0, begin, end);
  const torch::Tensor attention = sequences.attention_mask.slice(0, begin, end);
  const int64_t steps = sequences.targets.size(1);
  torch::Tensor logits =
      model->forward(ids, attention).narrow(1, sequences.prompt_length - 1, steps);
  if (vocab_width > 0) logits = logits.narrow(-1, 0, vocab_width);
  return logits.to(torch::kFloat);  // (rows, T, V')
}

}  // namespace gopd::scoring
