// Supervised fine-tuning loss (DESIGN.md "SFT"): cross-entropy on response tokens, prompt and
// padding masked, computed through kernels::token_logprobs so the fused path never builds a
// (B, T, V) log-softmax.
#pragma once

#include <torch/torch.h>

#include "gopd/kernels/logit_head.h"
#include "gopd/kernels/ops.h"
#include "gopd/objective/loss_output.h"
#include "gopd/objective/policy_loss.h"

namespace gopd::objective {

// ℓ_t = −log softmax(logits_t)[target_t] at temperature 1, aggregated over the mask. Targets at
// masked positions are ignored (any value, e.g. −100, is accepted there). Metrics: "loss/sft",
// "sft/token_accuracy" (share of response tokens whose argmax is the target).
LossOutput sft_loss(const torch::Tensor& logits,   // (B, T, V) requires grad; row t predicts
                                                   // targets[:, t]
                    const torch::Tensor& targets,  // (B, T) int64
                    const torch::Tensor& mask,     // (B, T) 1 on answer tokens, 0 on prompt
                                                   // and padding
                    LossAgg agg, kernels::Impl impl);

// The same from a head (kernels/logit_head.h): hidden states (B, T, H) whose logits predict
// targets, taken chunk by chunk; same loss and metrics.
LossOutput sft_loss(const kernels::LogitHead& head, const torch::Tensor& targets,
                    const torch::Tensor& mask, LossAgg agg, kernels::Impl impl);

}  // namespace gopd::objective
