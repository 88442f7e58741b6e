// Token sampling from next-token logits: temperature (0 = greedy), top-k, top-p, min-p.
// Each row draws from its own generator (core::Rng), so a sequence's samples depend only on
// its own seed — not on which other sequences share the batch, nor on whether its prompt
// cache was shared with sibling samples.
//
// The returned log-prob is that of the sampled token under the temperature-scaled
// distribution *before* top-k/top-p/min-p truncation: it is what the trainer recomputes
// for the importance weight between the sampler and the trainer (DESIGN.md, G-OPD w_t).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "gopd/core/rng.h"

namespace gopd::rollout {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;        // nucleus mass kept, (0, 1]
  int64_t top_k = 0;         // 0 = off
  double min_p = 0.0;        // keep tokens with p >= min_p * max p; 0 = off
};

struct Sample {
  torch::Tensor tokens;    // (B) int64
  torch::Tensor logprobs;  // (B) fp32, under softmax(logits / temperature), before truncation
};

// The distribution sampling draws from: softmax(logits / T) restricted to the tokens kept
// by top-k, top-p and min-p, renormalised. logits (B, V) → (B, V) fp32. For T = 0 it is
// one-hot at the argmax.
torch::Tensor sampling_distribution(const torch::Tensor& logits, const SamplingParams& params);

// Draws one token per row; row i uses rngs[i] (advanced by exactly one draw).
Sample sample_tokens(const torch::Tensor& logits, const SamplingParams& params,
                     std::vector<core::Rng*>& rngs);

}  // namespace gopd::rollout
