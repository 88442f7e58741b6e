// Fused vs reference parity of the token-level ops (values and gradients), on awkward shapes,
// both dtypes, the λ / temperature grid of the G-OPD experiments, with and without a reference,
// with −inf masks; finite-difference gradient checks in fp64; the reference itself checked
// against independent closed forms.
//
// The reference path is run in fp64 on the same input numbers (bf16 and fp32 inputs are exact
// in fp64): that is the truth every fused result is compared with.
//   values     |fused − truth| ≤ 1e-5 · max(|truth|, 1)   (fp32 and bf16 inputs alike: both
//              accumulate in fp32)
//   gradients  fp32: max |fused − truth| ≤ 3e-5 · max |truth|; bf16 (returned in bf16):
//              max |fused − truth| ≤ 2^-7 · max |truth| (one bf16 rounding step)
// Why not 1e-5 on fp32 gradients: every term of the KL gradient carries p_v's fp32 rounding
// (≈ 1e-7 relative) times |log p_v − log q_v| (tens of nats at T = 0.7, λ = 2), so any fp32
// evaluation lands ~1e-5..5e-5 from the truth. Measured at (64, 32000): fused ≤ 2.3e-5, the
// same reference path in fp32 ≤ 4.8e-5; at (5, 151936) the fp32 reference's KL values are
// 3e-5 from the truth while the fused ones stay within 1e-5 — comparing against the fp32
// reference would test the reference's rounding, not the kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "gopd/kernels/ops.h"

namespace gopd::kernels {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Shape {
  int64_t n;
  int64_t v;
};

const std::vector<Shape> kShapes = {{1, 1}, {3, 7}, {47, 123}, {64, 32000}, {5, 151936}};
const std::vector<double> kLambdas = {0.0, 0.5, 1.0, 1.25, 2.0};
const std::vector<double> kTemperatures = {1.0, 0.7};

torch::Tensor random_logits(Shape shape, uint64_t seed, torch::ScalarType dtype) {
  torch::manual_seed(seed);
  return (torch::randn({shape.n, shape.v}) * 3.0).to(dtype);
}

torch::Tensor random_tokens(Shape shape, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, shape.v, {shape.n}, torch::kLong);
}

std::string describe(Shape shape, torch::ScalarType dtype, double lambda, double temperature,
                     bool with_reference) {
  return "shape (" + std::to_string(shape.n) + "," + std::to_string(shape.v) + ") " +
         c10::toString(dtype) + " lambda " + std::to_string(lambda) + " T " +
         std::to_string(temperature) + (with_reference ? " with reference" : " no reference");
}

// Values: |a − b| ≤ tolerance · max(|b|, 1), same ±inf.
void expect_values_close(const torch::Tensor& fused, const torch::Tensor& expected,
                         double tolerance, const std::string& context) {
  ASSERT_EQ(fused.sizes(), expected.sizes()) << context;
  const torch::Tensor a = fused.to(torch::kDouble).reshape({-1});
  const torch::Tensor b = expected.to(torch::kDouble).reshape({-1});
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a[i].item<double>();
    const double y = b[i].item<double>();
    if (std::isinf(y)) {
      EXPECT_EQ(x, y) << context << " at " << i;
      continue;
    }
    ASSERT_TRUE(std::isfinite(x)) << context << " at " << i << ": " << x << " vs " << y;
    EXPECT_LE(std::abs(x - y), tolerance * std::max(std::abs(y), 1.0))
        << context << " at " << i << ": " << x << " vs " << y;
  }
}

// Gradients: max |a − b| ≤ relative · max |b| + absolute.
void expect_grads_close(const torch::Tensor& fused, const torch::Tensor& expected,
                        double relative, const std::string& context) {
  ASSERT_TRUE(fused.defined()) << context;
  ASSERT_EQ(fused.sizes(), expected.sizes()) << context;
  ASSERT_EQ(fused.scalar_type(), expected.scalar_type()) << context;
  const torch::Tensor a = fused.to(torch::kDouble);
  const torch::Tensor b = expected.to(torch::kDouble);
  ASSERT_TRUE(torch::isfinite(a).all().item<bool>()) << context;
  const double scale = b.abs().max().item<double>();
  const double error = (a - b).abs().max().item<double>();
  EXPECT_LE(error, relative * scale + 1e-9) << context << " (max |ref grad| " << scale << ")";
}

double grad_tolerance(torch::ScalarType dtype) { return dtype == torch::kBFloat16 ? 1.0 / 128 : 3e-5; }

struct Outputs {
  torch::Tensor value;
  torch::Tensor grad;
};

// Runs `op` on a fresh leaf copy of `student`, backpropagates Σ weight · value.
template <typename Op>
Outputs run_with_grad(const torch::Tensor& student, const torch::Tensor& weight, const Op& op) {
  torch::Tensor leaf = student.detach().clone().set_requires_grad(true);
  torch::Tensor value = op(leaf);
  (value * weight.to(value.scalar_type())).sum().backward();
  return {value.detach(), leaf.grad()};
}

// `op(x, impl)` must convert its other inputs to x's dtype. Checks the fused path against the
// reference path run in fp64, with the bounds in the file header.
template <typename Op>
void check_parity(const torch::Tensor& student, const torch::Tensor& weight, const Op& op,
                  const std::string& context) {
  const torch::ScalarType dtype = student.scalar_type();
  const Outputs fused = run_with_grad(student, weight, [&](const torch::Tensor& x) { return op(x, Impl::fused); });
  const Outputs truth = run_with_grad(student.to(torch::kDouble), weight, [&](const torch::Tensor& x) { return op(x, Impl::reference); });
  expect_values_close(fused.value, truth.value, 1e-5, context);
  expect_grads_close(fused.grad, truth.grad.to(dtype), grad_tolerance(dtype), context);
}

// ---------------------------------------------------------------------------------------
// gopd_kl

class GopdKlParity : public ::testing::TestWithParam<std::tuple<int, torch::ScalarType>> {};

TEST_P(GopdKlParity, FusedMatchesReferenceOverLambdaTemperatureAndReference) {
  const Shape shape = kShapes[std::get<0>(GetParam())];
  const torch::ScalarType dtype = std::get<1>(GetParam());
  const torch::Tensor student = random_logits(shape, 1, dtype);
  const torch::Tensor teacher = random_logits(shape, 2, dtype);
  const torch::Tensor reference = random_logits(shape, 3, dtype);
  const torch::Tensor weight = torch::rand({shape.n}) + 0.5;
  for (const bool with_reference : {true, false}) {
    for (const double lambda : kLambdas) {
      if (!with_reference && lambda != 1.0 && lambda != 2.0) continue;  // λ unused: two suffice
      for (const double temperature : kTemperatures) {
        const std::string context = describe(shape, dtype, lambda, temperature, with_reference);
        check_parity(student, weight, [&](const torch::Tensor& s, Impl impl) {
          const torch::Tensor r = with_reference ? reference.to(s.scalar_type()) : torch::Tensor();
          return gopd_kl(s, teacher.to(s.scalar_type()), r, lambda, temperature, impl);
        }, context);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// token_logprobs

class TokenLogprobsParity : public ::testing::TestWithParam<std::tuple<int, torch::ScalarType>> {};

TEST_P(TokenLogprobsParity, LogprobsAndEntropyMatchReference) {
  const Shape shape = kShapes[std::get<0>(GetParam())];
  const torch::ScalarType dtype = std::get<1>(GetParam());
  const torch::Tensor logits = random_logits(shape, 4, dtype);
  const torch::Tensor tokens = random_tokens(shape, 5);
  const torch::Tensor w_lp = torch::rand({shape.n}) + 0.5;
  const torch::Tensor w_h = torch::rand({shape.n}) - 0.5;
  for (const double temperature : kTemperatures) {
    for (const bool with_entropy : {false, true}) {
      const std::string context = describe(shape, dtype, 1.0, temperature, false) +
                                  (with_entropy ? " entropy" : "");
      const torch::Tensor weight = with_entropy ? torch::stack({w_lp, w_h}) : w_lp;
      check_parity(logits, weight, [&](const torch::Tensor& s, Impl impl) {
        const TokenLogprobs out = token_logprobs(s, tokens, temperature, with_entropy, impl);
        return with_entropy ? torch::stack({out.logprobs, out.entropy}) : out.logprobs;
      }, context);
    }
  }
}

// ---------------------------------------------------------------------------------------
// gopd_logratio_reward

class LogratioRewardParity : public ::testing::TestWithParam<std::tuple<int, torch::ScalarType>> {};

TEST_P(LogratioRewardParity, AdvantageAndLogprobsMatchReference) {
  const Shape shape = kShapes[std::get<0>(GetParam())];
  const torch::ScalarType dtype = std::get<1>(GetParam());
  const torch::Tensor student = random_logits(shape, 6, dtype);
  const torch::Tensor teacher = random_logits(shape, 7, dtype);
  const torch::Tensor reference = random_logits(shape, 8, dtype);
  const torch::Tensor tokens = random_tokens(shape, 9);
  for (const bool with_reference : {true, false}) {
    for (const double lambda : kLambdas) {
      for (const double temperature : kTemperatures) {
        const std::string context = describe(shape, dtype, lambda, temperature, with_reference);
        const torch::Tensor r = with_reference ? reference : torch::Tensor();
        const LogratioReward fused =
            gopd_logratio_reward(student, teacher, r, tokens, lambda, temperature, Impl::fused);
        const LogratioReward expected = gopd_logratio_reward(
            student.to(torch::kDouble), teacher.to(torch::kDouble),
            with_reference ? reference.to(torch::kDouble) : torch::Tensor(), tokens, lambda,
            temperature, Impl::reference);
        expect_values_close(fused.advantage, expected.advantage, 1e-5, context);
        expect_values_close(fused.lp_student, expected.lp_student, 1e-5, context);
        expect_values_close(fused.lp_teacher, expected.lp_teacher, 1e-5, context);
        ASSERT_EQ(fused.lp_reference.defined(), with_reference) << context;
        if (with_reference) {
          expect_values_close(fused.lp_reference, expected.lp_reference, 1e-5,
                              context);
        }
        EXPECT_FALSE(fused.advantage.requires_grad());
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// gopd_kl_topk

struct TopkInputs {
  torch::Tensor ids;         // (N, k)
  torch::Tensor teacher_lp;  // (N, k)
  torch::Tensor reference_lp;  // (N, k)
};

TopkInputs make_topk_inputs(Shape shape, int64_t k, double temperature) {
  const torch::Tensor teacher = random_logits(shape, 12, torch::kFloat) / temperature;
  const torch::Tensor reference = random_logits(shape, 13, torch::kFloat) / temperature;
  TopkInputs inputs;
  inputs.ids = std::get<1>(teacher.topk(k, -1));
  inputs.teacher_lp = torch::log_softmax(teacher, -1).gather(-1, inputs.ids);
  inputs.reference_lp = torch::log_softmax(reference, -1).gather(-1, inputs.ids);
  return inputs;
}

class GopdKlTopkParity : public ::testing::TestWithParam<std::tuple<int, torch::ScalarType>> {};

TEST_P(GopdKlTopkParity, FusedMatchesReferenceForEachK) {
  const Shape shape = kShapes[std::get<0>(GetParam())];
  const torch::ScalarType dtype = std::get<1>(GetParam());
  const torch::Tensor student = random_logits(shape, 11, dtype);
  const torch::Tensor weight = torch::rand({shape.n}) + 0.5;
  for (const int64_t k : {int64_t(1), int64_t(8), int64_t(64), shape.v}) {
    if (k > shape.v || (k == shape.v && shape.v > 123)) continue;
    for (const double temperature : kTemperatures) {
      const TopkInputs inputs = make_topk_inputs(shape, k, temperature);
      for (const bool with_reference : {true, false}) {
        for (const double lambda : kLambdas) {
          if (!with_reference && lambda != 1.0) continue;
          const std::string context = describe(shape, dtype, lambda, temperature, with_reference) +
                                      " k " + std::to_string(k);
          const torch::Tensor r = with_reference ? inputs.reference_lp : torch::Tensor();
          check_parity(student, weight, [&](const torch::Tensor& s, Impl impl) {
            return gopd_kl_topk(s, inputs.ids, inputs.teacher_lp, r, lambda, temperature, impl);
          }, context);
        }
      }
    }
  }
}

std::string shape_dtype_name(
    const ::testing::TestParamInfo<std::tuple<int, torch::ScalarType>>& info) {
  const Shape shape = kShapes[std::get<0>(info.param)];
  return std::to_string(shape.n) + "x" + std::to_string(shape.v) + "_" +
         (std::get<1>(info.param) == torch::kBFloat16 ? "bf16" : "fp32");
}

const auto kShapeDtypeGrid = ::testing::Combine(::testing::Range(0, int(kShapes.size())),
                                                ::testing::Values(torch::kFloat, torch::kBFloat16));

INSTANTIATE_TEST_SUITE_P(Shapes, GopdKlParity, kShapeDtypeGrid, shape_dtype_name);
INSTANTIATE_TEST_SUITE_P(Shapes, TokenLogprobsParity, kShapeDtypeGrid, shape_dtype_name);
INSTANTIATE_TEST_SUITE_P(Shapes, LogratioRewardParity, kShapeDtypeGrid, shape_dtype_name);
INSTANTIATE_TEST_SUITE_P(Shapes, GopdKlTopkParity, kShapeDtypeGrid, shape_dtype_name);

// ---------------------------------------------------------------------------------------
// The reference against independent closed forms (fp64)

TEST(KernelsReference, GopdKlEqualsKlToNormalisedGeometricMixture) {
  torch::manual_seed(21);
  const torch::Tensor s = torch::randn({4, 9}, torch::kDouble) * 2;
  const torch::Tensor t = torch::randn({4, 9}, torch::kDouble) * 2;
  const torch::Tensor r = torch::randn({4, 9}, torch::kDouble) * 2;
  for (const double lambda : kLambdas) {
    const double temperature = 0.7;
    const torch::Tensor p = torch::softmax(s / temperature, -1);
    const torch::Tensor pt = torch::softmax(t / temperature, -1);
    const torch::Tensor pr = torch::softmax(r / temperature, -1);
    torch::Tensor q = pt.pow(lambda) * pr.pow(1.0 - lambda);
    q = q / q.sum(-1, true);
    const torch::Tensor expected = (p * (p.log() - q.log())).sum(-1);
    const torch::Tensor value = gopd_kl(s, t, r, lambda, temperature, Impl::reference);
    EXPECT_TRUE(torch::allclose(value, expected, 1e-12, 1e-12)) << "lambda " << lambda;
    // The fused path in fp32 agrees with the fp64 closed form.
    const torch::Tensor fused =
        gopd_kl(s.to(torch::kFloat), t.to(torch::kFloat), r.to(torch::kFloat), lambda,
                temperature, Impl::fused);
    EXPECT_TRUE(torch::allclose(fused.to(torch::kDouble), expected, 1e-5, 1e-5))
        << "lambda " << lambda << "\n" << fused << "\n" << expected;
  }
  // No reference: plain reverse KL to the teacher, whatever λ says.
  const torch::Tensor p = torch::softmax(s, -1);
  const torch::Tensor pt = torch::softmax(t, -1);
  const torch::Tensor plain = (p * (p.log() - pt.log())).sum(-1);
  EXPECT_TRUE(torch::allclose(gopd_kl(s, t, {}, 1.25, 1.0, Impl::reference), plain, 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(
      gopd_kl(s.to(torch::kFloat), t.to(torch::kFloat), {}, 1.25, 1.0, Impl::fused)
          .to(torch::kDouble),
      plain, 1e-5, 1e-5));
}

TEST(KernelsReference, LogratioRewardIsThePapersAdvantage) {
  // One row, vocabulary 2, chosen so the log-probs are known: A = λ(lt − lr) − (ls − lr).
  const torch::Tensor s = torch::tensor({{0.0, 0.0}});                    // ls = log 1/2
  const torch::Tensor t = torch::tensor({{std::log(3.0), 0.0}});           // lt = log 3/4
  const torch::Tensor r = torch::tensor({{0.0, std::log(3.0)}});           // lr = log 1/4
  const torch::Tensor y = torch::tensor({int64_t(0)});
  const double lambda = 1.25;
  const double expected = lambda * (std::log(0.75) - std::log(0.25)) - (std::log(0.5) - std::log(0.25));
  for (const Impl impl : {Impl::fused, Impl::reference}) {
    const LogratioReward out = gopd_logratio_reward(s, t, r, y, lambda, 1.0, impl);
    EXPECT_NEAR(out.advantage.item<double>(), expected, 1e-6) << impl_name(impl);
    EXPECT_NEAR(out.lp_teacher.item<double>(), std::log(0.75), 1e-6) << impl_name(impl);
    const LogratioReward plain = gopd_logratio_reward(s, t, {}, y, lambda, 1.0, impl);
    EXPECT_NEAR(plain.advantage.item<double>(), std::log(0.75) - std::log(0.5), 1e-6);
  }
}

TEST(KernelsReference, TopkWithAllTokensAsIdsEqualsFullVocabularyKl) {
  // k = V: the tail is empty and the top-k KL is the full-vocabulary G-OPD KL.
  torch::manual_seed(22);
  const torch::Tensor s = torch::randn({3, 11}) * 2;
  const torch::Tensor t = torch::randn({3, 11}) * 2;
  const torch::Tensor r = torch::randn({3, 11}) * 2;
  const torch::Tensor ids = std::get<1>(t.topk(11, -1));
  const torch::Tensor tlp = torch::log_softmax(t, -1).gather(-1, ids);
  const torch::Tensor rlp = torch::log_softmax(r, -1).gather(-1, ids);
  const torch::Tensor full = gopd_kl(s, t, r, 1.25, 1.0, Impl::reference);
  for (const Impl impl : {Impl::fused, Impl::reference}) {
    const torch::Tensor topk = gopd_kl_topk(s, ids, tlp, rlp, 1.25, 1.0, impl);
    EXPECT_TRUE(torch::allclose(topk, full, 1e-5, 1e-5)) << impl_name(impl);
  }
}

// ---------------------------------------------------------------------------------------
// Finite differences in fp64 (reference path) and the fused fp32 gradient against them

template <typename Op>
torch::Tensor finite_difference_grad(const torch::Tensor& x, const torch::Tensor& weight,
                                     const Op& op) {
  const double step = 1e-6;
  torch::Tensor grad = torch::zeros_like(x);
  torch::Tensor probe = x.clone();
  auto flat = probe.view({-1});
  auto grad_flat = grad.view({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double original = flat[i].item<double>();
    flat[i] = original + step;
    const double up = (op(probe) * weight).sum().template item<double>();
    flat[i] = original - step;
    const double down = (op(probe) * weight).sum().template item<double>();
    flat[i] = original;
    grad_flat[i] = (up - down) / (2 * step);
  }
  return grad;
}

TEST(KernelsGradients, FiniteDifferencesAgreeWithBothPaths) {
  torch::manual_seed(23);
  const Shape shape{3, 7};
  const torch::Tensor s = torch::randn({shape.n, shape.v}, torch::kDouble) * 2;
  const torch::Tensor t = torch::randn({shape.n, shape.v}, torch::kDouble) * 2;
  const torch::Tensor r = torch::randn({shape.n, shape.v}, torch::kDouble) * 2;
  const torch::Tensor tokens = torch::tensor({int64_t(0), int64_t(3), int64_t(6)});
  const torch::Tensor weight = torch::tensor({0.7, 1.3, -0.4}, torch::kDouble);
  const torch::Tensor ids = std::get<1>(t.topk(3, -1));
  const torch::Tensor tlp = torch::log_softmax(t, -1).gather(-1, ids);
  const torch::Tensor rlp = torch::log_softmax(r, -1).gather(-1, ids);
  const double temperature = 0.7;

  struct Case {
    std::string name;
    std::function<torch::Tensor(const torch::Tensor&, Impl)> op;
  };
  const std::vector<Case> cases = {
      {"gopd_kl", [&](const torch::Tensor& x, Impl impl) {
         const torch::ScalarType dtype = x.scalar_type();
         return gopd_kl(x, t.to(dtype), r.to(dtype), 1.25, temperature, impl);
       }},
      {"token_logprobs+entropy", [&](const torch::Tensor& x, Impl impl) {
         const TokenLogprobs out = token_logprobs(x, tokens, temperature, true, impl);
         return out.logprobs + 0.5 * out.entropy;
       }},
      {"gopd_kl_topk", [&](const torch::Tensor& x, Impl impl) {
         return gopd_kl_topk(x, ids, tlp, rlp, 1.25, temperature, impl);
       }},
  };
  for (const Case& c : cases) {
    const torch::Tensor numeric = finite_difference_grad(
        s, weight, [&](const torch::Tensor& x) { return c.op(x, Impl::reference); });
    const Outputs analytic =
        run_with_grad(s, weight, [&](const torch::Tensor& x) { return c.op(x, Impl::reference); });
    EXPECT_TRUE(torch::allclose(analytic.grad, numeric, 1e-6, 1e-7)) << c.name;
    const Outputs fused = run_with_grad(s.to(torch::kFloat), weight.to(torch::kFloat),
                                        [&](const torch::Tensor& x) { return c.op(x, Impl::fused); });
    EXPECT_TRUE(torch::allclose(fused.grad.to(torch::kDouble), numeric, 1e-4, 1e-5))
        << c.name << "\n" << fused.grad << "\n" << numeric;
  }
}

// ---------------------------------------------------------------------------------------
// −inf masking

TEST(KernelsMasking, SharedVocabularyMaskGivesFiniteMatchingResultsAndZeroGradients) {
  const Shape shape{9, 301};
  for (const torch::ScalarType dtype : {torch::kFloat, torch::kBFloat16}) {
    torch::manual_seed(31);
    const torch::Tensor mask = torch::rand({shape.n, shape.v}) < 0.1;  // padded vocabulary
    const auto masked = [&](const torch::Tensor& x) {
      return x.masked_fill(mask, -kInf);
    };
    const torch::Tensor s = masked(random_logits(shape, 32, dtype));
    const torch::Tensor t = masked(random_logits(shape, 33, dtype));
    const torch::Tensor r = masked(random_logits(shape, 34, dtype));
    torch::Tensor tokens = random_tokens(shape, 35);
    // Sampled tokens are never masked ones.
    tokens = torch::where(mask.gather(-1, tokens.unsqueeze(-1)).squeeze(-1),
                          std::get<1>(s.to(torch::kFloat).max(-1)), tokens);
    const torch::Tensor weight = torch::ones({shape.n});
    for (const double lambda : kLambdas) {
      const std::string context = "lambda " + std::to_string(lambda) + " " + c10::toString(dtype);
      const Outputs fused = run_with_grad(s, weight, [&](const torch::Tensor& x) {
        return gopd_kl(x, t, r, lambda, 1.0, Impl::fused);
      });
      const Outputs expected = run_with_grad(s, weight, [&](const torch::Tensor& x) {
        return gopd_kl(x, t, r, lambda, 1.0, Impl::reference);
      });
      ASSERT_TRUE(torch::isfinite(fused.value).all().item<bool>()) << context;
      expect_values_close(fused.value, expected.value, 1e-5, context);
      expect_grads_close(fused.grad, expected.grad, grad_tolerance(dtype), context);
      EXPECT_EQ(fused.grad.masked_select(mask).abs().max().item<double>(), 0.0) << context;
    }
    const Outputs fused = run_with_grad(s, weight, [&](const torch::Tensor& x) {
      const TokenLogprobs out = token_logprobs(x, tokens, 1.0, true, Impl::fused);
      return out.logprobs + out.entropy;
    });
    const Outputs expected = run_with_grad(s, weight, [&](const torch::Tensor& x) {
      const TokenLogprobs out = token_logprobs(x, tokens, 1.0, true, Impl::reference);
      return out.logprobs + out.entropy;
    });
    expect_values_close(fused.value, expected.value, 1e-5, "token_logprobs masked");
    expect_grads_close(fused.grad, expected.grad, grad_tolerance(dtype), "token_logprobs masked");
    const LogratioReward reward = gopd_logratio_reward(s, t, r, tokens, 1.25, 1.0, Impl::fused);
    EXPECT_TRUE(torch::isfinite(reward.advantage).all().item<bool>());
  }
}

TEST(KernelsMasking, StudentOnlyMaskIsFiniteAndTeacherOnlyMaskFollowsTheCoefficients) {
  const Shape shape{6, 50};
  torch::manual_seed(41);
  const torch::Tensor mask = torch::rand({shape.n, shape.v}) < 0.2;
  const torch::Tensor s = random_logits(shape, 42, torch::kFloat);
  const torch::Tensor t = random_logits(shape, 43, torch::kFloat);
  const torch::Tensor r = random_logits(shape, 44, torch::kFloat);
  const torch::Tensor s_masked = s.masked_fill(mask, -kInf);
  const torch::Tensor t_masked = t.masked_fill(mask, -kInf);
  for (const Impl impl : {Impl::fused, Impl::reference}) {
    // The student never puts mass where it masks: finite for every λ.
    for (const double lambda : kLambdas) {
      EXPECT_TRUE(torch::isfinite(gopd_kl(s_masked, t, r, lambda, 1.0, impl)).all().item<bool>())
          << impl_name(impl) << " lambda " << lambda;
    }
    // λ = 0: the teacher does not enter the target, so its mask does not matter.
    EXPECT_TRUE(torch::allclose(gopd_kl(s, t_masked, r, 0.0, 1.0, impl),
                                gopd_kl(s, t, r, 0.0, 1.0, impl)))
        << impl_name(impl);
    // λ = 0.5: the target is masked where the teacher is, the student is not: KL = +inf.
    EXPECT_TRUE(torch::isinf(gopd_kl(s, t_masked, r, 0.5, 1.0, impl)).all().item<bool>())
        << impl_name(impl);
  }
}

// ---------------------------------------------------------------------------------------
// Layout, determinism and errors

TEST(KernelsLayout, StridedThreeDimensionalInputsMatchContiguousOnes) {
  torch::manual_seed(51);
  const torch::Tensor wide = torch::randn({2, 5, 40}) * 3;  // rows padded to 40
  const torch::Tensor s = wide.slice(-1, 1, 38);            // (2, 5, 37), row stride 40
  const torch::Tensor t = torch::randn({2, 5, 37}) * 3;
  const torch::Tensor tokens = torch::randint(0, 37, {2, 5}, torch::kLong);
  const torch::Tensor strided = gopd_kl(s, t, t.flip(-1), 1.25, 0.7, Impl::fused);
  const torch::Tensor contiguous = gopd_kl(s.contiguous(), t, t.flip(-1), 1.25, 0.7, Impl::fused);
  EXPECT_EQ(strided.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_TRUE(torch::equal(strided, contiguous));
  const TokenLogprobs a = token_logprobs(s, tokens, 1.0, true, Impl::fused);
  const TokenLogprobs b = token_logprobs(s, tokens, 1.0, true, Impl::reference);
  expect_values_close(a.logprobs, b.logprobs, 1e-5, "strided logprobs");
  expect_values_close(a.entropy, b.entropy, 1e-5, "strided entropy");
}

TEST(KernelsDeterminism, ThreadCountDoesNotChangeAnyBit) {
  const Shape shape{33, 5000};
  const torch::Tensor s = random_logits(shape, 61, torch::kFloat);
  const torch::Tensor t = random_logits(shape, 62, torch::kFloat);
  const torch::Tensor weight = torch::ones({shape.n});
  const int threads = at::get_num_threads();
  std::vector<Outputs> runs;
  for (const int count : {1, 2}) {
    at::set_num_threads(count);
    runs.push_back(run_with_grad(s, weight, [&](const torch::Tensor& x) {
      return gopd_kl(x, t, t.roll(1, -1), 1.25, 1.0, Impl::fused);
    }));
  }
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(runs[0].value, runs[1].value));
  EXPECT_TRUE(torch::equal(runs[0].grad, runs[1].grad));
}

TEST(KernelsErrors, BadInputsAreNamed) {
  const torch::Tensor s = torch::randn({2, 5});
  const auto expect_error = [](const std::function<void()>& call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
    }
  };
  expect_error([&] { gopd_kl(s, torch::randn({2, 6}), {}, 1.0); }, "teacher has shape");
  expect_error([&] { gopd_kl(s.to(torch::kDouble), s, {}, 1.0); }, "fp32 or bf16");
  expect_error([&] { gopd_kl(s, s, {}, 1.0, 0.0); }, "temperature");
  expect_error([&] { token_logprobs(s, torch::tensor({int64_t(0), int64_t(5)})); }, "[0, 5)");
  expect_error([&] { token_logprobs(s, torch::zeros({3}, torch::kLong)); }, "leading dimensions");
  const torch::Tensor duplicate_ids = torch::tensor({{1, 1}, {0, 2}}, torch::kLong);
  expect_error([&] { gopd_kl_topk(s, duplicate_ids, torch::zeros({2, 2}), {}, 1.0); },
               "distinct");
  expect_error([&] { gopd_kl_topk(s, torch::zeros({2, 6}, torch::kLong), torch::zeros({2, 6}), {}, 1.0); },
               "between 1 and the vocabulary size");
  expect_error([] { parse_impl("fast"); }, "fused or reference");
}

}  // namespace
}  // namespace gopd::kernels
