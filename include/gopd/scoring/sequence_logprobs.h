// Per-token log-probabilities of whole sequences under a model (no gradient): what
// `gopd logprobs` prints, what the trainer recomputes for π_old, and what teachers and the
// reference provide to the objectives. Plain LibTorch path; the fused kernels issue adds a
// path that never materialises the (tokens × vocab) log-softmax.
#pragma once

#include <torch/torch.h>

#include "gopd/model/transformer.h"

namespace gopd::scoring {

// logprobs[b, t] = log softmax(logits[b, t] / temperature)[tokens[b, t]] in fp32.
// logits (B, T, V) any float dtype, tokens (B, T) int64 → (B, T) fp32.
torch::Tensor gather_token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens,
                                    double temperature = 1.0);

// input_ids (B, T), attention_mask (B, T) 1/0 (right or left padding) → (B, T - 1) fp32:
// entry t is log π(input_ids[b, t + 1] | input_ids[b, ≤ t]). Entries at padding are 0.
torch::Tensor sequence_logprobs(model::Transformer& model, const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask, double temperature = 1.0);

}  // namespace gopd::scoring
