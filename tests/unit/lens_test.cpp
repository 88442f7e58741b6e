// LENS decisions on hand-built cases: interference scores, purification (the largest
// log-ratio goes, exactly ceil(γ·|x|) tokens go, order kept, ties and eligibility), transfer
// (only low-success prompts, only when purification helped, only failures replaced, capped)
// and the CRPO weights.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "gopd/lens/lens.h"

namespace {

using namespace gopd::lens;

TEST(LensPurification, RemovesTheLargestLogRatioAndKeepsOrder) {
  const std::vector<int64_t> ids = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  const std::vector<double> policy = {-9.0, -1.0, -2.0, -1.5, -3.0, -2.0, -0.1, -1.0, -2.5, -1.2};
  const std::vector<double> reference = {-1.0, -1.1, -2.2, -1.4, -3.1, -2.2, -4.1, -1.0, -2.4, -1.25};
  const std::vector<double> scores = interference_scores(policy, reference);
  ASSERT_EQ(scores.size(), ids.size());
  EXPECT_NEAR(scores[6], 4.0, 1e-12);
  EXPECT_NEAR(scores[0], 8.0, 1e-12);  // the first token: largest, but never eligible by default
  // γ = 0.05 of 9 eligible tokens → ceil(0.45) = 1 token: position 6.
  const Purification one = purify(ids, scores, 0.05);
  EXPECT_EQ(one.removed_positions, (std::vector<int64_t>{6}));
  EXPECT_EQ(one.kept_ids, (std::vector<int64_t>{10, 11, 12, 13, 14, 15, 17, 18, 19}));
  // γ = 0.25 → ceil(2.25) = 3 tokens: 6 (4.0), then 2 and 5 (0.2 each, a tie: both fit).
  const Purification three = purify(ids, scores, 0.25);
  EXPECT_EQ(three.removed_positions, (std::vector<int64_t>{2, 5, 6}));
  EXPECT_EQ(three.kept_ids, (std::vector<int64_t>{10, 11, 13, 14, 17, 18, 19}));
  // A tie at the cut: γ = 0.2 → ceil(1.8) = 2 tokens: 6, then the earlier of 2 and 5.
  EXPECT_EQ(purify(ids, scores, 0.2).removed_positions, (std::vector<int64_t>{2, 6}));
  EXPECT_TRUE(purify(ids, scores, 0.0).removed_positions.empty());
  // Eligibility: only positions 7..9 may go (e.g. the user's text inside a chat template).
  std::vector<bool> eligible(ids.size(), false);
  eligible[7] = eligible[8] = eligible[9] = true;
  const Purification masked = purify(ids, scores, 0.05, eligible);
  EXPECT_EQ(masked.removed_positions, (std::vector<int64_t>{8}));  // 0.1 beats 0.0 (7) and 0.05 (9)
  // The floor: position 7 scores exactly 0 (the policy has not moved there); with floor 0 and
  // γ = 1 every eligible token but 7 goes, and E still counts it.
  const Purification floored = purify(ids, scores, 1.0, {}, 0.0);
  EXPECT_EQ(floored.removed_positions, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 8, 9}));
  EXPECT_EQ(floored.kept_ids, (std::vector<int64_t>{10, 17}));
  // All scores zero (step 1: π_θ = π_ref): nothing is deleted.
  EXPECT_TRUE(purify(ids, std::vector<double>(ids.size(), 0.0), 0.5, {}, 0.0).removed_positions.empty());
  EXPECT_THROW(purify(ids, scores, 1.5), std::invalid_argument);
  EXPECT_THROW(interference_scores(policy, {1.0}), std::invalid_argument);
}

TEST(LensTransfer, OnlyLowSuccessPromptsOnlyWhenItHelpedOnlyFailures) {
  const double tau = 0.5;
  // High success (ā = 0.75 ≥ τ): not purified, nothing transferred.
  const TransferPlan high = plan_transfer({1, 1, 0, 1}, {1, 1, 1, 1}, tau, 0);
  EXPECT_FALSE(high.low_success);
  EXPECT_TRUE(high.replacements.empty());
  // Low success, purification did not help (0.25 → 0.25).
  const TransferPlan same = plan_transfer({0, 1, 0, 0}, {0, 0, 1, 0}, tau, 0);
  EXPECT_TRUE(same.low_success);
  EXPECT_FALSE(same.helped);
  EXPECT_TRUE(same.replacements.empty());
  // Low success, helped (0.25 → 0.75): the 3 purified successes replace failures 0, 2, 3.
  const TransferPlan helped = plan_transfer({0, 1, 0, 0}, {1, 0, 1, 1}, tau, 0);
  EXPECT_TRUE(helped.helped);
  EXPECT_DOUBLE_EQ(helped.success_before, 0.25);
  EXPECT_DOUBLE_EQ(helped.success_after, 0.75);
  const std::vector<std::pair<int64_t, int64_t>> expected = {{0, 0}, {2, 2}, {3, 3}};
  EXPECT_EQ(helped.replacements, expected);
  for (const auto& [slot, purified] : helped.replacements) EXPECT_NE(slot, 1);  // the success stays
  // max_replace caps it.
  EXPECT_EQ(plan_transfer({0, 1, 0, 0}, {1, 0, 1, 1}, tau, 2).replacements.size(), 2u);
  // More purified successes than failures: only the failures are replaced.
  EXPECT_EQ(plan_transfer({0, 1, 1, 0}, {1, 1, 1, 1}, 0.75, 0).replacements.size(), 2u);
}

TEST(LensCrpo, WeightsForOriginalSuccessesTransfersAndFailures) {
  const std::vector<double> original = {0, 1, 0, 0};
  // ā = 0.25; the purified rollouts do no better (0.25): no transfer; success 0.25, failures 0.75.
  const TransferPlan plan = plan_transfer(original, {1, 0, 0, 0}, 0.5, 0);
  EXPECT_EQ(crpo_weights(original, plan, false), (std::vector<double>{0.75, 0.25, 0.75, 0.75}));
  const TransferPlan moved = plan_transfer(original, {1, 1, 0, 0}, 0.5, 1);
  ASSERT_EQ(moved.replacements.size(), 1u);
  EXPECT_EQ(crpo_weights(original, moved, false), (std::vector<double>{0.75, 0.25, 0.75, 0.75}));
  EXPECT_EQ(crpo_weights(original, moved, true), (std::vector<double>{1, 1, 1, 1}));
  // ā = 0: no original successes; failures and the transferred success get 1 − 0 = 1.
  // ā = 1: successes get 1.
  const std::vector<double> none = {0, 0};
  const TransferPlan rescued = plan_transfer(none, {1, 0}, 0.5, 0);
  EXPECT_EQ(crpo_weights(none, rescued, false), (std::vector<double>{1.0, 1.0}));
  const std::vector<double> all = {1, 1};
  EXPECT_EQ(crpo_weights(all, plan_transfer(all, {1, 1}, 0.5, 0), false), (std::vector<double>{1.0, 1.0}));
}

}  // namespace
