// LENS (DESIGN.md "LENS (RLVR with instruction purification)"): the pure decisions of the
// method, separated from the trainer loop so they can be tested on hand-built cases.
//
//   1. interference score of prompt token j:  S_j = |log π_θ(x_j | x_<j) − log π_ref(x_j | x_<j)|
//   2. purification: delete the ⌈γ·|x|⌉ highest-scoring tokens, keep the order of the rest
//   3. transfer: for a prompt whose success rate ā (over its n rollouts) is below τ, and only
//      if the purified prompt's rollouts succeed more often, successful purified rollouts
//      replace failed original ones (at most max_replace; 0 = as many as there are)
//   4. CRPO: ratio π_θ(y | x) / (w̃(y) · π_old(y | x_roll(y))) with w̃ = ā for original
//      successes and 1 − ā for transferred successes and remaining failures (uniform: w̃ = 1).
//
// Which choices are the paper's and which are ours (the method section was not readable):
// - paper: S_j as above with π_ref the initial policy; deleting the top-γ tokens; transfer only
//   when purification helped; responses conditioned on the ORIGINAL prompt; CRPO weights ā /
//   1 − ā; group advantages over the rebuilt group.
// - ours: |x| counts only the tokens purification may touch (the prompt text, not chat-template
//   tokens, and not the first token, which has no context to score it); ties in S_j delete the
//   earlier token first; "success" is reward ≥ success_threshold (1.0), "failure" the rest;
//   transferred rollouts replace the original failures in order (earliest failure first) with
//   the purified successes in order; ā is the original group's mean of (reward ≥ threshold);
//   w̃ enters the ratio as log π_old + log w̃ (so clipping applies to the calibrated ratio), and
//   a zero w̃ (ā = 0 or 1) is floored at `min_weight` to keep the ratio finite; tokens with a
//   zero interference score are never deleted (at the first step π_θ = π_ref, so nothing is
//   purified until the policy has moved).
// - ours, in the trainer: lens.weight_scheme crpo puts w̃ in the clipped ratio as above;
//   crpo_sample reads "reweights samples" literally: the ratio is π_θ(y | x) / π_old(y | x_roll)
//   and w̃ multiplies the sample's loss outside the clip (the two readings weigh a rare
//   original success by 1/ā and by ā respectively; which one the paper means is not known).
//   CRPO weights apply to the groups a transfer rebuilt; the other groups
//   are plain GRPO groups (all their rollouts came from π_old(· | x)); π_old of a transferred
//   rollout is recomputed under the purified prompt it was sampled from.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace gopd::lens {

// S_j = |policy_j − reference_j| (log-probs of the prompt's own tokens, one per position).
std::vector<double> interference_scores(const std::vector<double>& policy_logprobs,
                                        const std::vector<double>& reference_logprobs);

struct Purification {
  std::vector<int64_t> kept_ids;           // the purified prompt, order kept
  std::vector<int64_t> removed_positions;  // ascending positions in the original prompt
};

// Deletes the ceil(γ·E) highest-scoring eligible positions, E = number of eligible positions
// (at least one token is deleted when γ > 0 and E > 0; none when γ = 0). `eligible` empty =
// every position but the first. Positions scoring ≤ `floor` are never deleted (they still
// count in E): the trainer passes 0, so a token the policy has not moved on is kept.
Purification purify(const std::vector<int64_t>& ids, const std::vector<double>& scores, double gamma,
                    const std::vector<bool>& eligible = {},
                    double floor = -std::numeric_limits<double>::infinity());

struct TransferPlan {
  bool low_success = false;   // ā < τ: the prompt was purified
  bool helped = false;        // the purified rollouts succeeded more often
  double success_before = 0;  // ā
  double success_after = 0;   // success rate of the purified rollouts
  // (index of a failed original rollout, index of the successful purified rollout replacing it)
  std::vector<std::pair<int64_t, int64_t>> replacements;
};

TransferPlan plan_transfer(const std::vector<double>& original_rewards,
                           const std::vector<double>& purified_rewards, double tau, int64_t max_replace,
                           double success_threshold = 1.0);

// w̃ per rollout of the rebuilt group (original order, replacements applied): "crpo" (ā for
// original successes, 1 − ā for transferred successes and remaining failures, floored at
// min_weight) or "uniform" (all 1).
std::vector<double> crpo_weights(const std::vector<double>& original_rewards, const TransferPlan& plan,
                                 bool uniform, double success_threshold = 1.0, double min_weight = 1e-3);

}  // namespace gopd::lens
