// The trainer's GRPO/LENS bookkeeping: a transfer replaces only the planned failures of its
// group, keeps the original prompt as what is trained on and the purified prompt as x_roll
// (with the sampler's log-probs under it), sets log w̃ on the rebuilt group only; for
// crpo_literal π_old is computed on the x_roll sequences and calibrated by w̃, so the ratio is
// π_θ(y | x) / (w̃ · π_old(y | x_roll)). The loss these rows get: crpo_gradient_test.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "gopd/lens/lens.h"
#include "gopd/lens/rows.h"

namespace {

using namespace gopd;

TEST(PairSequences, LeftPadsPromptsRightPadsResponses) {
  const scoring::TrainingSequences s = scoring::pair_sequences({{5, 6, 7}, {8}}, {{1}, {2, 3}}, 0);
  EXPECT_EQ(s.prompt_length, 3);
  EXPECT_TRUE(torch::equal(s.input_ids, torch::tensor({5, 6, 7, 1, 0, 0, 0, 8, 2, 3}, torch::kLong).view({2, 5})));
  EXPECT_TRUE(torch::equal(s.attention_mask, torch::tensor({1, 1, 1, 1, 0, 0, 0, 1, 1, 1}, torch::kLong).view({2, 5})));
  EXPECT_TRUE(torch::equal(s.targets, torch::tensor({1, 0, 2, 3}, torch::kLong).view({2, 2})));
  EXPECT_TRUE(torch::equal(s.mask, torch::tensor({1.0f, 0.0f, 1.0f, 1.0f}).view({2, 2})));
}

// Two groups of n = 3: group 0 = prompt {10, 11, 12}, group 1 = prompt {20, 21}.
lens::RlvrRows two_groups() {
  lens::RlvrRows rows;
  rows.prompt = {{10, 11, 12}, {10, 11, 12}, {10, 11, 12}, {20, 21}, {20, 21}, {20, 21}};
  rows.response = {{1}, {2, 2}, {3}, {4}, {5}, {6}};
  rows.roll_prompt = rows.prompt;
  rows.reward = {1, 0, 0, 0, 0, 0};
  rows.correct = rows.reward;
  rows.log_weight.assign(6, 0.0);
  for (const auto& response : rows.response) rows.rollout_logprobs.emplace_back(response.size(), -0.5f);
  return rows;
}

TEST(LensTransferRows, ReplacesOnlyPlannedFailuresAndKeepsTheOriginalPrompt) {
  lens::RlvrRows rows = two_groups();
  // Group 0: ā = 1/3 < τ = 0.5; the purified prompt {10, 12} succeeds twice (rollouts 0 and 2).
  const std::vector<double> original = {1, 0, 0};
  const std::vector<double> purified_correct = {1, 0, 1};
  const lens::TransferPlan plan = lens::plan_transfer(original, purified_correct, 0.5, 0);
  ASSERT_EQ(plan.replacements.size(), 2u);
  lens::PurifiedGroup purified;
  purified.prompt = {10, 12};
  purified.responses = {{7, 7, 7}, {8}, {9}};
  purified.reward = {1.1, 0.1, 1.0};
  purified.correct = purified_correct;
  purified.rollout_logprobs = {{-0.1f, -0.2f, -0.3f}, {-0.4f}, {-0.9f}};
  const std::vector<double> weights = lens::crpo_weights(original, plan, false);
  EXPECT_EQ(lens::apply_transfer(rows, 0, 3, plan, weights, purified), 2);
  // Row 0 (an original success) is untouched; rows 1 and 2 (failures) got purified successes.
  EXPECT_EQ(rows.response[0], (std::vector<int64_t>{1}));
  EXPECT_EQ(rows.response[1], (std::vector<int64_t>{7, 7, 7}));
  EXPECT_EQ(rows.response[2], (std::vector<int64_t>{9}));
  EXPECT_EQ(rows.reward[1], 1.1);
  EXPECT_EQ(rows.correct[2], 1.0);
  EXPECT_EQ(rows.rollout_logprobs[1], (std::vector<float>{-0.1f, -0.2f, -0.3f}));  // sampled under x'
  EXPECT_EQ(rows.rollout_logprobs[2], (std::vector<float>{-0.9f}));
  EXPECT_EQ(rows.rollout_logprobs[0], (std::vector<float>{-0.5f}));
  for (int r = 0; r < 3; ++r) EXPECT_EQ(rows.prompt[size_t(r)], (std::vector<int64_t>{10, 11, 12})) << r;
  EXPECT_EQ(rows.roll_prompt[0], (std::vector<int64_t>{10, 11, 12}));
  EXPECT_EQ(rows.roll_prompt[1], (std::vector<int64_t>{10, 12}));
  EXPECT_EQ(rows.roll_prompt[2], (std::vector<int64_t>{10, 12}));
  // w̃ = ā = 1/3 for the original success, 1 − ā for the transferred rows; group 1 untouched.
  EXPECT_NEAR(rows.log_weight[0], std::log(1.0 / 3.0), 1e-12);
  EXPECT_NEAR(rows.log_weight[1], std::log(2.0 / 3.0), 1e-12);
  EXPECT_NEAR(rows.log_weight[2], std::log(2.0 / 3.0), 1e-12);
  for (int r = 3; r < 6; ++r) {
    EXPECT_EQ(rows.log_weight[size_t(r)], 0.0);
    EXPECT_EQ(rows.roll_prompt[size_t(r)], rows.prompt[size_t(r)]);
  }
  // Nothing planned (purification did not help): nothing changes.
  const lens::RlvrRows before = rows;
  const lens::TransferPlan no_help = lens::plan_transfer({0, 0, 0}, {0, 0, 0}, 0.5, 0);
  EXPECT_EQ(lens::apply_transfer(rows, 1, 3, no_help, {1, 1, 1}, purified), 0);
  EXPECT_EQ(rows.response, before.response);
  EXPECT_EQ(rows.log_weight, before.log_weight);
}

TEST(LensTransferRows, OldLogprobsComeFromTheRolloutPromptAndAreCalibrated) {
  lens::RlvrRows rows = two_groups();
  lens::PurifiedGroup purified;
  purified.prompt = {10, 12};
  purified.responses = {{7, 7}, {8}, {9}};
  purified.reward = {1, 1, 1};
  purified.correct = {1, 1, 1};
  purified.rollout_logprobs = {{-0.1f, -0.2f}, {-0.4f}, {-0.9f}};
  const std::vector<double> original = {1, 0, 0};
  const lens::TransferPlan plan = lens::plan_transfer(original, purified.correct, 0.5, 1);  // max_replace 1
  ASSERT_EQ(plan.replacements.size(), 1u);
  lens::apply_transfer(rows, 0, 3, plan, lens::crpo_weights(original, plan, false), purified);
  const scoring::TrainingSequences trained = lens::training_sequences(rows, 0);
  const scoring::TrainingSequences rolled = lens::rollout_sequences(rows, 0);
  // Same responses (targets and mask) in both; row 1's prompt differs: original vs purified.
  EXPECT_TRUE(torch::equal(trained.targets, rolled.targets));
  EXPECT_TRUE(torch::equal(trained.mask, rolled.mask));
  EXPECT_TRUE(torch::equal(trained.input_ids[1].narrow(0, 0, 3), torch::tensor({10, 11, 12}, torch::kLong)));
  EXPECT_TRUE(torch::equal(rolled.input_ids[1].narrow(0, 0, 3), torch::tensor({0, 10, 12}, torch::kLong)));
  EXPECT_EQ(rolled.attention_mask[1][0].item<int64_t>(), 0);  // the shorter prompt is left-padded
  EXPECT_TRUE(torch::equal(trained.input_ids[2], rolled.input_ids[2]));  // not transferred
  // Calibration: old + log w̃ on every token of the row.
  const torch::Tensor old = torch::full({6, 2}, -1.0f);
  const torch::Tensor calibrated = lens::calibrated_old_logprobs(old, rows);
  EXPECT_NEAR(calibrated[0][0].item<double>(), -1.0 + std::log(1.0 / 3.0), 1e-6);
  EXPECT_NEAR(calibrated[1][1].item<double>(), -1.0 + std::log(2.0 / 3.0), 1e-6);
  EXPECT_NEAR(calibrated[4][0].item<double>(), -1.0, 1e-7);
  // The default crpo's row weights 1/w̃, and the sampler's log-probs padded to the batch.
  const torch::Tensor weights = lens::calibration_weights(rows);
  EXPECT_NEAR(weights[0].item<double>(), 3.0, 1e-6);
  EXPECT_NEAR(weights[1].item<double>(), 1.5, 1e-6);
  EXPECT_NEAR(weights[4].item<double>(), 1.0, 1e-7);
  const torch::Tensor sampler = lens::rollout_logprobs(rows, 2);
  EXPECT_TRUE(torch::allclose(sampler[1], torch::tensor({-0.1f, -0.2f})));
  EXPECT_TRUE(torch::allclose(sampler[0], torch::tensor({-0.5f, 0.0f})));
}

}  // namespace
