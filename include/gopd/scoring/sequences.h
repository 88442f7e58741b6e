// The sequences every stage after the rollout works on: prompt + response pairs as one batch
// (left-padded prompts, right-padded responses), and the logits that predict their responses.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "gopd/model/transformer.h"
#include "gopd/rollout/rollout_engine.h"

namespace gopd::scoring {

struct TrainingSequences {
  torch::Tensor input_ids;       // (B, P + T) int64: left-padded prompt, then the response
  torch::Tensor attention_mask;  // (B, P + T) int64
  torch::Tensor targets;         // (B, T) int64: response tokens
  torch::Tensor mask;            // (B, T) fp32: 1 on response tokens
  int64_t prompt_length = 0;     // P: logits at P − 1 + t predict target t
};

// Prompt + response pairs as one batch: prompts left-padded to the longest, responses
// right-padded to the longest; mask = the response tokens.
TrainingSequences pair_sequences(const std::vector<std::vector<int64_t>>& prompts,
                                 const std::vector<std::vector<int64_t>>& responses, int64_t pad);

// A rollout's prompts and responses as they were sampled (the rollout's own padding).
TrainingSequences sequences_from_rollout(const rollout::RolloutBatch& batch);

// Logits predicting the targets of rows [begin, end): (rows, T, V') fp32, with the gradient of
// `model` when grad mode is on; `vocab_width` > 0 cuts V to the shared tokenizer's ids.
torch::Tensor target_logits(model::Transformer model, const TrainingSequences& sequences,
                            int64_t begin, int64_t end, int64_t vocab_width);

}  // namespace gopd::scoring
