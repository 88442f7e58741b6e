// LENS (DESIGN.md "LENS (RLVR with instruction purification)"): the pure decisions of the
// method, separated from the trainer loop so they can be tested on hand-built cases.
//
//   1. interference score of prompt token j:  S_j = |log π_θ(x_j | x_<j) − log π_ref(x_j | x_<j)|
//   2. purification: delete the ⌈γ·|x|⌉ highest-scoring tokens, keep the order of the rest
//   3. transfer: for a prompt whose success rate ā (over its n rollouts) is below τ, and only
//      if the purified prompt's rollouts succeed more often, successful purified rollouts
//      replace failed original ones (at most max_replace; 0 = as many as there are)
//   4. CRPO: ratio ρ(y) = π_θ(y | x) / (w̃(y) · π_old(y | x_roll(y))) with w̃ = ā for original
//      successes and 1 − ā for transferred successes and remaining failures (uniform: w̃ = 1).
//
// What ρ means, as importance sampling. The rebuilt group is not a sample of π_old(· | x): each
// row y was drawn from its own proposal, π_old(· | x) for original rows and π_old(· | x') for
// transferred ones, and CRPO scales that proposal by w̃(y). The objective is E_{y∼π_θ(·|x)}[A(y)];
// estimated from row y it is (π_θ(y | x) / (w̃ · π_old(y | x_roll))) · A(y) = ρ · A. Since w̃ is
// a constant of the row, ρ factors into three parts of different kinds:
//
//   ρ = [π_θ(y | x) / π_old(y | x)]            q: how far θ has moved — PPO's trust region
//     · [π_old(y | x) / π_old(y | x_roll)]     c: the behaviour correction (1 for original rows)
//     · [1 / w̃]                                 the calibration: a per-row sample weight
//
// Only q measures a policy change; c and 1/w̃ are fixed when the batch is made. The clip
// belongs on q alone (the decoupled PPO objective of Hilton et al. 2022, where the proximal
// policy π_old(· | x) and the behaviour policy π_old(· | x') are separate), and c and 1/w̃
// multiply the row's surrogate from outside, c truncated at C like the sampler/trainer
// importance weight of the distillation path (it is the same correction: the sampler's
// log-probs under x_roll against the trainer's under x). The default (`crpo`) is therefore
//
//   ℓ_t = −(1/w̃) · min(exp(log π_old(y_t | x, y_<t) − log π_roll(y_t | x_roll, y_<t)), C)
//         · min(q_t · A, clip(q_t, 1 − ε_low, 1 + ε_high) · A)
//
// with log π_roll the sampler's log-probs (so for rows that were not transferred c is the
// ordinary truncated importance weight, ≈ 1 on one machine). At θ = θ_old every q_t = 1: no
// row is clipped, original successes get weight 1/ā (rare successes of a hard prompt count
// more), transferred successes and failures 1/(1 − ā); the gradient of every row is
// −(1/w̃)·c·A·∇log π_θ, the literal ρ's gradient where c < C. Why 1/w̃ and not w̃: it is the
// factor the paper's ρ puts on the row; multiplying by w̃ (gopd's former `crpo_sample`) would
// weigh a rare original success down by ā, the opposite of the ratio it claims to read.
//
// `crpo_literal` keeps the formula as written: log w̃ is added to π_old(y | x_roll) and the clip
// acts on ρ itself. At θ = θ_old, ρ = 1/w̃ on original rows, so with ā < τ ≤ 0.5 original
// successes start at ρ ≥ 2 > 1 + ε_high: their clipped branch is active and they get NO
// gradient; transferred successes start at c/(1 − ā) and are clipped once that passes 1 + ε;
// failures (A < 0) are never clipped from above and are pushed down 1/(1 − ā) times harder.
// It is kept for comparison with the paper's text, not as a recommendation.
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
//   a zero w̃ (ā = 0 or 1) is floored at `min_weight` to keep 1/w̃ finite; tokens with a zero
//   interference score are never deleted (at the first step π_θ = π_ref, so nothing is
//   purified until the policy has moved); the decoupled clip above.
// - ours, in the trainer: CRPO weights apply to the groups a transfer rebuilt; the other groups
//   are plain GRPO groups (all their rollouts came from π_old(· | x)), with the same truncated
//   importance weight against the sampler.
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

// keep_failure: at most (failures − 1) replacements, so that the rebuilt group keeps a failure.
// A group made all-correct has every advantage 0 (std normalisation or not): its transfers and
// its original successes would teach nothing (lens.keep_failure, default true in the trainer).
TransferPlan plan_transfer(const std::vector<double>& original_rewards,
                           const std::vector<double>& purified_rewards, double tau, int64_t max_replace,
                           bool keep_failure = false, double success_threshold = 1.0);

// w̃ per rollout of the rebuilt group (original order, replacements applied): "crpo" (ā for
// original successes, 1 − ā for transferred successes and remaining failures, floored at
// min_weight) or "uniform" (all 1).
std::vector<double> crpo_weights(const std::vector<double>& original_rewards, const TransferPlan& plan,
                                 bool uniform, double success_threshold = 1.0, double min_weight = 1e-3);

}  // namespace gopd::lens
