// bf16 autocast (train.precision: bf16) on the CPU, the device every machine has: the student's
// forward and backward under model::AutocastGuard stay close to fp32 — the stated tolerance —
// while the parameters and their gradients stay fp32 (master weights); autocast really runs
// (the result is not the fp32 one); activation checkpointing recomputes under the forward's
// autocast (so its gradients equal the plain autocast backward, not an fp32 recomputation); the
// guard restores the previous state and nests, and an off guard switches autocast off inside an
// autocast region.
//
// Tolerance: token log-probs within 0.1 nats and gradients within 5% of the largest gradient
// entry (bf16 keeps 8 bits of mantissa, 2^-8 ≈ 0.4% per rounding, accumulated over a few
// layers of a random model whose logits span tens of nats).
#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>

#include "gopd/kernels/logit_head.h"
#include "gopd/model/autocast.h"
#include "gopd/model/transformer.h"

namespace {

using namespace gopd;

struct Result {
  torch::Tensor logprobs;  // (B, T − 1) of the next tokens
  std::vector<torch::Tensor> grads;
};

model::Transformer tiny_model(uint64_t seed) {
  model::ModelConfig config = model::model_config_for("qwen3", 37, 32, 3, 4, 2, 48);
  torch::manual_seed(seed);
  model::Transformer model(config);
  model::initialize_weights(model);
  torch::NoGradGuard no_grad;
  for (auto& parameter : model->parameters()) {
    if (parameter.dim() == 2) parameter.mul_(10.0);  // logits of a few nats, not ~0
  }
  return model;
}

// The student's training computation: hidden states → a head → log-probs of the next tokens,
// weighted per position; the forward under `autocast`, the backward outside it (as the updater).
Result run(model::Transformer& model, bool autocast, bool checkpointing) {
  model->set_activation_checkpointing(checkpointing);
  model->zero_grad();
  const torch::Tensor ids =
      torch::tensor({{0, 0, 5, 9, 3, 7, 2}, {4, 8, 1, 2, 6, 3, 30}, {0, 0, 0, 2, 11, 13, 17}});
  const torch::Tensor mask = ids.ne(0).to(torch::kLong);  // (3, 7)
  torch::Tensor logprobs;
  {
    const model::AutocastGuard guard(torch::kCPU, autocast);
    kernels::LogitHead head;
    head.hidden = model->hidden_states(ids, mask).narrow(1, 0, 6);
    head.weight = model->output_weight();
    head.compute_dtype = autocast ? torch::kBFloat16 : torch::kFloat;
    head.chunk_rows = 5;
    logprobs = kernels::token_logprobs(head, ids.narrow(1, 1, 6), 1.0, false,
                                       kernels::Impl::fused)
                   .logprobs;  // (3, 6)
  }
  EXPECT_EQ(logprobs.scalar_type(), torch::kFloat);
  const torch::Tensor weights = torch::linspace(0.5, 1.5, logprobs.numel()).view(logprobs.sizes());
  (logprobs * weights * mask.narrow(1, 1, 6)).sum().backward();
  Result result{logprobs.detach() * mask.narrow(1, 1, 6), {}};
  for (const torch::Tensor& parameter : model->parameters()) {
    EXPECT_EQ(parameter.scalar_type(), torch::kFloat);
    EXPECT_EQ(parameter.grad().scalar_type(), torch::kFloat);  // fp32 master gradients
    result.grads.push_back(parameter.grad().clone());
  }
  return result;
}

double max_abs(const torch::Tensor& tensor) { return tensor.abs().max().item<double>(); }

TEST(MixedPrecision, Bf16AutocastOnCpuStaysWithinToleranceOfFp32) {
  model::Transformer model = tiny_model(7);
  const Result fp32 = run(model, false, false);
  const Result bf16 = run(model, true, false);
  const double logprob_gap = max_abs(bf16.logprobs - fp32.logprobs);
  EXPECT_LT(logprob_gap, 0.1);
  EXPECT_GT(logprob_gap, 0.0) << "autocast did not change anything: was it on?";
  EXPECT_GT(max_abs(fp32.logprobs), 1.0);  // the comparison is not between near-zero numbers
  ASSERT_EQ(fp32.grads.size(), bf16.grads.size());
  for (size_t i = 0; i < fp32.grads.size(); ++i) {
    const double scale = max_abs(fp32.grads[i]);
    ASSERT_GT(scale, 0.0) << "parameter " << i;
    EXPECT_LT(max_abs(bf16.grads[i] - fp32.grads[i]), 0.05 * scale) << "parameter " << i;
  }
}

TEST(MixedPrecision, CheckpointedLayersRecomputeUnderTheForwardsAutocast) {
  model::Transformer model = tiny_model(8);
  const Result plain = run(model, true, false);
  const Result recomputed = run(model, true, true);
  const Result fp32 = run(model, false, false);
  EXPECT_TRUE(torch::equal(plain.logprobs, recomputed.logprobs));
  for (size_t i = 0; i < plain.grads.size(); ++i) {
    const double scale = max_abs(plain.grads[i]);
    // Equal up to summation order — far closer than the bf16-vs-fp32 gap, which is what an
    // fp32 recomputation would leave.
    const double gap = max_abs(recomputed.grads[i] - plain.grads[i]);
    EXPECT_LE(gap, 1e-5 * scale) << "parameter " << i;
    if (i == 0) {
      EXPECT_GT(max_abs(fp32.grads[i] - plain.grads[i]), 100 * gap + 1e-12);
    }
  }
}

TEST(MixedPrecision, GuardRestoresThePreviousStateAndNests) {
  ASSERT_FALSE(at::autocast::is_autocast_enabled(torch::kCPU));
  {
    const model::AutocastGuard outer(torch::kCPU, true);
    EXPECT_TRUE(model::autocast_enabled(torch::kCPU));
    EXPECT_EQ(model::autocast_dtype(torch::kCPU), torch::kBFloat16);
    {
      const model::AutocastGuard inner(torch::kCPU, true);
      EXPECT_TRUE(model::autocast_enabled(torch::kCPU));
    }
    EXPECT_TRUE(model::autocast_enabled(torch::kCPU));  // the inner guard left the outer on
    const torch::Tensor a = torch::randn({4, 4});
    EXPECT_EQ(torch::matmul(a, a).scalar_type(), torch::kBFloat16);
    {
      // An off guard inside an autocast region (a frozen fp32 model scored during the
      // student's forward) switches autocast off, and back on after.
      const model::AutocastGuard off(torch::kCPU, false);
      EXPECT_FALSE(model::autocast_enabled(torch::kCPU));
      EXPECT_EQ(torch::matmul(a, a).scalar_type(), torch::kFloat);
    }
    EXPECT_TRUE(model::autocast_enabled(torch::kCPU));
    EXPECT_EQ(torch::matmul(a, a).scalar_type(), torch::kBFloat16);
  }
  EXPECT_FALSE(model::autocast_enabled(torch::kCPU));
  {
    const model::AutocastGuard off(torch::kCPU, false);  // does nothing
    EXPECT_FALSE(model::autocast_enabled(torch::kCPU));
  }
  const torch::Tensor a = torch::randn({4, 4});
  EXPECT_EQ(torch::matmul(a, a).scalar_type(), torch::kFloat);
}

}  // namespace
