// avg@K and the unbiased pass@k estimator against values computed by hand.
#include <gtest/gtest.h>

#include "gopd/eval/metrics.h"

namespace gopd::eval {
namespace {

TEST(PassAtK, MatchesTheCombinatorialDefinition) {
  // n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
  EXPECT_NEAR(pass_at_k(5, 2, 2), 0.7, 1e-12);
  EXPECT_NEAR(pass_at_k(5, 2, 1), 0.4, 1e-12);                  // pass@1 = c / n
  EXPECT_NEAR(pass_at_k(10, 3, 4), 1.0 - 35.0 / 210.0, 1e-12);  // C(7,4)/C(10,4)
  EXPECT_DOUBLE_EQ(pass_at_k(4, 0, 4), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(4, 1, 4), 1.0);
  EXPECT_DOUBLE_EQ(pass_at_k(6, 4, 3), 1.0);  // fewer than k wrong samples
  EXPECT_THROW(pass_at_k(3, 1, 4), std::invalid_argument);
}

TEST(PassAtK, SummaryAveragesOverPrompts) {
  const AccuracySummary summary = summarize_accuracy({0, 2, 4}, 4);
  EXPECT_NEAR(summary.avg_at_k, 6.0 / 12.0, 1e-12);
  ASSERT_EQ(summary.pass_at.size(), 3u);  // k = 1, 2, 4
  EXPECT_EQ(summary.pass_at[0].first, 1);
  EXPECT_NEAR(summary.pass_at[0].second, (0.0 + 0.5 + 1.0) / 3, 1e-12);
  EXPECT_EQ(summary.pass_at[1].first, 2);
  EXPECT_NEAR(summary.pass_at[1].second, (0.0 + (1.0 - 1.0 / 6.0) + 1.0) / 3, 1e-12);
  EXPECT_EQ(summary.pass_at[2].first, 4);
  EXPECT_NEAR(summary.pass_at[2].second, 2.0 / 3.0, 1e-12);
}

}  // namespace
}  // namespace gopd::eval
