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

TrainingSequences TrainingSequences::to(const torch::Device& device) const {
  TrainingSequences moved = *this;
  moved.input_ids = input_ids.to(device);
  moved.attention_mask = attention_mask.to(device);
  moved.targets = targets.to(device);
  moved.mask = mask.to(device);
  return moved;
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

kernels::LogitHead positions_head(model::Transformer model, const torch::Tensor& input_ids,
                                  const torch::Tensor& attention_mask, int64_t first,
                                  int64_t steps, int64_t vocab_width, int64_t chunk_rows,
                                  torch::ScalarType compute_dtype) {
  kernels::LogitHead head;
  const torch::Device device = model->output_weight().device();
  head.hidden = model->hidden_states(input_ids.to(device), attention_mask.to(device))
                    .narrow(1, first, steps);
  head.weight = model->output_weight();
  if (vocab_width > 0) head.weight = head.weight.narrow(0, 0, vocab_width);
  head.compute_dtype =
      compute_dtype == torch::ScalarType::Undefined ? head.weight.scalar_type() : compute_dtype;
  head.chunk_rows = chunk_rows;
  return head;  // hidden (rows, steps, H)
}

kernels::LogitHead target_head(model::Transformer model, const TrainingSequences& sequences,
                               int64_t begin, int64_t end, int64_t vocab_width,
                               int64_t chunk_rows, torch::ScalarType compute_dtype) {
  return positions_head(model, sequences.input_ids.slice(0, begin, end),
                        sequences.attention_mask.slice(0, begin, end),
                        sequences.prompt_length - 1, sequences.targets.size(1), vocab_width,
                        chunk_rows, compute_dtype);
}

}  // namespace gopd::scoring
