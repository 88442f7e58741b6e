// GRPO (DESIGN.md "GRPO (baseline RLVR)"): group-normalised outcome advantages and the PPO
// clipped surrogate with an optional KL penalty to the reference.
//
//   A_i = (r_i − mean_g(r)) / (std_g(r) + ε)      over the n rollouts of prompt g
//         (r_i − mean_g(r))                       with std_normalize = false ("Dr. GRPO")
//   ℓ_t = policy-gradient term of policy_loss.h (clipped with ε_low/ε_high, A_i on every token)
//         + β · k3_t,   k3_t = exp(d_t) − d_t − 1, d_t = clamp(lr_t − lp_t, ±20), clamped at 10
//           (≥ 0, unbiased for KL(π_θ ‖ π_ref) under π_θ samples; lp = log π_θ,
//           lr = log π_ref; the clamps are verl's low_var_kl)
//   loss = agg_t(ℓ_t) over the response mask.
//
// std is the unbiased sample standard deviation (verl's torch.std); a group of one rollout
// gets advantage 0 (mean = its reward). ε defaults to 1e-6 (grpo.epsilon).
#pragma once

#include <torch/torch.h>

#include "gopd/objective/loss_output.h"
#include "gopd/objective/policy_loss.h"

namespace gopd::objective {

struct GroupAdvantageOptions {
  bool std_normalize = true;  // grpo.std_normalize; false = Dr. GRPO
  double epsilon = 1e-6;      // grpo.epsilon
};

// rewards (B) fp32, group_ids (B) int64 (any labels; rows with the same id form a group)
// -> advantages (B) fp32, detached.
torch::Tensor group_advantages(const torch::Tensor& rewards, const torch::Tensor& group_ids,
                               const GroupAdvantageOptions& options);

// k3 estimator per token, exp(lr − lp) − (lr − lp) − 1; differentiable in `logp`.
torch::Tensor k3_kl(const torch::Tensor& logp, const torch::Tensor& reference_logp);

struct GrpoLossOptions {
  PolicyLossOptions policy;  // agg, clip_low/high; clipped is the PPO surrogate
  double kl_beta = 0.0;      // β of the KL penalty; 0 = none (reference log-probs unused)
};

// Metrics: those of policy_gradient_loss, plus "actor/kl" (mean k3 over response tokens) when a
// reference is given, and "loss/kl_penalty" (β·agg(k3)) when β > 0.
LossOutput grpo_loss(const torch::Tensor& logp,            // (B, T) fp32, requires grad
                     const torch::Tensor& logp_old,        // (B, T) fp32, detached
                     const torch::Tensor& advantages,      // (B) per rollout, detached
                     const torch::Tensor& weights,         // (B, T) importance weights or undefined
                     const torch::Tensor& reference_logp,  // (B, T) or undefined (β must be 0)
                     const torch::Tensor& mask,            // (B, T) 0/1
                     const GrpoLossOptions& options);

// Group outcome statistics for the metrics: "reward/mean", "reward/accuracy" (share of
// rollouts with reward ≥ 1), "grpo/zero_reward_prompt_fraction" (groups whose rollouts all
// have reward 0), "grpo/all_correct_prompt_fraction" (groups all ≥ 1).
std::map<std::string, double> group_outcome_metrics(const torch::Tensor& rewards,
                                                    const torch::Tensor& group_ids);

}  // namespace gopd::objective
