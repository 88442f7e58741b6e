// Token-level policy-gradient loss shared by G-OPD (sampled-token form) and GRPO: loss
// aggregation over (sequence, token), the truncated importance weight for sampler/trainer
// mismatch, and the policy-gradient surrogate, plain or PPO-clipped. Formulas: DESIGN.md
// "On-policy distillation and G-OPD (sampled-token form)" and "GRPO (baseline RLVR)":
//
//   plain:   ℓ_t = −w_t · A_t · log π_θ(y_t)
//   clipped: ℓ_t = −w_t · min(ρ_t · A_t, clip(ρ_t, 1 − ε_low, 1 + ε_high) · A_t),
//            ρ_t = π_θ(y_t) / π_old(y_t) = exp(clamp(log π_θ − log π_old, ±20))
//            and, for A_t < 0 with the dual clip c > 1 (verl's clip_ratio_c, default 3),
//            ℓ_t = min(ℓ_t, −w_t · c · A_t): a token whose ratio ran past c stops being pushed
//   w_t = min(exp(log π_old_train(y_t) − log π_rollout(y_t)), C)   (detached)
//   loss = agg_t(ℓ_t) over the response mask.
//
// The advantage A and the weights w are constants (no gradient). At ρ = 1 both forms have the
// same gradient −w·A·∇log π_θ, so one update per batch may use either.
#pragma once

#include <string>

#include <torch/torch.h>

#include "gopd/objective/loss_output.h"

namespace gopd::objective {

// The `train.loss_agg` modes (verl's agg_loss semantics; names with underscores).
enum class LossAgg {
  token_mean,           // Σ_{b,t} v·m / max(Σ m, 1): every response token weighs the same
  seq_mean_token_mean,  // mean over sequences with ≥ 1 token of (Σ_t v·m / Σ_t m)
  seq_mean_token_sum,   // mean over sequences with ≥ 1 token of Σ_t v·m
};

// "token_mean" | "seq_mean_token_mean" | "seq_mean_token_sum"; anything else is
// std::invalid_argument naming `train.loss_agg` and the allowed values.
LossAgg parse_loss_agg(const std::string& name);
const char* loss_agg_name(LossAgg agg);

// Aggregates per-token values into a scalar (differentiable in `values`). Positions with
// mask = 0 never contribute, not even a NaN or ±inf stored there.
torch::Tensor aggregate(const torch::Tensor& values,  // (B, T) fp32
                        const torch::Tensor& mask,    // (B, T) 0/1, float or bool
                        LossAgg agg);                 // -> () fp32

// w = min(exp(logp_old_train − logp_rollout), cap), detached. cap must be > 0.
torch::Tensor truncated_importance_weights(const torch::Tensor& logp_old_train,  // (B, T)
                                           const torch::Tensor& logp_rollout,    // (B, T)
                                           double cap);                          // -> (B, T) fp32

struct PolicyLossOptions {
  LossAgg agg = LossAgg::token_mean;
  double clip_low = 0.2;   // ε_low
  double clip_high = 0.2;  // ε_high (DAPO clip-higher: 0.28)
  bool clipped = false;    // PPO clipped surrogate with ρ = π_θ / π_old (more than one update)
  double clip_ratio_c = 3.0;  // dual clip for A < 0 (verl's default); ≤ 1 = off
};

// Metrics: "loss/policy", "actor/importance_weight_mean", "actor/importance_weight_max", and when
// clipped "actor/clip_fraction" (share of response tokens whose clipped branch is active, i.e.
// the token gets no gradient), "actor/dual_clip_fraction" (the same for the dual clip) and
// "actor/ratio_mean". Token statistics are means over the
// response mask, whatever `agg` is.
LossOutput policy_gradient_loss(const torch::Tensor& logp,       // (B, T) fp32, requires grad
                                const torch::Tensor& logp_old,   // (B, T) fp32, detached
                                const torch::Tensor& advantage,  // (B, T) fp32, detached
                                const torch::Tensor& weights,    // (B, T) fp32 or undefined (= 1)
                                const torch::Tensor& mask,       // (B, T) 0/1
                                const PolicyLossOptions& options);

}  // namespace gopd::objective
