// Loss aggregation, truncated importance weights and the policy-gradient surrogate (plain and
// PPO-clipped). Formulas: include/gopd/objective/policy_loss.h and DESIGN.md "On-policy
// distillation and G-OPD (sampled-token form)", "GRPO (baseline RLVR)".
//
// Padding positions (mask = 0) are zeroed with masked_fill before anything is multiplied, so
// that a −inf log-prob or a NaN ratio stored at padding neither reaches the loss nor turns the
// backward pass into 0 · inf = NaN.
#include "gopd/objective/policy_loss.h"

#include <algorithm>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace gopd::objective {
namespace {

[[noreturn]] void fail(const char* op, const std::string& message) {
  throw std::invalid_argument(std::string(op) + ": " + message);
}

std::string shape_of(const torch::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes();
  return out.str();
}

void check_tokens_2d(const char* op, const char* name, const torch::Tensor& tensor) {
  if (!tensor.defined()) fail(op, std::string(name) + " is undefined");
  if (tensor.dim() != 2) {
    fail(op, std::string(name) + " must be (B, T), got shape " + shape_of(tensor));
  }
}

void check_like(const char* op, const char* name, const torch::Tensor& tensor,
                const torch::Tensor& like) {
  if (!tensor.defined()) fail(op, std::string(name) + " is undefined");
  if (tensor.sizes() != like.sizes()) {
    fail(op, std::string(name) + " has shape " + shape_of(tensor) + ", expected " + shape_of(like));
  }
}

// fp64 stays fp64 (gradient tests); everything else is computed in fp32.
torch::ScalarType compute_dtype(const torch::Tensor& tensor) {
  return tensor.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// Max over the response tokens, 0 when there are none.
torch::Tensor masked_max(const torch::Tensor& values,   // (B, T)
                         const torch::Tensor& valid) {  // (B, T) bool
  const torch::Tensor max =
      values.masked_fill(valid.logical_not(), -std::numeric_limits<double>::infinity()).max();
  return torch::where(valid.any(), max, torch::zeros_like(max));
}

}  // namespace

LossAgg parse_loss_agg(const std::string& name) {
  if (name == "token_mean") return LossAgg::token_mean;
  if (name == "seq_mean_token_mean") return LossAgg::seq_mean_token_mean;
  if (name == "seq_mean_token_sum") return LossAgg::seq_mean_token_sum;
  throw std::invalid_argument(
      "train.loss_agg: expected one of token_mean, seq_mean_token_mean, seq_mean_token_sum, "
      "got '" +
      name + "'");
}

const char* loss_agg_name(LossAgg agg) {
  switch (agg) {
    case LossAgg::token_mean:
      return "token_mean";
    case LossAgg::seq_mean_token_mean:
      return "seq_mean_token_mean";
    case LossAgg::seq_mean_token_sum:
      return "seq_mean_token_sum";
  }
  return "unknown";
}

torch::Tensor aggregate(const torch::Tensor& values, const torch::Tensor& mask, LossAgg agg) {
  const char* op = "aggregate";
  check_tokens_2d(op, "values", values);
  check_like(op, "mask", mask, values);
  const torch::Tensor weight = mask.to(values.scalar_type());                  // (B, T)
  const torch::Tensor masked = values.masked_fill(weight == 0, 0.0) * weight;  // (B, T)
  switch (agg) {
    case LossAgg::token_mean:
      return masked.sum() / weight.sum().clamp_min(1.0);
    case LossAgg::seq_mean_token_mean:
    case LossAgg::seq_mean_token_sum: {
      // Both means leave sequences without a token out (verl v0.6.1 on).
      const torch::Tensor tokens = weight.sum(1);                              // (B)
      const torch::Tensor has_tokens = (tokens > 0).to(values.scalar_type());  // (B)
      const torch::Tensor per_sequence = agg == LossAgg::seq_mean_token_mean
                                             ? masked.sum(1) / tokens.clamp_min(1.0)
                                             : masked.sum(1);  // (B)
      return (per_sequence * has_tokens).sum() / has_tokens.sum().clamp_min(1.0);
    }
  }
  fail(op, "unknown LossAgg value");
}

torch::Tensor truncated_importance_weights(const torch::Tensor& logp_old_train,
                                           const torch::Tensor& logp_rollout, double cap) {
  const char* op = "truncated_importance_weights";
  if (!logp_old_train.defined()) fail(op, "logp_old_train is undefined");
  check_like(op, "logp_rollout", logp_rollout, logp_old_train);
  if (!(cap > 0.0)) fail(op, "cap (gopd.importance_cap) must be > 0, got " + std::to_string(cap));
  torch::NoGradGuard no_grad;
  const torch::ScalarType dtype = compute_dtype(logp_old_train);
  return (logp_old_train.detach().to(dtype) - logp_rollout.detach().to(dtype)).exp().clamp_max(cap);
}

LossOutput policy_gradient_loss(const torch::Tensor& logp, const torch::Tensor& logp_old,
                                const torch::Tensor& advantage, const torch::Tensor& weights,
                                const torch::Tensor& mask, const PolicyLossOptions& options) {
  const char* op = "policy_gradient_loss";
  check_tokens_2d(op, "logp", logp);
  check_like(op, "advantage", advantage, logp);
  check_like(op, "mask", mask, logp);
  if (weights.defined()) check_like(op, "weights", weights, logp);
  if (options.clipped) {
    check_like(op, "logp_old", logp_old, logp);
    if (!(options.clip_low >= 0.0 && options.clip_low < 1.0) || !(options.clip_high >= 0.0)) {
      fail(op, "clip range must satisfy 0 <= clip_low < 1 and clip_high >= 0, got clip_low = " +
                   std::to_string(options.clip_low) +
                   ", clip_high = " + std::to_string(options.clip_high));
    }
  }
  const torch::ScalarType dtype = logp.scalar_type();
  const torch::Tensor padding = (mask == 0);  // (B, T) bool
  const torch::Tensor valid = padding.logical_not();
  const torch::Tensor advantage_c =
      advantage.detach().to(dtype).masked_fill(padding, 0.0);  // (B, T)
  const torch::Tensor weights_c = weights.defined()
                                      ? weights.detach().to(dtype).masked_fill(padding, 0.0)
                                      : torch::Tensor();  // (B, T) or undefined

  LossOutput out;
  torch::Tensor surrogate;  // (B, T): the term whose gradient is A · ∇log π_θ (ascent direction)
  if (!options.clipped) {
    surrogate = advantage_c * logp;
  } else {
    // verl clamps the log-ratio at ±20 so that exp cannot overflow.
    const torch::Tensor log_ratio =
        (logp - logp_old.detach().to(dtype)).clamp(-20.0, 20.0).masked_fill(padding, 0.0);  // (B, T)
    const torch::Tensor ratio = log_ratio.exp();                         // (B, T)
    torch::Tensor clipped_ratio;                                         // (B, T) constant
    torch::Tensor clip_active;                                           // (B, T) bool
    torch::Tensor dual_active;                                           // (B, T) bool
    const bool dual = options.clip_ratio_c > 1.0;
    {
      torch::NoGradGuard no_grad;
      clipped_ratio = ratio.detach().clamp(1.0 - options.clip_low, 1.0 + options.clip_high);
      // min(ρA, clip(ρ)A) takes the clipped branch exactly where it is strictly smaller; there
      // the token is constant (clip(ρ) sits at a bound), so select it with `where`: the
      // unclipped branch, tie included, carries the gradient.
      clip_active = (clipped_ratio * advantage_c < ratio.detach() * advantage_c) & valid;
      // Dual clip: for A < 0, max(min(ρA, clip(ρ)A), c·A) is the constant c·A where ρ > c.
      dual_active = dual ? (advantage_c < 0) & (ratio.detach() > options.clip_ratio_c) & valid
                         : torch::zeros_like(clip_active);
    }
    surrogate = torch::where(clip_active, clipped_ratio * advantage_c, ratio * advantage_c);
    if (dual) surrogate = torch::where(dual_active, options.clip_ratio_c * advantage_c, surrogate);
    torch::NoGradGuard no_grad;
    out.metrics["actor/clip_fraction"] =
        aggregate(clip_active.to(dtype), mask, LossAgg::token_mean);
    out.metrics["actor/dual_clip_fraction"] =
        aggregate(dual_active.to(dtype), mask, LossAgg::token_mean);
    out.metrics["actor/ratio_mean"] = aggregate(ratio.detach(), mask, LossAgg::token_mean);
  }
  const torch::Tensor per_token = weights_c.defined() ? -(weights_c * surrogate) : -surrogate;
  out.loss = aggregate(per_token, mask, options.agg);

  torch::NoGradGuard no_grad;
  out.metrics["loss/policy"] = out.loss.detach();
  if (weights_c.defined()) {
    out.metrics["actor/importance_weight_mean"] = aggregate(weights_c, mask, LossAgg::token_mean);
    out.metrics["actor/importance_weight_max"] = masked_max(weights_c, valid);
  } else {
    const torch::Tensor one = torch::ones({}, logp.options().requires_grad(false));
    out.metrics["actor/importance_weight_mean"] = one;
    out.metrics["actor/importance_weight_max"] = one;
  }
  return out;
}

}  // namespace gopd::objective
