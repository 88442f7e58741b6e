// LENS decisions: see lens.h.
#include "gopd/lens/lens.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace gopd::lens {

std::vector<double> interference_scores(const std::vector<double>& policy_logprobs,
                                        const std::vector<double>& reference_logprobs) {
  if (policy_logprobs.size() != reference_logprobs.size()) {
    throw std::invalid_argument("interference_scores: policy and reference log-probs differ in length");
  }
  std::vector<double> scores(policy_logprobs.size());
  for (size_t j = 0; j < scores.size(); ++j) scores[j] = std::abs(policy_logprobs[j] - reference_logprobs[j]);
  return scores;
}

Purification purify(const std::vector<int64_t>& ids, const std::vector<double>& scores, double gamma,
                    const std::vector<bool>& eligible, double floor) {
  if (scores.size() != ids.size() || (!eligible.empty() && eligible.size() != ids.size())) {
    throw std::invalid_argument("purify: ids, scores and eligible must have one entry per prompt token");
  }
  if (!(gamma >= 0.0 && gamma <= 1.0)) throw std::invalid_argument("purify: lens.gamma must be in [0, 1]");
  std::vector<int64_t> candidates;
  for (size_t j = 0; j < ids.size(); ++j) {
    if (eligible.empty() ? j > 0 : eligible[j]) candidates.push_back(int64_t(j));
  }
  int64_t count = std::min<int64_t>(int64_t(candidates.size()),
                                    int64_t(std::ceil(gamma * double(candidates.size()) - 1e-9)));
  // Highest score first; ties: the earlier position first.
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](int64_t a, int64_t b) { return scores[size_t(a)] > scores[size_t(b)]; });
  int64_t above_floor = 0;
  while (above_floor < count && scores[size_t(candidates[size_t(above_floor)])] > floor) ++above_floor;
  count = above_floor;
  Purification result;
  result.removed_positions.assign(candidates.begin(), candidates.begin() + count);
  std::sort(result.removed_positions.begin(), result.removed_positions.end());
  size_t next = 0;
  for (size_t j = 0; j < ids.size(); ++j) {
    if (next < result.removed_positions.size() && result.removed_positions[next] == int64_t(j)) {
      ++next;
      continue;
    }
    result.kept_ids.push_back(ids[j]);
  }
  return result;
}

namespace {

double success_rate(const std::vector<double>& rewards, double threshold) {
  if (rewards.empty()) return 0.0;
  double successes = 0;
  for (double reward : rewards) successes += reward >= threshold ? 1.0 : 0.0;
  return successes / double(rewards.size());
}

}  // namespace

TransferPlan plan_transfer(const std::vector<double>& original_rewards,
                           const std::vector<double>& purified_rewards, double tau, int64_t max_replace,
                           bool keep_failure, double success_threshold) {
  TransferPlan plan;
  plan.success_before = success_rate(original_rewards, success_threshold);
  plan.low_success = plan.success_before < tau;
  if (!plan.low_success) return plan;
  plan.success_after = success_rate(purified_rewards, success_threshold);
  plan.helped = plan.success_after > plan.success_before;
  if (!plan.helped) return plan;
  std::vector<int64_t> failures;
  std::vector<int64_t> successes;
  for (size_t i = 0; i < original_rewards.size(); ++i) {
    if (original_rewards[i] < success_threshold) failures.push_back(int64_t(i));
  }
  for (size_t i = 0; i < purified_rewards.size(); ++i) {
    if (purified_rewards[i] >= success_threshold) successes.push_back(int64_t(i));
  }
  int64_t count = int64_t(std::min(failures.size(), successes.size()));
  if (max_replace > 0) count = std::min(count, max_replace);
  if (keep_failure) count = std::min(count, int64_t(failures.size()) - 1);
  for (int64_t k = 0; k < count; ++k) plan.replacements.emplace_back(failures[size_t(k)], successes[size_t(k)]);
  return plan;
}

std::vector<double> crpo_weights(const std::vector<double>& original_rewards, const TransferPlan& plan,
                                 bool uniform, double success_threshold, double min_weight) {
  std::vector<double> weights(original_rewards.size(), 1.0);
  if (uniform) return weights;
  const double a = plan.success_before;
  for (size_t i = 0; i < original_rewards.size(); ++i) {
    weights[i] = std::max(min_weight, original_rewards[i] >= success_threshold ? a : 1.0 - a);
  }
  // Transferred rollouts sit where original failures were: 1 − ā, like the remaining failures.
  for (const auto& [slot, purified] : plan.replacements) weights[size_t(slot)] = std::max(min_weight, 1.0 - a);
  return weights;
}

}  // namespace gopd::lens
