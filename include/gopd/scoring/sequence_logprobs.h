// Per-token log-probabilities of whole sequences under a model (no gradient): what
// `gopd logprobs` prints, what the trainer recomputes for π_old, and what teachers and the
// reference provide to the objectives. Plain LibTorch path; the fused kernels issue adds a
// path that never materialises the (tokens × vocab) log-softmax.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "gopd/kernels/ops.h"
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

// The trainer's batched passes (no gradient), micro-batch by micro-batch; `vocab_width` > 0 cuts
// the logits to the shared tokenizer's width first (padded embeddings), 0 keeps them all.

// Response log-probs of a prompt + response batch (lm_head on the response positions only,
// `chunk_rows` rows at a time, see kernels/logit_head.h): input_ids (B, P + T) left-padded prompts then
// right-padded responses, attention_mask (B, P + T), targets (B, T) the response tokens →
// (B, T) fp32 log π(targets[b, t] | prefix) at `temperature` (values at padding unspecified).
torch::Tensor response_logprobs(model::Transformer& model, const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask, const torch::Tensor& targets,
                                int64_t prompt_length, double temperature, int64_t micro_batch,
                                int64_t vocab_width, int64_t chunk_rows, kernels::Impl impl,
                                torch::ScalarType compute_dtype = torch::ScalarType::Undefined);

// The log-probs of each prompt's own tokens at temperature 1: result[i][j] = log π(x_j | x_<j)
// for j ≥ 1, result[i][0] = 0 (no context). Prompts are left-padded with `pad` per micro-batch.
std::vector<std::vector<double>> prompt_logprobs(model::Transformer& model,
                                                 const std::vector<std::vector<int64_t>>& prompts, int64_t pad,
                                                 int64_t micro_batch, int64_t vocab_width);

}  // namespace gopd::scoring
