// CRPO (LENS's update) tested through its gradient, row by row (lens.h derives the forms).
//
// A hand-built rebuilt group of n = 8: the original rollouts had 2 successes (ā = 2/8), and one
// successful rollout of the purified prompt x' (3 of 8 succeeded there; lens.max_replace 1)
// replaced the first failure. Rows:
//   0, 1  original successes      w̃ = ā = 1/4,      sampled under x
//   2     transferred success     w̃ = 1 − ā = 3/4,  sampled under x' (π_old(y|x)/π_old(y|x') = e^0.3)
//   3–7   remaining failures      w̃ = 3/4,          sampled under x; row 7 has a padded token
// The loss is composed exactly as the trainer composes it (trainer.cpp, rlvr_step): group
// advantages over the rebuilt rewards, w_t = min(exp(log π_old_train − log π_rollout), C),
// and grpo_loss with the PPO clip (ε = 0.2, dual clip c = 3), token-mean.
//
// What each form must give, d loss / d log π_θ(y_t) of each row:
//   crpo (default) at θ = θ_old:   −(1/w̃) · min(c_t, C) · A / N   for every row: nothing clipped
//   crpo after a step inside the trust region: the same times q_t = π_θ/π_old (still unclipped)
//   crpo_literal at θ = θ_old:     0 for original and transferred successes (ρ = 4 and 1.8 >
//                                  1.2: clipped), −(4/3) · A / N for failures (pushed harder)
#include <gtest/gtest.h>

#include <cmath>

#include "gopd/lens/lens.h"
#include "gopd/objective/grpo_loss.h"
#include "gopd/objective/policy_loss.h"
#include "gopd/lens/rows.h"

namespace {

using namespace gopd;

constexpr int64_t kRows = 8;
constexpr int64_t kTokens = 2;
constexpr double kCap = 5.0;
constexpr double kShift = 0.3;  // log π_old(y | x) − log π_old(y | x') on the transferred row

struct RebuiltGroup {
  lens::RlvrRows rows;
  torch::Tensor old;        // (8, 2) log π_old(y_t | x): the trainer's at θ = θ_old
  torch::Tensor old_roll;   // (8, 2) log π_old(y_t | x_roll): crpo_literal's π_old
  torch::Tensor sampler;    // (8, 2) the sampler's log-probs (under x_roll)
  torch::Tensor mask;       // (8, 2)
  torch::Tensor advantage;  // (8)
  double a_bar = 0;
};

RebuiltGroup rebuilt_group() {
  RebuiltGroup g;
  const std::vector<double> original = {1, 1, 0, 0, 0, 0, 0, 0};
  const lens::TransferPlan plan = lens::plan_transfer(original, {1, 1, 1, 0, 0, 0, 0, 0}, 0.5, 1);
  EXPECT_EQ(plan.replacements.size(), 1u);
  g.a_bar = plan.success_before;
  for (int64_t r = 0; r < kRows; ++r) {
    g.rows.prompt.push_back({10, 11, 12});
    g.rows.response.push_back({int64_t(20 + r), int64_t(30 + r)});
    g.rows.reward.push_back(original[size_t(r)]);
    g.rows.correct.push_back(original[size_t(r)]);
  }
  g.rows.roll_prompt = g.rows.prompt;
  g.rows.log_weight.assign(kRows, 0.0);
  // θ_old's log-probs of each token under x; the sampler agrees with the trainer under x.
  g.old = -1.0 - 0.1 * torch::arange(kRows * kTokens, torch::kFloat).view({kRows, kTokens});
  for (int64_t r = 0; r < kRows; ++r) {
    g.rows.rollout_logprobs.push_back({g.old[r][0].item<float>(), g.old[r][1].item<float>()});
  }
  lens::PurifiedGroup purified;
  purified.prompt = {10, 12};
  for (int64_t i = 0; i < kRows; ++i) {
    purified.responses.push_back({int64_t(20 + 2), int64_t(30 + 2)});
    purified.reward.push_back(i < 3 ? 1.0 : 0.0);  // 3/8 > ā: purification helped
    purified.correct.push_back(i < 3 ? 1.0 : 0.0);
    // Under x' the sampler gave the transferred response kShift less log-prob per token.
    purified.rollout_logprobs.push_back({g.old[2][0].item<float>() - float(kShift),
                                         g.old[2][1].item<float>() - float(kShift)});
  }
  lens::apply_transfer(g.rows, 0, kRows, plan, lens::crpo_weights(original, plan, false), purified);
  g.sampler = lens::rollout_logprobs(g.rows, kTokens);
  g.old_roll = g.sampler.clone();  // the trainer's π_old(y | x_roll) equals the sampler's here
  g.mask = torch::ones({kRows, kTokens});
  g.mask[7][1] = 0.0f;  // a padded token: garbage log-probs that must get no gradient
  g.old[7][1] = -std::numeric_limits<float>::infinity();
  g.sampler[7][1] = 0.0f;
  objective::GroupAdvantageOptions options;
  g.advantage = objective::group_advantages(torch::tensor(g.rows.reward, torch::kFloat),
                                            torch::zeros({kRows}, torch::kLong), options);
  return g;
}

objective::GrpoLossOptions loss_options() {
  objective::GrpoLossOptions options;
  options.policy.agg = objective::LossAgg::token_mean;
  options.policy.clipped = true;
  options.policy.clip_low = 0.2;
  options.policy.clip_high = 0.2;
  options.policy.clip_ratio_c = 3.0;
  return options;
}

// d loss / d log π_θ for the default crpo at log π_θ = logp.
torch::Tensor crpo_gradient(const RebuiltGroup& g, const torch::Tensor& logp_value) {
  const torch::Tensor logp = logp_value.clone().requires_grad_(true);
  const torch::Tensor weights = objective::truncated_importance_weights(g.old, g.sampler, kCap) *
                                lens::calibration_weights(g.rows).unsqueeze(1);
  objective::grpo_loss(logp, g.old, g.advantage, weights, torch::Tensor(), g.mask, loss_options())
      .loss.backward();
  return logp.grad();
}

// d loss / d log π_θ for crpo_literal: log w̃ inside the clipped ratio.
torch::Tensor literal_gradient(const RebuiltGroup& g, const torch::Tensor& logp_value) {
  const torch::Tensor logp = logp_value.clone().requires_grad_(true);
  const torch::Tensor old = lens::calibrated_old_logprobs(g.old_roll, g.rows);
  const torch::Tensor weights = objective::truncated_importance_weights(g.old_roll, g.sampler, kCap);
  objective::grpo_loss(logp, old, g.advantage, weights, torch::Tensor(), g.mask, loss_options())
      .loss.backward();
  return logp.grad();
}

// The clean logp at θ_old (the padded token holds a finite stand-in for the forward's value).
torch::Tensor theta_old_logp(const RebuiltGroup& g) {
  torch::Tensor logp = g.old.clone();
  logp[7][1] = -3.0f;
  return logp;
}

double calibration(const RebuiltGroup& g, int64_t row) { return 1.0 / std::exp(g.rows.log_weight[size_t(row)]); }

TEST(CrpoGradient, TheRebuiltGroupIsWhatTheDerivationAssumes) {
  const RebuiltGroup g = rebuilt_group();
  EXPECT_DOUBLE_EQ(g.a_bar, 0.25);
  EXPECT_EQ(g.rows.roll_prompt[2], (std::vector<int64_t>{10, 12}));  // row 2 was transferred
  EXPECT_EQ(g.rows.reward, (std::vector<double>{1, 1, 1, 0, 0, 0, 0, 0}));
  EXPECT_NEAR(calibration(g, 0), 4.0, 1e-9);      // 1/ā
  EXPECT_NEAR(calibration(g, 2), 4.0 / 3.0, 1e-9);  // 1/(1 − ā)
  EXPECT_NEAR(calibration(g, 5), 4.0 / 3.0, 1e-9);
  EXPECT_GT(g.advantage[0].item<double>(), 0.0);
  EXPECT_LT(g.advantage[5].item<double>(), 0.0);
}

TEST(CrpoGradient, DefaultGivesEveryRowItsCalibratedGradientAtThetaOld) {
  const RebuiltGroup g = rebuilt_group();
  const torch::Tensor grad = crpo_gradient(g, theta_old_logp(g));
  const double tokens = g.mask.sum().item<double>();  // 15
  ASSERT_TRUE(torch::isfinite(grad).all().item<bool>());
  for (int64_t r = 0; r < kRows; ++r) {
    const double c = r == 2 ? std::exp(kShift) : 1.0;  // the behaviour correction, < C
    const double expected = -calibration(g, r) * c * g.advantage[r].item<double>() / tokens;
    for (int64_t t = 0; t < kTokens; ++t) {
      if (g.mask[r][t].item<double>() == 0) {
        EXPECT_EQ(grad[r][t].item<double>(), 0.0) << "padded token of row " << r;
        continue;
      }
      EXPECT_NEAR(grad[r][t].item<double>(), expected, 1e-6) << "row " << r << " token " << t;
    }
  }
  // Signs: descent raises successes (negative gradient), lowers failures.
  EXPECT_LT(grad[0][0].item<double>(), 0.0);
  EXPECT_LT(grad[2][0].item<double>(), 0.0);
  EXPECT_GT(grad[5][0].item<double>(), 0.0);
  // Relative sizes: an original success weighs (1/ā)/(e^0.3/(1 − ā)) = 3/e^0.3 ≈ 2.2 times a
  // transferred success, and 3 times a failure's calibration.
  EXPECT_NEAR(grad[0][0].item<double>() / grad[2][0].item<double>(), 3.0 / std::exp(kShift), 1e-5);
}

TEST(CrpoGradient, DefaultAfterAStepInsideTheTrustRegionStillTeachesEveryRow) {
  const RebuiltGroup g = rebuilt_group();
  // One descent step of the token log-probs, small enough that every q = π_θ/π_old stays in
  // [0.8, 1.2]: successes rise, failures fall.
  const torch::Tensor step0 = crpo_gradient(g, theta_old_logp(g));
  const torch::Tensor moved = theta_old_logp(g) - 0.1 / step0.abs().max() * step0;
  const torch::Tensor q = (moved - g.old).exp().masked_fill(g.mask == 0, 1.0);
  ASSERT_TRUE((q > 0.8).all().item<bool>() && (q < 1.2).all().item<bool>());
  ASSERT_GT(q[0][0].item<double>(), 1.0);
  ASSERT_LT(q[5][0].item<double>(), 1.0);
  const torch::Tensor grad = crpo_gradient(g, moved);
  const double tokens = g.mask.sum().item<double>();
  for (int64_t r = 0; r < kRows; ++r) {
    const double c = r == 2 ? std::exp(kShift) : 1.0;
    const double expected = -calibration(g, r) * c * q[r][0].item<double>() * g.advantage[r].item<double>() / tokens;
    EXPECT_NEAR(grad[r][0].item<double>(), expected, 1e-6) << "row " << r;
    EXPECT_NE(grad[r][0].item<double>(), 0.0) << "row " << r;
  }
  EXPECT_EQ(grad[7][1].item<double>(), 0.0);
  // Beyond the trust region the clip does its job: a success pushed past 1 + ε stops.
  torch::Tensor far = theta_old_logp(g);
  far[0][0] += 0.5f;  // q = e^0.5 > 1.2, A > 0
  EXPECT_EQ(crpo_gradient(g, far)[0][0].item<double>(), 0.0);
}

TEST(CrpoGradient, LiteralFormSilencesSuccessesAndPushesFailuresHarder) {
  const RebuiltGroup g = rebuilt_group();
  const torch::Tensor grad = literal_gradient(g, theta_old_logp(g));
  const double tokens = g.mask.sum().item<double>();
  // ρ = 1/w̃ = 4 on original successes and e^0.3/(3/4) ≈ 1.8 on the transferred one: both above
  // 1 + ε with A > 0, so the clipped branch is active and they get no gradient at all.
  for (const int64_t r : {0, 1, 2}) {
    for (int64_t t = 0; t < kTokens; ++t) EXPECT_EQ(grad[r][t].item<double>(), 0.0) << "row " << r;
  }
  // Failures: ρ = 4/3 with A < 0 is never clipped from above (and below c = 3): pushed down
  // 4/3 times harder than plain GRPO would.
  for (int64_t r = 3; r < kRows; ++r) {
    EXPECT_NEAR(grad[r][0].item<double>(), -(4.0 / 3.0) * g.advantage[r].item<double>() / tokens, 1e-6) << r;
    EXPECT_GT(grad[r][0].item<double>(), 0.0);
  }
  // After a descent step (which moves only the failures), the successes are still silenced.
  const torch::Tensor moved = theta_old_logp(g) - 0.1 / grad.abs().max() * grad;
  const torch::Tensor after = literal_gradient(g, moved);
  for (const int64_t r : {0, 1, 2}) EXPECT_EQ(after[r][0].item<double>(), 0.0) << "row " << r;
  EXPECT_GT(after[5][0].item<double>(), 0.0);
}

TEST(CrpoGradient, TruncatedImportanceWeightCapsARowTheSamplerAlmostNeverChose) {
  RebuiltGroup g = rebuilt_group();
  g.sampler[3][0] = g.old[3][0].item<float>() - 4.0f;  // π_old/π_rollout = e^4 ≈ 55 → capped at C = 5
  const torch::Tensor grad = crpo_gradient(g, theta_old_logp(g));
  const double tokens = g.mask.sum().item<double>();
  EXPECT_NEAR(grad[3][0].item<double>(), -calibration(g, 3) * kCap * g.advantage[3].item<double>() / tokens, 1e-6);
  EXPECT_NEAR(grad[3][1].item<double>(), -calibration(g, 3) * g.advantage[3].item<double>() / tokens, 1e-6);
}

TEST(CrpoGradient, DualClipStopsPushingDownAFailureWhoseRatioRanPastC) {
  const RebuiltGroup g = rebuilt_group();
  torch::Tensor logp = theta_old_logp(g);
  logp[4][0] += 1.5f;  // q = e^1.5 ≈ 4.5 > c = 3 on a failure (A < 0)
  logp[5][0] += 0.9f;  // q = e^0.9 ≈ 2.5 < c: still pushed down, unclipped
  const torch::Tensor grad = crpo_gradient(g, logp);
  const double tokens = g.mask.sum().item<double>();
  EXPECT_EQ(grad[4][0].item<double>(), 0.0);
  EXPECT_NEAR(grad[5][0].item<double>(),
              -calibration(g, 5) * std::exp(0.9) * g.advantage[5].item<double>() / tokens, 1e-5);
}

TEST(CrpoGradient, KeepFailureLeavesTheRebuiltGroupAFailure) {
  // 4 rollouts, 3 failures, 4 purified successes: without the cap all 3 would be replaced and
  // the group's advantages would all be 0.
  const std::vector<double> original = {1, 0, 0, 0};
  const lens::TransferPlan all = lens::plan_transfer(original, {1, 1, 1, 1}, 0.5, 0);
  EXPECT_EQ(all.replacements.size(), 3u);
  const lens::TransferPlan kept = lens::plan_transfer(original, {1, 1, 1, 1}, 0.5, 0, true);
  EXPECT_EQ(kept.replacements.size(), 2u);
  const lens::TransferPlan capped = lens::plan_transfer(original, {1, 1, 1, 1}, 0.5, 1, true);
  EXPECT_EQ(capped.replacements.size(), 1u);
  // A group with one failure left is not rebuilt at all (its transfer would empty it).
  EXPECT_TRUE(lens::plan_transfer({1, 1, 0, 1}, {1, 1, 1, 1}, 0.9, 0, true).replacements.empty());
  // What the cap prevents: an all-correct group has zero advantage everywhere.
  objective::GroupAdvantageOptions options;
  const torch::Tensor zero = objective::group_advantages(torch::ones({4}), torch::zeros({4}, torch::kLong), options);
  EXPECT_EQ(zero.abs().max().item<double>(), 0.0);
}

}  // namespace
