// The sequences every stage after the rollout works on: prompt + response pairs as one batch
// (left-padded prompts, right-padded responses), and the heads whose logits predict their
// responses.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "gopd/kernels/logit_head.h"
#include "gopd/model/transformer.h"
#include "gopd/rollout/rollout_engine.h"

namespace gopd::scoring {

struct TrainingSequences {
  torch::Tensor input_ids;       // (B, P + T) int64: left-padded prompt, then the response
  torch::Tensor attention_mask;  // (B, P + T) int64
  torch::Tensor targets;         // (B, T) int64: response tokens
  torch::Tensor mask;            // (B, T) fp32: 1 on response tokens
  int64_t prompt_length = 0;     // P: logits at P − 1 + t predict target t

  TrainingSequences to(const torch::Device& device) const;  // every tensor on `device`
};

// Prompt + response pairs as one batch: prompts left-padded to the longest, responses
// right-padded to the longest; mask = the response tokens.
TrainingSequences pair_sequences(const std::vector<std::vector<int64_t>>& prompts,
                                 const std::vector<std::vector<int64_t>>& responses, int64_t pad);

// A rollout's prompts and responses as they were sampled (the rollout's own padding).
TrainingSequences sequences_from_rollout(const rollout::RolloutBatch& batch);

// The head predicting the targets of rows [begin, end): the final hidden states of the response
// positions only, (rows, T, H) with the gradient of `model` when grad mode is on (the prompt
// positions never become logits), on the model's device, and the output matrix cut to `vocab_width` rows when > 0.
// `compute_dtype` Undefined = the weights' dtype; `chunk_rows` as in kernels::LogitHead.
kernels::LogitHead target_head(model::Transformer model, const TrainingSequences& sequences,
                               int64_t begin, int64_t end, int64_t vocab_width,
                               int64_t chunk_rows,
                               torch::ScalarType compute_dtype = torch::ScalarType::Undefined);

// The same for any left-padded batch: hidden states at positions [first, first + steps).
kernels::LogitHead positions_head(model::Transformer model, const torch::Tensor& input_ids,
                                  const torch::Tensor& attention_mask, int64_t first,
                                  int64_t steps, int64_t vocab_width, int64_t chunk_rows,
                                  torch::ScalarType compute_dtype = torch::ScalarType::Undefined);

}  // namespace gopd::scoring
