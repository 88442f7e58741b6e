// Objective module: G-OPD advantages against hand-computed values (λ ∈ {1, 1.25}, with and
// without a reference), loss aggregation on a ragged hand-built batch, truncated importance
// weights, the plain vs clipped policy-gradient surrogate (equal gradients at ratio 1, clip
// fraction on a constructed case), full-vocabulary and top-k G-OPD losses against independent
// composites written here (fused and reference kernels), the teacher top-k helper, and SFT
// against torch's cross_entropy.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "gopd/objective/gopd_loss.h"
#include "gopd/objective/loss_output.h"
#include "gopd/objective/policy_loss.h"
#include "gopd/objective/sft_loss.h"

namespace gopd::objective {
namespace {

const std::vector<LossAgg> kAggs = {LossAgg::token_mean, LossAgg::seq_mean_token_mean,
                                    LossAgg::seq_mean_token_sum};

torch::Tensor rows(std::vector<std::vector<double>> values) {  // -> (B, T) fp32
  std::vector<torch::Tensor> out;
  for (const auto& row : values) out.push_back(torch::tensor(row, torch::kFloat));
  return torch::stack(out);
}

double item(const torch::Tensor& scalar) { return scalar.item<double>(); }

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double tolerance) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  const double error =
      (actual.to(torch::kDouble) - expected.to(torch::kDouble)).abs().max().item<double>();
  EXPECT_LE(error, tolerance) << "actual\n" << actual << "\nexpected\n" << expected;
}

// ---------------------------------------------------------------------------------------
// G-OPD advantage

struct AdvantageCase {
  torch::Tensor teacher = rows({{-1.0, -2.0, -0.5}, {-0.25, -3.0, -1.5}});   // (2, 3)
  torch::Tensor old = rows({{-1.5, -1.0, -0.5}, {-0.75, -2.0, -1.0}});       // (2, 3)
  torch::Tensor reference = rows({{-2.0, -1.5, -1.0}, {-0.5, -2.5, -2.0}});  // (2, 3)
  torch::Tensor mask = rows({{1, 1, 1}, {1, 1, 0}});                         // (2, 3)
};

TEST(GopdAdvantage, HandComputedValues) {
  const AdvantageCase c;
  // λ = 1 without a reference: A = lt − lo.
  const torch::Tensor opd =
      gopd_advantage({c.teacher, torch::Tensor(), c.old}, torch::ones({2}), c.mask);
  expect_close(opd, rows({{0.5, -1.0, 0.0}, {0.5, -1.0, 0.0}}), 0.0);

  // λ = 1.25 with a reference: A = 1.25·(lt − lr) − (lo − lr).
  const torch::Tensor exopd =
      gopd_advantage({c.teacher, c.reference, c.old}, torch::full({2}, 1.25), c.mask);
  expect_close(exopd, rows({{0.75, -1.125, 0.125}, {0.5625, -1.125, 0.0}}), 1e-7);

  // Per-sequence λ (a teacher override): row 0 at λ = 1, row 1 at λ = 1.25.
  const torch::Tensor mixed =
      gopd_advantage({c.teacher, c.reference, c.old}, torch::tensor({1.0, 1.25}), c.mask);
  expect_close(mixed, rows({{0.5, -1.0, 0.0}, {0.5625, -1.125, 0.0}}), 1e-7);

  // λ = 1 with a reference is plain OPD, whatever the reference: bit-identical advantages.
  const torch::Tensor with_reference =
      gopd_advantage({c.teacher, c.reference, c.old}, torch::ones({2}), c.mask);
  const torch::Tensor other_reference =
      gopd_advantage({c.teacher, c.reference * 3.0 - 0.7, c.old}, torch::ones({2}), c.mask);
  EXPECT_TRUE(torch::equal(with_reference, other_reference));
  EXPECT_TRUE(torch::equal(with_reference, opd));
}

TEST(GopdAdvantage, DetachedAndMasked) {
  const AdvantageCase c;
  const torch::Tensor teacher = c.teacher.clone().requires_grad_(true);
  torch::Tensor old = c.old.clone();
  old[1][2] = -std::numeric_limits<float>::infinity();  // garbage at a padding position
  const torch::Tensor advantage =
      gopd_advantage({teacher, c.reference, old}, torch::full({2}, 1.25), c.mask);
  EXPECT_FALSE(advantage.requires_grad());
  EXPECT_EQ(item(advantage[1][2]), 0.0);
}

TEST(GopdAdvantage, LambdaOtherThanOneNeedsReference) {
  const AdvantageCase c;
  EXPECT_THROW(
      gopd_advantage({c.teacher, torch::Tensor(), c.old}, torch::tensor({1.0, 1.25}), c.mask),
      std::invalid_argument);
  EXPECT_THROW(gopd_advantage({c.teacher, c.reference, c.old}, torch::ones({3}), c.mask),
               std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// Aggregation

TEST(Aggregate, AllModesOnRaggedBatch) {
  const torch::Tensor values = rows({{1, 2, 3}, {4, 5, 6}});  // (2, 3)
  const torch::Tensor mask = rows({{1, 1, 1}, {1, 0, 0}});    // (2, 3)
  EXPECT_DOUBLE_EQ(item(aggregate(values, mask, LossAgg::token_mean)), 10.0 / 4.0);
  EXPECT_DOUBLE_EQ(item(aggregate(values, mask, LossAgg::seq_mean_token_mean)), (2.0 + 4.0) / 2);
  EXPECT_DOUBLE_EQ(item(aggregate(values, mask, LossAgg::seq_mean_token_sum)), (6.0 + 4.0) / 2);

  // Non-finite values at padding never leak; a bool mask works like a float one.
  torch::Tensor dirty = values.clone();
  dirty[1][1] = std::numeric_limits<float>::quiet_NaN();
  dirty[1][2] = -std::numeric_limits<float>::infinity();
  for (LossAgg agg : kAggs) {
    EXPECT_EQ(item(aggregate(dirty, mask.to(torch::kBool), agg)),
              item(aggregate(values, mask, agg)))
        << loss_agg_name(agg);
  }

  // An empty sequence: excluded from both sequence means (verl v0.6.1 on).
  const torch::Tensor values3 = torch::cat({values, rows({{7, 8, 9}})});  // (3, 3)
  const torch::Tensor mask3 = torch::cat({mask, rows({{0, 0, 0}})});      // (3, 3)
  EXPECT_DOUBLE_EQ(item(aggregate(values3, mask3, LossAgg::token_mean)), 2.5);
  EXPECT_DOUBLE_EQ(item(aggregate(values3, mask3, LossAgg::seq_mean_token_mean)), 3.0);
  EXPECT_FLOAT_EQ(item(aggregate(values3, mask3, LossAgg::seq_mean_token_sum)), 10.0 / 2.0);

  // No response token at all: 0, not NaN.
  for (LossAgg agg : kAggs) {
    EXPECT_EQ(item(aggregate(values, torch::zeros_like(mask), agg)), 0.0);
  }
}

TEST(Aggregate, GradientIsTheTokenWeight) {
  const torch::Tensor values = rows({{1, 2, 3}, {4, 5, 6}}).requires_grad_(true);
  const torch::Tensor mask = rows({{1, 1, 1}, {1, 0, 0}});
  aggregate(values, mask, LossAgg::seq_mean_token_mean).backward();
  expect_close(values.grad(), rows({{1.0 / 6, 1.0 / 6, 1.0 / 6}, {0.5, 0, 0}}), 1e-7);
}

TEST(Aggregate, ParseLossAgg) {
  for (LossAgg agg : kAggs) EXPECT_EQ(parse_loss_agg(loss_agg_name(agg)), agg);
  try {
    parse_loss_agg("token-mean");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& error) {
    const std::string message = error.what();
    for (const char* part : {"train.loss_agg", "token_mean", "seq_mean_token_mean",
                             "seq_mean_token_sum", "'token-mean'"}) {
      EXPECT_NE(message.find(part), std::string::npos) << message;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Importance weights and the policy-gradient surrogate

TEST(ImportanceWeights, CappedAndDetached) {
  const torch::Tensor rollout = rows({{-1.0, -2.0, -3.0, -0.5}});  // (1, 4)
  const torch::Tensor old_train =
      (rollout + rows({{0.0, std::log(2.0), 3.0, -1.0}})).requires_grad_(true);
  const torch::Tensor weights = truncated_importance_weights(old_train, rollout, 5.0);
  EXPECT_FALSE(weights.requires_grad());
  expect_close(weights, rows({{1.0, 2.0, 5.0, std::exp(-1.0)}}), 1e-6);
  EXPECT_THROW(truncated_importance_weights(old_train, rollout, 0.0), std::invalid_argument);
}

TEST(PolicyLoss, ClippedAndPlainGradientsAgreeAtRatioOne) {
  torch::manual_seed(7);
  const torch::Tensor logp0 = -torch::rand({3, 5}) * 4.0;   // (3, 5)
  const torch::Tensor advantage = torch::randn({3, 5});     // (3, 5)
  const torch::Tensor weights = 0.5 + torch::rand({3, 5});  // (3, 5)
  const torch::Tensor mask = rows({{1, 1, 1, 1, 1}, {1, 1, 0, 0, 0}, {0, 0, 0, 0, 0}});
  for (LossAgg agg : kAggs) {
    PolicyLossOptions options;
    options.agg = agg;
    const torch::Tensor plain_logp = logp0.clone().requires_grad_(true);
    const LossOutput plain =
        policy_gradient_loss(plain_logp, logp0, advantage, weights, mask, options);
    plain.loss.backward();

    options.clipped = true;
    const torch::Tensor clipped_logp = logp0.clone().requires_grad_(true);
    const LossOutput clipped =
        policy_gradient_loss(clipped_logp, logp0, advantage, weights, mask, options);
    clipped.loss.backward();

    expect_close(clipped_logp.grad(), plain_logp.grad(), 1e-7);
    EXPECT_GT(plain_logp.grad().abs().sum().item<double>(), 0.0);
    EXPECT_EQ(item(clipped.metrics.at("actor/clip_fraction")), 0.0);
    EXPECT_FLOAT_EQ(item(clipped.metrics.at("actor/ratio_mean")), 1.0);
    EXPECT_EQ(plain.metrics.count("actor/clip_fraction"), 0u);
    // The plain loss is −agg(w·A·logp); the clipped one at ρ = 1 is −agg(w·A).
    EXPECT_FLOAT_EQ(item(plain.loss), item(-aggregate(weights * advantage * logp0, mask, agg)));
    EXPECT_FLOAT_EQ(item(clipped.loss), item(-aggregate(weights * advantage, mask, agg)));
  }
}

TEST(PolicyLoss, ClipFractionOnConstructedCase) {
  // ρ = [1.5, 0.5, 1.1, 0.7, 3.0], A = [+1, +1, −1, −1, +1], last token is padding, ε = 0.2:
  //   1.5·(+1): clip 1.2 < 1.5 → clipped;   0.5·(+1): clip 0.8 > 0.5 → not clipped;
  //   1.1·(−1): inside the range;          0.7·(−1): clip −0.8 < −0.7 → clipped.
  const torch::Tensor logp_old = rows({{-1.0, -2.0, -0.5, -3.0, -1.0}});
  const torch::Tensor logp =
      (logp_old + rows({{1.5, 0.5, 1.1, 0.7, 3.0}}).log()).requires_grad_(true);
  const torch::Tensor advantage = rows({{1, 1, -1, -1, 1}});
  const torch::Tensor mask = rows({{1, 1, 1, 1, 0}});
  PolicyLossOptions options;
  options.clipped = true;
  const LossOutput out =
      policy_gradient_loss(logp, logp_old, advantage, torch::Tensor(), mask, options);
  out.loss.backward();
  EXPECT_DOUBLE_EQ(item(out.metrics.at("actor/clip_fraction")), 0.5);
  EXPECT_NEAR(item(out.metrics.at("actor/ratio_mean")), (1.5 + 0.5 + 1.1 + 0.7) / 4, 1e-6);
  EXPECT_NEAR(item(out.loss), (-1.2 - 0.5 + 1.1 + 0.8) / 4, 1e-6);
  EXPECT_NEAR(item(out.metrics.at("loss/policy")), item(out.loss), 0.0);
  // Clipped tokens and padding get no gradient; the others get −ρ·A / 4.
  expect_close(logp.grad(), rows({{0.0, -0.5 / 4, 1.1 / 4, 0.0, 0.0}}), 1e-6);
  EXPECT_EQ(item(out.metrics.at("actor/importance_weight_mean")), 1.0);
}

TEST(PolicyLoss, ImportanceWeightMetricsAndPaddingGarbage) {
  const torch::Tensor logp0 = rows({{-1.0, -2.0, -std::numeric_limits<float>::infinity()}});
  const torch::Tensor weights = rows({{0.5, 2.0, std::numeric_limits<float>::quiet_NaN()}});
  const torch::Tensor advantage = rows({{1.0, -1.0, 7.0}});
  const torch::Tensor mask = rows({{1, 1, 0}});
  for (bool clipped : {false, true}) {
    PolicyLossOptions options;
    options.clipped = clipped;
    const torch::Tensor logp = logp0.clone().requires_grad_(true);
    const LossOutput out = policy_gradient_loss(logp, logp0, advantage, weights, mask, options);
    out.loss.backward();
    EXPECT_TRUE(torch::isfinite(logp.grad()).all().item<bool>()) << logp.grad();
    EXPECT_EQ(item(logp.grad()[0][2]), 0.0);
    EXPECT_DOUBLE_EQ(item(out.metrics.at("actor/importance_weight_mean")), 1.25);
    EXPECT_DOUBLE_EQ(item(out.metrics.at("actor/importance_weight_max")), 2.0);
    // −(0.5·1·∇ + 2·(−1)·∇) / 2
    expect_close(logp.grad(), rows({{-0.25, 1.0, 0.0}}), 1e-7);
  }
}

TEST(GopdSampledTokenLoss, ComposesAdvantageWeightsAndMetrics) {
  const AdvantageCase c;
  const torch::Tensor logp = c.old.clone().requires_grad_(true);
  const torch::Tensor rollout = c.old - rows({{0.0, std::log(2.0), 0.0}, {3.0, 0.0, 0.0}});
  GopdLossOptions options;
  const torch::Tensor lambda = torch::full({2}, 1.25);
  const LossOutput out = gopd_sampled_token_loss(logp, {c.teacher, c.reference, c.old}, lambda,
                                                 rollout, c.mask, options);
  out.loss.backward();
  const torch::Tensor advantage = rows({{0.75, -1.125, 0.125}, {0.5625, -1.125, 0.0}});
  const torch::Tensor weights = rows({{1.0, 2.0, 1.0}, {5.0, 1.0, 1.0}});  // e^3 capped at 5
  const torch::Tensor mask = c.mask;
  expect_close(logp.grad(), -(weights * advantage * mask) / 5.0, 1e-6);
  const double advantage_mean = (0.75 - 1.125 + 0.125 + 0.5625 - 1.125) / 5;
  EXPECT_NEAR(item(out.metrics.at("gopd/advantage_mean")), advantage_mean, 1e-6);
  const torch::Tensor deviation = (advantage - advantage_mean) * mask;
  EXPECT_NEAR(item(out.metrics.at("gopd/advantage_std")),
              std::sqrt(item(deviation.square().sum()) / 5), 1e-6);
  EXPECT_NEAR(item(out.metrics.at("gopd/reverse_kl_estimate")),
              item(((c.old - c.teacher) * mask).sum()) / 5, 1e-6);
  EXPECT_NEAR(item(out.metrics.at("gopd/reward_mean")),
              item((1.25 * (c.teacher - c.reference) * mask).sum()) / 5, 1e-6);
  EXPECT_NEAR(item(out.metrics.at("actor/importance_weight_max")), 5.0, 1e-6);
  for (const auto& [key, value] : out.metrics) {
    EXPECT_FALSE(value.requires_grad()) << key;
    EXPECT_EQ(value.dim(), 0) << key;
  }
}

// ---------------------------------------------------------------------------------------
// Full-vocabulary and top-k G-OPD

// Independent composite (fp64): Σ_v p_v (log p_v − log q_v), log q = log_softmax(λ·lt + (1−λ)·lr).
torch::Tensor composite_kl(const torch::Tensor& student, const torch::Tensor& teacher,
                           const torch::Tensor& reference, double lambda, double temperature) {
  const torch::Tensor log_p = torch::log_softmax(student.to(torch::kDouble) / temperature, -1);
  const torch::Tensor log_t = torch::log_softmax(teacher.to(torch::kDouble) / temperature, -1);
  torch::Tensor target = log_t;
  if (reference.defined()) {
    const torch::Tensor log_r = torch::log_softmax(reference.to(torch::kDouble) / temperature, -1);
    target = lambda * log_t + (1.0 - lambda) * log_r;
  }
  const torch::Tensor log_q = torch::log_softmax(target, -1);
  return (log_p.exp() * (log_p - log_q)).sum(-1);  // (B, T)
}

// token_mean and seq_mean_token_sum written out by hand over a (B, T) mask.
torch::Tensor composite_agg(const torch::Tensor& per_token, const torch::Tensor& mask,
                            LossAgg agg) {
  const torch::Tensor m = mask.to(per_token.scalar_type());
  if (agg == LossAgg::token_mean) return (per_token * m).sum() / m.sum();
  return (per_token * m).sum() / (m.sum(1) > 0).sum().to(per_token.scalar_type());
}

TEST(GopdFullVocabLoss, FusedReferenceAndCompositeAgree) {
  torch::manual_seed(11);
  const int64_t batch = 2, length = 3, vocab = 11;
  const torch::Tensor student0 = torch::randn({batch, length, vocab}) * 2.0;
  const torch::Tensor teacher = torch::randn({batch, length, vocab}) * 2.0;
  const torch::Tensor reference = torch::randn({batch, length, vocab}) * 2.0;
  const torch::Tensor mask = rows({{1, 1, 1}, {1, 0, 0}});
  struct Case {
    double lambda;
    bool with_reference;
    LossAgg agg;
  };
  for (const Case& k :
       {Case{1.25, true, LossAgg::token_mean}, Case{0.5, true, LossAgg::seq_mean_token_sum},
        Case{1.0, false, LossAgg::token_mean}}) {
    const double temperature = 0.7;
    const torch::Tensor ref = k.with_reference ? reference : torch::Tensor();
    std::vector<torch::Tensor> losses, grads;
    for (kernels::Impl impl : {kernels::Impl::fused, kernels::Impl::reference}) {
      const torch::Tensor student = student0.clone().requires_grad_(true);
      const LossOutput out =
          gopd_full_vocab_loss(student, teacher, ref, k.lambda, temperature, mask, k.agg, impl);
      out.loss.backward();
      EXPECT_EQ(item(out.metrics.at("loss/gopd_kl")), item(out.loss));
      losses.push_back(out.loss.detach());
      grads.push_back(student.grad());
    }
    const torch::Tensor student = student0.to(torch::kDouble).requires_grad_(true);
    const torch::Tensor expected_loss =
        composite_agg(composite_kl(student, teacher, ref, k.lambda, temperature), mask, k.agg);
    expected_loss.backward();
    const double scale = student.grad().abs().max().item<double>();
    for (size_t i = 0; i < losses.size(); ++i) {
      EXPECT_NEAR(item(losses[i]), item(expected_loss), 1e-5 * std::max(1.0, item(expected_loss)));
      expect_close(grads[i], student.grad(), 3e-5 * scale);
      // Padding positions get exactly zero gradient.
      EXPECT_EQ(grads[i][1].slice(0, 1).abs().max().item<double>(), 0.0);
    }
    expect_close(grads[0], grads[1], 3e-5 * scale);
  }
  EXPECT_THROW(gopd_full_vocab_loss(student0, teacher, torch::Tensor(), 1.25, 1.0, mask,
                                    LossAgg::token_mean, kernels::Impl::fused),
               std::invalid_argument);
}

// The sampled-token and full-vocabulary objectives are one objective: the expected
// sampled-token gradient over the student's own distribution, Σ_v π(v)·A(v)·∇log π(v), is
// −∇KL(π ‖ q) with q ∝ π_T^λ·π_ref^(1−λ) — which ties λ's place in the advantage and the
// temperature handling (every log-prob at T) of both paths together. At λ = 1.25, T = 0.7.
TEST(GopdSampledToken, ExpectedGradientIsTheFullVocabularyKlGradient) {
  torch::manual_seed(7);
  const int64_t vocab = 13;
  const double lambda = 1.25;
  const double temperature = 0.7;
  const torch::Tensor z = (torch::randn({1, 1, vocab}, torch::kDouble) * 2.0).requires_grad_(true);
  const torch::Tensor teacher = torch::randn({1, 1, vocab}, torch::kDouble) * 2.0;
  const torch::Tensor reference = torch::randn({1, 1, vocab}, torch::kDouble) * 2.0;
  const torch::Tensor mask = torch::ones({1, 1}, torch::kDouble);

  // Full vocabulary: the fused kernel's KL, differentiated in the student's logits.
  gopd_full_vocab_loss(z.to(torch::kFloat), teacher.to(torch::kFloat), reference.to(torch::kFloat), lambda,
                       temperature, mask.to(torch::kFloat), LossAgg::token_mean, kernels::Impl::fused)
      .loss.backward();
  const torch::Tensor kl_gradient = z.grad().clone().view({vocab});
  z.grad().zero_();

  // Sampled-token: every vocabulary entry as a "sampled" token (one row each), its advantage
  // from gopd_advantage, weighted by π(v) — the expectation over the student's samples.
  const torch::Tensor logp = torch::log_softmax(z.view({vocab}) / temperature, 0);  // (V)
  GopdTokenLogprobs logprobs;
  logprobs.teacher = torch::log_softmax(teacher.view({vocab}) / temperature, 0).view({vocab, 1});
  logprobs.reference = torch::log_softmax(reference.view({vocab}) / temperature, 0).view({vocab, 1});
  logprobs.old = logp.detach().view({vocab, 1});
  const torch::Tensor advantage =
      gopd_advantage(logprobs, torch::full({vocab}, lambda, torch::kDouble), torch::ones({vocab, 1})).view({vocab});
  (logp.detach().exp() * advantage.to(torch::kDouble) * logp).sum().backward();
  const torch::Tensor expected_gradient = z.grad().view({vocab});
  expect_close(-kl_gradient, expected_gradient, 2e-5);
  EXPECT_GT(expected_gradient.abs().max().item<double>(), 1e-2);  // not a trivial zero
}

TEST(GopdTopK, HelperReturnsTheTeachersTopTokens) {
  torch::manual_seed(5);
  const torch::Tensor teacher = torch::randn({2, 3, 13}) * 3.0;    // (2, 3, 13)
  const torch::Tensor reference = torch::randn({2, 3, 13}) * 3.0;  // (2, 3, 13)
  const double temperature = 0.8;
  const TopK top = teacher_top_k(teacher, reference, 4, temperature);
  const torch::Tensor teacher_lp = torch::log_softmax(teacher / temperature, -1);
  const auto [values, ids] = teacher_lp.topk(4, -1);
  EXPECT_TRUE(torch::equal(top.ids, ids));
  expect_close(top.teacher_logprobs, values, 1e-6);
  expect_close(top.reference_logprobs,
               torch::log_softmax(reference / temperature, -1).gather(-1, ids), 1e-6);
  EXPECT_FALSE(teacher_top_k(teacher, torch::Tensor(), 2, 1.0).reference_logprobs.defined());
  EXPECT_THROW(teacher_top_k(teacher, reference, 14, 1.0), std::invalid_argument);
}

TEST(GopdTopK, LossWithAllTokensMatchesFullVocabulary) {
  // k = V leaves an empty tail: the top-k KL is the full KL up to the tail floor (~1e-6).
  torch::manual_seed(3);
  const int64_t vocab = 9;
  const torch::Tensor student0 = torch::randn({2, 3, vocab});
  const torch::Tensor teacher = torch::randn({2, 3, vocab});
  const torch::Tensor reference = torch::randn({2, 3, vocab});
  const torch::Tensor mask = rows({{1, 1, 0}, {1, 1, 1}});
  const TopK top = teacher_top_k(teacher, reference, vocab, 1.0);
  const torch::Tensor expected = composite_agg(
      composite_kl(student0, teacher, reference, 1.25, 1.0), mask, LossAgg::token_mean);
  for (kernels::Impl impl : {kernels::Impl::fused, kernels::Impl::reference}) {
    const LossOutput out =
        gopd_top_k_loss(student0.clone().requires_grad_(true), top.ids, top.teacher_logprobs,
                        top.reference_logprobs, 1.25, 1.0, mask, LossAgg::token_mean, impl);
    EXPECT_NEAR(item(out.loss), item(expected), 1e-4);
    EXPECT_NEAR(item(out.metrics.at("gopd/top_k_teacher_mass")), 1.0, 1e-5);
  }
}

TEST(GopdTopK, FusedMatchesReference) {
  torch::manual_seed(4);
  const torch::Tensor student0 = torch::randn({2, 4, 17}) * 2.0;
  const TopK top = teacher_top_k(torch::randn({2, 4, 17}) * 2.0, torch::randn({2, 4, 17}), 5, 0.9);
  const torch::Tensor mask = rows({{1, 1, 1, 0}, {1, 0, 0, 0}});
  std::vector<torch::Tensor> losses, grads;
  for (kernels::Impl impl : {kernels::Impl::fused, kernels::Impl::reference}) {
    const torch::Tensor student = student0.clone().requires_grad_(true);
    const LossOutput out =
        gopd_top_k_loss(student, top.ids, top.teacher_logprobs, top.reference_logprobs, 1.25, 0.9,
                        mask, LossAgg::seq_mean_token_mean, impl);
    out.loss.backward();
    losses.push_back(out.loss.detach());
    grads.push_back(student.grad());
    EXPECT_EQ(student.grad()[1].slice(0, 1).abs().max().item<double>(), 0.0);
  }
  EXPECT_NEAR(item(losses[0]), item(losses[1]), 1e-5 * std::max(1.0, item(losses[1])));
  expect_close(grads[0], grads[1], 3e-5 * grads[1].abs().max().item<double>());
  EXPECT_THROW(gopd_top_k_loss(student0, top.ids, top.teacher_logprobs, torch::Tensor(), 1.25, 1.0,
                               mask, LossAgg::token_mean, kernels::Impl::fused),
               std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// SFT

TEST(SftLoss, EqualsCrossEntropyOnMaskedTokens) {
  torch::manual_seed(9);
  const int64_t batch = 2, length = 4, vocab = 9;
  const torch::Tensor logits0 = torch::randn({batch, length, vocab}) * 2.0;
  torch::Tensor targets = torch::randint(vocab, {batch, length}, torch::kLong);
  const torch::Tensor mask = rows({{0, 1, 1, 1}, {0, 0, 1, 0}});
  targets[0][0] = -100;  // prompt / padding targets are ignored whatever they hold
  targets[1][3] = -100;
  targets[1][2] = logits0[1][2].argmax().item<int64_t>();  // at least one correct token

  const torch::Tensor selected = mask.reshape({-1}).nonzero().squeeze(1);  // (4)
  const torch::Tensor expected_logits = logits0.clone().requires_grad_(true);
  const torch::Tensor expected = torch::nn::functional::cross_entropy(
      expected_logits.reshape({-1, vocab}).index_select(0, selected),
      targets.reshape({-1}).index_select(0, selected));
  expected.backward();
  const double expected_accuracy =
      (logits0.argmax(-1) == targets).to(torch::kFloat).mul(mask).sum().item<double>() / 4;
  EXPECT_GE(expected_accuracy, 0.25);

  for (kernels::Impl impl : {kernels::Impl::fused, kernels::Impl::reference}) {
    const torch::Tensor logits = logits0.clone().requires_grad_(true);
    const LossOutput out = sft_loss(logits, targets, mask, LossAgg::token_mean, impl);
    out.loss.backward();
    EXPECT_NEAR(item(out.loss), item(expected), 1e-6);
    EXPECT_EQ(item(out.metrics.at("loss/sft")), item(out.loss));
    EXPECT_DOUBLE_EQ(item(out.metrics.at("sft/token_accuracy")), expected_accuracy);
    expect_close(logits.grad(), expected_logits.grad(), 1e-6);
  }
  EXPECT_THROW(
      sft_loss(logits0, targets.to(torch::kInt), mask, LossAgg::token_mean, kernels::Impl::fused),
      std::invalid_argument);
}

}  // namespace
}  // namespace gopd::objective
