// The update without the loop or a model: a fake loss over one weight vector. Gradient
// accumulation over micro-batches gives the gradient and the step of one big batch (token and
// sequence aggregations, an empty row included); epochs × mini-batches make that many
// optimizer steps over contiguous row slices; a non-finite loss skips the step (weights
// untouched) and stops the run after train.max_nonfinite_steps in a row.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gopd/core/error.h"
#include "gopd/train/update.h"

namespace {

using namespace gopd;

// Five rows of up to three tokens; row 3 is empty.
const torch::Tensor kMask = torch::tensor(
    {{1.f, 1.f, 1.f}, {1.f, 0.f, 0.f}, {1.f, 1.f, 0.f}, {0.f, 0.f, 0.f}, {1.f, 1.f, 1.f}});
const torch::Tensor kX = torch::arange(45, torch::kFloat).view({5, 3, 3}).sin();  // (B, T, 3)

core::OptimConfig optim() {
  core::OptimConfig o;
  o.lr = 0.1;
  o.weight_decay = 0.0;
  o.grad_clip = 0.0;
  return o;
}

// loss of rows [begin, end) = its own aggregate of (w · x_t − 1)² over its tokens.
struct FakeLoss {
  torch::Tensor w;
  objective::LossAgg agg;
  std::vector<std::pair<int64_t, int64_t>> calls;
  bool poison = false;
  objective::LossOutput operator()(int64_t begin, int64_t end) {
    calls.push_back({begin, end});
    const torch::Tensor mask = kMask.slice(0, begin, end);
    const torch::Tensor values =
        ((kX.slice(0, begin, end) * w).sum(-1) - 1.0).square() * mask;  // (b, T)
    torch::Tensor loss;
    if (agg == objective::LossAgg::token_mean) {
      loss = values.sum() / mask.sum().clamp_min(1.0);
    } else {
      const torch::Tensor rows = mask.sum(1);
      loss = ((values.sum(1) / rows.clamp_min(1.0)) * (rows > 0)).sum() /
             (rows > 0).sum().clamp_min(1);
    }
    if (poison) loss = loss * std::numeric_limits<float>::quiet_NaN();
    return {loss, {{"loss/fake", loss.detach()}}};
  }
};

struct Outcome {
  torch::Tensor weights, gradient;
  nlohmann::json line;
};

Outcome run(objective::LossAgg agg, int64_t micro, int64_t epochs = 1, int64_t mini_batches = 1,
            std::vector<std::pair<int64_t, int64_t>>* calls = nullptr) {
  const core::OptimConfig o = optim();
  FakeLoss loss{torch::tensor({0.3f, -0.2f, 0.1f}).requires_grad_(), agg, {}, false};
  train::Updater updater({loss.w}, o, 10, 3, agg);
  train::UpdateShape shape{epochs, mini_batches, micro, {}};
  Outcome out;
  updater.update(
      0, kMask, shape, [&loss](int64_t b, int64_t e) { return loss(b, e); }, out.line);
  out.weights = loss.w.detach().clone();
  out.gradient = loss.w.grad().clone();
  if (calls != nullptr) *calls = loss.calls;
  return out;
}

TEST(Update, MicroBatchesAccumulateTheGradientOfOneBigBatch) {
  for (const auto agg : {objective::LossAgg::token_mean, objective::LossAgg::seq_mean_token_mean}) {
    const Outcome whole = run(agg, 5);
    ASSERT_GT(whole.gradient.abs().sum().item<double>(), 1e-3);
    for (const int64_t micro : {1, 2, 3}) {
      const Outcome parts = run(agg, micro);
      EXPECT_TRUE(torch::allclose(parts.gradient, whole.gradient, 1e-5, 1e-6)) << "micro " << micro;
      EXPECT_TRUE(torch::allclose(parts.weights, whole.weights, 1e-5, 1e-6)) << "micro " << micro;
      EXPECT_NEAR(parts.line["loss/fake"].get<double>(), whole.line["loss/fake"].get<double>(),
                  1e-5);
    }
  }
}

TEST(Update, EpochsTimesMiniBatchesStepOverContiguousSlices) {
  std::vector<std::pair<int64_t, int64_t>> calls;
  const Outcome r = run(objective::LossAgg::token_mean, 2, 2, 2, &calls);
  EXPECT_EQ(r.line["optim/updates"], 4);
  EXPECT_FALSE(r.line.contains("optim/skipped"));
  // Mini-batches [0, 2) and [2, 5), micro-batches of 2, twice.
  const std::vector<std::pair<int64_t, int64_t>> epoch = {{0, 2}, {2, 4}, {4, 5}};
  std::vector<std::pair<int64_t, int64_t>> expected = epoch;
  expected.insert(expected.end(), epoch.begin(), epoch.end());
  EXPECT_EQ(calls, expected);
  EXPECT_DOUBLE_EQ(r.line["optim/lr"].get<double>(), 0.1);
  const core::OptimConfig o = optim();
  EXPECT_EQ(train::update_shape(o, 5, 40).epochs, 1);
  core::OptimConfig many = o;
  many.mini_batches = 9;
  many.micro_batch_size = 0;
  EXPECT_EQ(train::update_shape(many, 5, 40).mini_batches, 5);  // never more mini-batches than rows
  EXPECT_EQ(train::update_shape(many, 5, 40).micro, 5);  // 0 = all rows at once
  // A token budget: as many rows of the batch's padded width as fit, at least one.
  core::OptimConfig budget = o;
  budget.micro_batch_tokens = 100;
  EXPECT_EQ(train::micro_rows(budget, 5, 40), 2);
  EXPECT_EQ(train::micro_rows(budget, 5, 33), 3);
  EXPECT_EQ(train::micro_rows(budget, 5, 101), 1);
  EXPECT_EQ(train::update_shape(budget, 5, 25).micro, 4);
}

TEST(Update, NonFiniteLossSkipsTheStepAndStopsAfterTooManyInARow) {
  const core::OptimConfig o = optim();
  FakeLoss loss{torch::tensor({0.3f, -0.2f, 0.1f}).requires_grad_(),
                objective::LossAgg::token_mean,
                {},
                false};
  train::Updater updater({loss.w}, o, 10, 2, objective::LossAgg::token_mean);
  const train::UpdateShape shape{1, 1, 5, {}};
  const auto call = [&loss](int64_t b, int64_t e) { return loss(b, e); };
  const torch::Tensor start = loss.w.detach().clone();
  loss.poison = true;
  nlohmann::json line;
  updater.update(0, kMask, shape, call, line);
  EXPECT_TRUE(torch::equal(loss.w.detach(), start));
  EXPECT_EQ(line["optim/updates"], 0);
  EXPECT_EQ(line["optim/skipped"], 1);
  EXPECT_EQ(updater.counters().skipped, 1);
  EXPECT_EQ(updater.counters().nonfinite_in_a_row, 1);
  loss.poison = false;  // a good step resets the run of bad ones
  updater.update(1, kMask, shape, call, line);
  EXPECT_FALSE(torch::equal(loss.w.detach(), start));
  EXPECT_EQ(updater.counters().applied, 1);
  EXPECT_EQ(updater.counters().nonfinite_in_a_row, 0);
  loss.poison = true;
  updater.update(2, kMask, shape, call, line);
  EXPECT_THROW(updater.update(3, kMask, shape, call, line), core::Error);  // the second in a row
}

}  // namespace
