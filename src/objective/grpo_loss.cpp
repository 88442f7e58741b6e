// GRPO advantages and loss: see grpo_loss.h.
#include "gopd/objective/grpo_loss.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <vector>

namespace gopd::objective {
namespace {

// Rows of each group, in first-appearance order of the ids.
std::vector<std::vector<int64_t>> groups_of(const torch::Tensor& group_ids) {
  const torch::Tensor ids = group_ids.to(torch::kCPU).to(torch::kLong).contiguous();
  std::map<int64_t, size_t> index;
  std::vector<std::vector<int64_t>> groups;
  const int64_t* data = ids.data_ptr<int64_t>();
  for (int64_t row = 0; row < ids.numel(); ++row) {
    const auto [it, inserted] = index.emplace(data[row], groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(row);
  }
  return groups;
}

}  // namespace

torch::Tensor group_advantages(const torch::Tensor& rewards, const torch::Tensor& group_ids,
                               const GroupAdvantageOptions& options) {
  if (rewards.dim() != 1 || group_ids.dim() != 1 || rewards.size(0) != group_ids.size(0)) {
    throw std::invalid_argument("group_advantages: rewards and group_ids must be (B) tensors of one size");
  }
  const torch::Tensor r = rewards.detach().to(torch::kCPU).to(torch::kDouble).contiguous();
  const double* values = r.data_ptr<double>();
  torch::Tensor advantages = torch::zeros({r.size(0)}, torch::kDouble);
  double* out = advantages.data_ptr<double>();
  for (const std::vector<int64_t>& rows : groups_of(group_ids)) {
    const double n = double(rows.size());
    double mean = 0;
    for (int64_t row : rows) mean += values[row];
    mean /= n;
    double variance = 0;
    for (int64_t row : rows) variance += (values[row] - mean) * (values[row] - mean);
    const double std = rows.size() > 1 ? std::sqrt(variance / (n - 1)) : 1.0;
    for (int64_t row : rows) {
      const double centred = rows.size() > 1 ? values[row] - mean : 0.0;
      out[row] = options.std_normalize ? centred / (std + options.epsilon) : centred;
    }
  }
  return advantages.to(torch::kFloat).to(rewards.device());
}

torch::Tensor k3_kl(const torch::Tensor& logp, const torch::Tensor& reference_logp) {
  // verl's low_var_kl: the log-ratio clamped at ±20 and the estimate at ±10, so that one token
  // the policy has all but ruled out cannot dominate the penalty (beyond the clamp it gets no
  // gradient).
  const torch::Tensor delta = (reference_logp - logp).clamp(-20.0, 20.0);
  return (torch::exp(delta) - delta - 1.0).clamp(-10.0, 10.0);
}

LossOutput grpo_loss(const torch::Tensor& logp, const torch::Tensor& logp_old, const torch::Tensor& advantages,
                     const torch::Tensor& weights, const torch::Tensor& reference_logp, const torch::Tensor& mask,
                     const GrpoLossOptions& options) {
  if (options.kl_beta != 0.0 && !reference_logp.defined()) {
    throw std::invalid_argument("grpo_loss: grpo.kl_beta > 0 needs the reference log-probs");
  }
  const torch::Tensor token_advantages = advantages.detach().to(torch::kFloat).unsqueeze(1).expand_as(logp);
  LossOutput output = policy_gradient_loss(logp, logp_old, token_advantages, weights, mask, options.policy);
  if (reference_logp.defined()) {
    const torch::Tensor fmask = mask.to(torch::kFloat);
    // Masked positions may hold garbage (±inf): zero them before the estimator sees them.
    const torch::Tensor safe_logp = torch::where(fmask > 0, logp, torch::zeros_like(logp));
    const torch::Tensor safe_reference =
        torch::where(fmask > 0, reference_logp.detach(), torch::zeros_like(logp));
    const torch::Tensor kl = k3_kl(safe_logp, safe_reference);
    output.metrics["actor/kl"] = ((kl.detach() * fmask).sum() / fmask.sum().clamp_min(1.0));
    if (options.kl_beta != 0.0) {
      const torch::Tensor penalty = options.kl_beta * aggregate(kl, fmask, options.policy.agg);
      output.loss = output.loss + penalty;
      output.metrics["loss/kl_penalty"] = penalty.detach();
    }
  }
  return output;
}

std::map<std::string, double> group_outcome_metrics(const torch::Tensor& rewards, const torch::Tensor& group_ids) {
  const torch::Tensor r = rewards.detach().to(torch::kCPU).to(torch::kDouble).contiguous();
  const double* values = r.data_ptr<double>();
  const auto groups = groups_of(group_ids);
  double sum = 0;
  double correct = 0;
  double zero = 0;
  double all = 0;
  for (const std::vector<int64_t>& rows : groups) {
    bool any_reward = false;
    bool every_correct = true;
    for (int64_t row : rows) {
      sum += values[row];
      correct += values[row] >= 1.0 ? 1.0 : 0.0;
      any_reward = any_reward || values[row] != 0.0;
      every_correct = every_correct && values[row] >= 1.0;
    }
    zero += any_reward ? 0.0 : 1.0;
    all += every_correct ? 1.0 : 0.0;
  }
  const double rows = std::max<double>(1.0, double(r.numel()));
  const double prompts = std::max<double>(1.0, double(groups.size()));
  return {{"reward/mean", sum / rows},
          {"reward/accuracy", correct / rows},
          {"grpo/zero_reward_prompt_fraction", zero / prompts},
          {"grpo/all_correct_prompt_fraction", all / prompts}};
}

}  // namespace gopd::objective
