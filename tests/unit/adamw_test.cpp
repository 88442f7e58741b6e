// kernels::adamw_step against torch::optim::AdamW, and its square root against the correctly
// rounded one, on awkward shapes (a 3×5 matrix, a 7-vector, a 1-vector, a parameter that has no
// gradient on some steps).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gopd/kernels/adamw.h"

namespace {

using gopd::kernels::adamw_step;
using gopd::kernels::correctly_rounded_sqrt;

std::vector<torch::Tensor> parameters() {
  torch::manual_seed(3);
  return {torch::randn({3, 5}).requires_grad_(), torch::randn({7}).requires_grad_(),
          torch::randn({1}).requires_grad_()};
}

// Gradients of mixed scale; the 7-vector has none on odd steps (AdamW leaves it alone then).
void set_gradients(std::vector<torch::Tensor>& params, int step) {
  torch::manual_seed(100 + step);
  for (size_t i = 0; i < params.size(); ++i) {
    if (i == 1 && step % 2 == 1) {
      params[i].mutable_grad() = torch::Tensor();
      continue;
    }
    params[i].mutable_grad() = torch::randn(params[i].sizes()) * (i == 0 ? 3.0 : 1e-3);
  }
}

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& p : params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

const torch::optim::AdamWParamState& state_of(torch::optim::AdamW& optimizer,
                                              const torch::Tensor& p) {
  return static_cast<const torch::optim::AdamWParamState&>(
      *optimizer.state().at(p.unsafeGetTensorImpl()));
}

// With ATen's sqrt the step is torch's bit for bit, weights and moments, for AdamW with weight
// decay, with AMSGrad, and without weight decay.
TEST(AdamW, WithAtensSqrtIsTorchsStepBitForBit) {
  for (const auto& options : {torch::optim::AdamWOptions(0.05).weight_decay(0.1),
                              torch::optim::AdamWOptions(0.01).weight_decay(0.1).amsgrad(true),
                              torch::optim::AdamWOptions(0.02).weight_decay(0.0).eps(1e-6)}) {
    std::vector<torch::Tensor> ours = parameters();
    std::vector<torch::Tensor> theirs = copies(ours);
    torch::optim::AdamW ours_optimizer(ours, options);
    torch::optim::AdamW theirs_optimizer(theirs, options);
    for (int step = 0; step < 5; ++step) {
      set_gradients(ours, step);
      set_gradients(theirs, step);
      adamw_step(ours_optimizer, /*reference_sqrt=*/true);
      theirs_optimizer.step();
    }
    for (size_t i = 0; i < ours.size(); ++i) {
      EXPECT_TRUE(torch::equal(ours[i], theirs[i])) << "parameter " << i;
      EXPECT_FALSE(torch::equal(ours[i], parameters()[i])) << "parameter " << i << " never moved";
      const auto& a = state_of(ours_optimizer, ours[i]);
      const auto& b = state_of(theirs_optimizer, theirs[i]);
      EXPECT_EQ(a.step(), b.step());
      EXPECT_EQ(a.step(), i == 1 ? 3 : 5);  // the 7-vector had gradients on steps 0, 2, 4
      EXPECT_TRUE(torch::equal(a.exp_avg(), b.exp_avg())) << i;
      EXPECT_TRUE(torch::equal(a.exp_avg_sq(), b.exp_avg_sq())) << i;
      if (options.amsgrad()) {
        EXPECT_TRUE(torch::equal(a.max_exp_avg_sq(), b.max_exp_avg_sq())) << i;
      }
    }
  }
}

// With the correctly rounded root each weight moves as with torch's step to within the last
// bits of the root, and torch's own step() continues from the state adamw_step left.
TEST(AdamW, CorrectlyRoundedStepIsTorchsToTheLastBitsAndTorchContinuesIt) {
  const auto options = torch::optim::AdamWOptions(0.05).weight_decay(0.1);
  std::vector<torch::Tensor> ours = parameters();
  std::vector<torch::Tensor> theirs = copies(ours);
  const std::vector<torch::Tensor> start = copies(ours);
  torch::optim::AdamW ours_optimizer(ours, options);
  torch::optim::AdamW theirs_optimizer(theirs, options);
  for (int step = 0; step < 6; ++step) {
    set_gradients(ours, step);
    set_gradients(theirs, step);
    if (step < 4) {
      adamw_step(ours_optimizer);
    } else {
      ours_optimizer.step();
    }
    theirs_optimizer.step();
  }
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_GT((theirs[i] - start[i]).abs().min().item<double>(), 1e-4) << i;  // each weight moved
    EXPECT_LE((ours[i] - theirs[i]).abs().max().item<double>(), 1e-6) << i;
    EXPECT_EQ(state_of(ours_optimizer, ours[i]).step(),
              state_of(theirs_optimizer, theirs[i]).step());
  }
}

// A parameter without a gradient is left alone: no state, no weight decay. One with a unit
// gradient from zero moments moves by -lr (m̂ = v̂ = 1 after bias correction) after the decay.
TEST(AdamW, FirstStepSizeAndParametersWithoutGradient) {
  std::vector<torch::Tensor> params = parameters();
  const std::vector<torch::Tensor> start = copies(params);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(0.05).weight_decay(0.5));
  params[0].mutable_grad() = torch::ones({3, 5});
  adamw_step(optimizer);
  EXPECT_TRUE(torch::equal(params[1], start[1]));
  EXPECT_TRUE(torch::equal(params[2], start[2]));
  EXPECT_EQ(optimizer.state().count(params[1].unsafeGetTensorImpl()), 0u);
  const torch::Tensor want = start[0].detach() * (1 - 0.05 * 0.5) - 0.05 / (1 + 1e-8);
  EXPECT_TRUE(torch::allclose(params[0].detach(), want, 0, 1e-6));
}

// How many of `got` are not the root of `x` rounded to x's type (via fp32 for bf16).
int64_t wrong_roots(const torch::Tensor& x, const torch::Tensor& got) {
  const torch::Tensor in = x.to(torch::kFloat64).contiguous();
  const torch::Tensor out = got.to(torch::kFloat64).contiguous();
  int64_t wrong = 0;
  for (int64_t i = 0; i < in.numel(); ++i) {
    const double root = std::sqrt(in.data_ptr<double>()[i]);
    const double want = x.scalar_type() == torch::kFloat64
                            ? root
                            : torch::tensor(root, torch::kFloat64)
                                  .to(torch::kFloat32)  // a bf16 root is fp32's, rounded
                                  .to(x.scalar_type())
                                  .to(torch::kFloat64)
                                  .item<double>();
    const double have = out.data_ptr<double>()[i];
    const bool same = std::isnan(want) ? std::isnan(have) : have == want;
    if (!same || (!std::isnan(want) && std::signbit(have) != std::signbit(want))) ++wrong;
  }
  return wrong;
}

// The root of every value is the correctly rounded one: normals across the exponent range,
// subnormals, ±0, inf, the largest float, NaN, a negative (NaN); in fp32, fp64, bf16 (rooted
// in fp32 and rounded back, as ATen does) and on a strided view.
TEST(CorrectlyRoundedSqrt, IsTheRoundedRootOfEveryValue) {
  torch::manual_seed(5);
  const torch::Tensor spread = (torch::randn({4099}) * torch::exp(torch::randn({4099}) * 20)).abs();
  const torch::Tensor specials =
      torch::tensor({0.0f, -0.0f, std::numeric_limits<float>::denorm_min(), 1e-40f,
                     std::numeric_limits<float>::min(), std::numeric_limits<float>::max(),
                     std::numeric_limits<float>::infinity(), -1.0f,
                     std::numeric_limits<float>::quiet_NaN(), 2.0f, 4.0f});
  const torch::Tensor x = torch::cat({spread, specials});
  const torch::Tensor got = correctly_rounded_sqrt(x);
  ASSERT_EQ(got.scalar_type(), torch::kFloat32);
  ASSERT_EQ(got.sizes(), x.sizes());
  EXPECT_EQ(wrong_roots(x, got), 0);
  EXPECT_EQ(got[-1].item<float>(), 2.0f);
  EXPECT_TRUE(std::isnan(got[-4].item<float>()));  // sqrt(-1)

  const torch::Tensor wide = x.to(torch::kFloat64) * 1.0000000001;
  const torch::Tensor wide_root = correctly_rounded_sqrt(wide);
  ASSERT_EQ(wide_root.scalar_type(), torch::kFloat64);
  EXPECT_EQ(wrong_roots(wide, wide_root), 0);

  const torch::Tensor narrow = spread.to(torch::kBFloat16);
  const torch::Tensor narrow_root = correctly_rounded_sqrt(narrow);
  ASSERT_EQ(narrow_root.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(wrong_roots(narrow, narrow_root), 0);

  const torch::Tensor strided = spread.view({-1, 1}).expand({4099, 3}).t();  // (3, 4099)
  const torch::Tensor strided_root = correctly_rounded_sqrt(strided);
  ASSERT_EQ(strided_root.sizes(), strided.sizes());
  EXPECT_EQ(wrong_roots(strided, strided_root), 0);
}

}  // namespace
