// GRPO objective against hand-computed values: group advantages (with and without the std
// division, singleton groups), the clipped surrogate with separate low/high clip (values and
// which tokens get gradient), the k3 KL penalty, and the group outcome metrics.
#include <gtest/gtest.h>

#include <cmath>

#include "gopd/objective/grpo_loss.h"

namespace {

using namespace gopd::objective;

TEST(GrpoAdvantages, HandComputedValues) {
  const torch::Tensor rewards = torch::tensor({1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.5});
  const torch::Tensor groups = torch::tensor({7, 7, 7, 7, 3, 3, 3, 3, 9, 9, 4}, torch::kLong);
  GroupAdvantageOptions options;
  const torch::Tensor a = group_advantages(rewards, groups, options);
  // group 7: mean 0.5, unbiased std sqrt(1/3); group 3: all equal → 0; group 9: mean 0.5,
  // std sqrt(1/2); group 4 (one rollout) → 0.
  const double s7 = 0.5 / (std::sqrt(1.0 / 3.0) + 1e-6);
  const double s9 = 0.5 / (std::sqrt(0.5) + 1e-6);
  const std::vector<double> expected = {s7, -s7, -s7, s7, 0, 0, 0, 0, -s9, s9, 0};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(a[int64_t(i)].item<double>(), expected[i], 1e-6) << i;
  options.std_normalize = false;  // Dr. GRPO
  const torch::Tensor b = group_advantages(rewards, groups, options);
  const std::vector<double> centred = {0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0, -0.5, 0.5, 0};
  for (size_t i = 0; i < centred.size(); ++i) EXPECT_NEAR(b[int64_t(i)].item<double>(), centred[i], 1e-7) << i;
  EXPECT_THROW(group_advantages(rewards, groups.narrow(0, 0, 3), options), std::invalid_argument);
}

// One token per row: ρ = p / p_old, A per row.
struct ClipCase {
  double p, p_old, advantage;
  double loss;         // expected per-token loss
  bool has_gradient;   // false where the clipped branch is active
};

TEST(GrpoLoss, ClippedSurrogateWithSeparateLowAndHighClip) {
  GrpoLossOptions options;
  options.policy.clipped = true;
  options.policy.clip_low = 0.2;
  options.policy.clip_high = 0.28;
  const std::vector<ClipCase> cases = {
      {0.8, 0.5, 1.0, -1.28, false},   // ρ 1.6 > 1.28, A > 0: clipped at 1 + ε_high
      {0.625, 0.5, 1.0, -1.25, true},  // ρ 1.25 inside [0.8, 1.28]
      {0.8, 0.5, -1.0, 1.6, true},     // ρ 1.6, A < 0: the pessimistic min is the unclipped −ρ·A
      {0.35, 0.5, -1.0, 0.8, false},   // ρ 0.7 < 0.8, A < 0: clipped at 1 − ε_low
      {0.35, 0.5, 1.0, -0.7, true},    // ρ 0.7, A > 0: unclipped
  };
  const int64_t rows = int64_t(cases.size());
  std::vector<double> p, p_old, adv;
  for (const ClipCase& c : cases) {
    p.push_back(std::log(c.p));
    p_old.push_back(std::log(c.p_old));
    adv.push_back(c.advantage);
  }
  const torch::Tensor logp = torch::tensor(p).to(torch::kFloat).reshape({rows, 1}).requires_grad_(true);
  const torch::Tensor old = torch::tensor(p_old).to(torch::kFloat).reshape({rows, 1});
  const torch::Tensor mask = torch::ones({rows, 1});
  options.policy.agg = LossAgg::seq_mean_token_sum;  // loss = mean over rows of the token loss
  const LossOutput out = grpo_loss(logp, old, torch::tensor(adv).to(torch::kFloat), torch::Tensor(),
                                   torch::Tensor(), mask, options);
  double expected = 0;
  for (const ClipCase& c : cases) expected += c.loss / double(rows);
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-5);
  out.loss.backward();
  for (int64_t r = 0; r < rows; ++r) {
    const double g = logp.grad()[r][0].item<double>();
    if (cases[size_t(r)].has_gradient) {
      // d/dlogp of −ρ·A/rows = −ρ·A/rows
      const double rho = cases[size_t(r)].p / cases[size_t(r)].p_old;
      EXPECT_NEAR(g, -rho * cases[size_t(r)].advantage / double(rows), 1e-5) << r;
    } else {
      EXPECT_EQ(g, 0.0) << r;
    }
  }
  EXPECT_NEAR(out.metrics.at("actor/clip_fraction").item<double>(), 2.0 / 5.0, 1e-6);
}

TEST(GrpoLoss, K3KlPenalty) {
  // lp = log 0.5, lr = log 0.25: k3 = 0.5 − log 0.5 − 1 = log 2 − 0.5.
  const torch::Tensor logp = torch::full({1, 2}, std::log(0.5)).requires_grad_(true);
  const torch::Tensor reference = torch::tensor({{std::log(0.25), 1e30}}).to(torch::kFloat);  // pos 1 masked garbage
  const torch::Tensor mask = torch::tensor({{1.0, 0.0}});
  GrpoLossOptions options;
  options.kl_beta = 0.1;
  const LossOutput out = grpo_loss(logp, logp.detach(), torch::zeros({1}), torch::Tensor(), reference, mask, options);
  const double k3 = std::log(2.0) - 0.5;
  EXPECT_NEAR(out.metrics.at("actor/kl").item<double>(), k3, 1e-6);
  EXPECT_NEAR(out.loss.item<double>(), 0.1 * k3, 1e-6);  // A = 0: only the penalty
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
  out.loss.backward();
  // d k3 / d lp = 1 − exp(lr − lp) = 1 − 0.5
  EXPECT_NEAR(logp.grad()[0][0].item<double>(), 0.1 * 0.5, 1e-6);
  EXPECT_EQ(logp.grad()[0][1].item<double>(), 0.0);
  options.kl_beta = 0.1;
  EXPECT_THROW(grpo_loss(logp, logp.detach(), torch::zeros({1}), torch::Tensor(), torch::Tensor(), mask, options),
               std::invalid_argument);
}

TEST(GrpoLoss, K3OverSeveralTokensWithVerlsClamps) {
  // Three tokens of one row: δ = lr − lp = 1 (k3 = e − 2, d/dlp = 1 − e), δ = 30 (clamped to 20,
  // then the estimate at 10: no gradient), δ = −0.5 (k3 = e^−0.5 − 0.5, d/dlp = 1 − e^−0.5);
  // a padded fourth token holds garbage.
  const torch::Tensor logp = torch::tensor({{-2.0, -40.0, -1.0, 0.0}}).to(torch::kFloat).requires_grad_(true);
  const torch::Tensor reference = torch::tensor({{-1.0, -10.0, -1.5, 1e30}}).to(torch::kFloat);
  const torch::Tensor mask = torch::tensor({{1.0, 1.0, 1.0, 0.0}});
  GrpoLossOptions options;
  options.kl_beta = 1.0;
  options.policy.agg = LossAgg::token_mean;
  const LossOutput out = grpo_loss(logp, logp.detach(), torch::zeros({1}), torch::Tensor(), reference, mask, options);
  const double k3_1 = std::exp(1.0) - 2.0;
  const double k3_3 = std::exp(-0.5) - 0.5;
  EXPECT_NEAR(out.metrics.at("actor/kl").item<double>(), (k3_1 + 10.0 + k3_3) / 3.0, 1e-5);
  EXPECT_NEAR(out.loss.item<double>(), (k3_1 + 10.0 + k3_3) / 3.0, 1e-5);
  out.loss.backward();
  EXPECT_NEAR(logp.grad()[0][0].item<double>(), (1.0 - std::exp(1.0)) / 3.0, 1e-6);
  EXPECT_EQ(logp.grad()[0][1].item<double>(), 0.0);
  EXPECT_NEAR(logp.grad()[0][2].item<double>(), (1.0 - std::exp(-0.5)) / 3.0, 1e-6);
  EXPECT_EQ(logp.grad()[0][3].item<double>(), 0.0);
}

TEST(GrpoLoss, WeightedPaddedMultiTokenRows) {
  // Two rows of a group (A = ±1/√2·…): row 0 has 3 tokens with importance weights 1, 2, 0.5;
  // row 1 has 1 token and 2 padded positions holding garbage. token_mean over 4 tokens at ρ = 1:
  // d loss / d lp_t = −w_t · A_row / 4.
  const torch::Tensor logp = torch::tensor({{-1.0, -2.0, -0.5}, {-1.0, double(NAN), -double(INFINITY)}}).to(torch::kFloat).requires_grad_(true);
  const torch::Tensor old = torch::tensor({{-1.0, -2.0, -0.5}, {-1.0, 0.0, 0.0}}).to(torch::kFloat);
  const torch::Tensor weights = torch::tensor({{1.0, 2.0, 0.5}, {1.0, double(NAN), 7.0}}).to(torch::kFloat);
  const torch::Tensor mask = torch::tensor({{1.0, 1.0, 1.0}, {1.0, 0.0, 0.0}});
  const torch::Tensor advantages =
      group_advantages(torch::tensor({1.0, 0.0}), torch::zeros({2}, torch::kLong), GroupAdvantageOptions{});
  GrpoLossOptions options;
  options.policy.clipped = true;
  const LossOutput out = grpo_loss(logp, old, advantages, weights, torch::Tensor(), mask, options);
  ASSERT_TRUE(std::isfinite(out.loss.item<double>()));
  out.loss.backward();
  const double a = advantages[0].item<double>();
  EXPECT_GT(a, 0.0);
  EXPECT_NEAR(advantages[1].item<double>(), -a, 1e-6);
  const std::vector<double> w = {1.0, 2.0, 0.5};
  for (int64_t t = 0; t < 3; ++t) EXPECT_NEAR(logp.grad()[0][t].item<double>(), -w[size_t(t)] * a / 4.0, 1e-6) << t;
  EXPECT_NEAR(logp.grad()[1][0].item<double>(), a / 4.0, 1e-6);
  EXPECT_EQ(logp.grad()[1][1].item<double>(), 0.0);
  EXPECT_EQ(logp.grad()[1][2].item<double>(), 0.0);
  EXPECT_NEAR(out.metrics.at("actor/importance_weight_max").item<double>(), 2.0, 1e-6);
}

TEST(GrpoMetrics, GroupOutcomes) {
  const torch::Tensor rewards = torch::tensor({1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0});
  const torch::Tensor groups = torch::tensor({0, 0, 1, 1, 2, 2, 3, 3}, torch::kLong);
  const auto m = group_outcome_metrics(rewards, groups);
  EXPECT_DOUBLE_EQ(m.at("reward/mean"), 4.0 / 8.0);
  EXPECT_DOUBLE_EQ(m.at("reward/accuracy"), 4.0 / 8.0);
  EXPECT_DOUBLE_EQ(m.at("grpo/zero_reward_prompt_fraction"), 1.0 / 4.0);
  EXPECT_DOUBLE_EQ(m.at("grpo/all_correct_prompt_fraction"), 1.0 / 4.0);
}

}  // namespace
