// SDPA attention (at::scaled_dot_product_attention) against the explicit reference path: the
// logits of every real position and every parameter's gradient of a loss over real positions,
// on ragged left- and right-padded batches of each family (grouped-query and plain heads, one
// fully padded query row per sequence and more), fp32 and bf16 weights; and KV-cache decoding
// (chunked prefill, then one token at a time) against the explicit path's.
//
// Tolerances: fp32, logits ≤ 1e-5 · max(|logit|, 1) and gradients ≤ 1e-4 · max |g| (the fused
// kernel sums in another order); bf16 weights, logits ≤ 3e-2 · max(|logit|, 1) (one bf16
// rounding of the attention output differs).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gopd/model/transformer.h"

namespace gopd {
namespace {

model::Transformer make_model(const std::string& family, int64_t heads, int64_t kv_heads,
                              uint64_t seed) {
  model::ModelConfig config = model::model_config_for(family, 29, 32, 2, heads, kv_heads, 40);
  torch::manual_seed(seed);
  model::Transformer model(config);
  model::initialize_weights(model);
  torch::NoGradGuard no_grad;
  for (auto& parameter : model->parameters()) {
    if (parameter.dim() == 2) parameter.mul_(8.0);  // sharp attention, logits of a few nats
  }
  return model;
}

// Left-padded prompts of different lengths and right padding after short responses.
struct Batch {
  torch::Tensor ids = torch::tensor({{0, 0, 0, 5, 9, 3, 7, 2},
                                     {4, 8, 1, 2, 6, 3, 11, 0},
                                     {0, 0, 0, 0, 0, 2, 13, 17},
                                     {0, 12, 3, 3, 3, 0, 0, 0}});  // (4, 8)
  torch::Tensor mask = ids.ne(0).to(torch::kLong);
};

double max_abs(const torch::Tensor& tensor) { return tensor.abs().max().item<double>(); }

struct Outcome {
  torch::Tensor logits;  // (B, T, V) fp32, zero at padding
  std::vector<torch::Tensor> grads;
};

Outcome run(model::Transformer& model, model::AttentionKernel kernel, bool backward) {
  model->set_attention(kernel);
  model->zero_grad();
  const Batch batch;
  const torch::Tensor real = batch.mask.unsqueeze(-1).to(torch::kFloat);
  const torch::Tensor logits = model->forward(batch.ids, batch.mask).to(torch::kFloat) * real;
  Outcome result{logits.detach(), {}};
  if (backward) {
    const torch::Tensor weights = torch::linspace(-1, 1, logits.numel()).view(logits.sizes());
    (logits.log_softmax(-1) * weights * real).sum().backward();
    for (const auto& parameter : model->parameters())
      result.grads.push_back(parameter.grad().clone());
  }
  EXPECT_FALSE(torch::isnan(logits).any().item<bool>());
  return result;
}

TEST(AttentionParity, SdpaEqualsExplicitOnRealPositionsWithGradients) {
  struct Shape {
    std::string family;
    int64_t heads, kv_heads;
  };
  for (const Shape& shape : {Shape{"qwen3", 4, 2}, Shape{"llama", 4, 4}, Shape{"qwen2", 4, 1}}) {
    const std::string what = shape.family + " heads " + std::to_string(shape.heads) + "/" +
                             std::to_string(shape.kv_heads);
    model::Transformer model = make_model(shape.family, shape.heads, shape.kv_heads, 3);
    const Outcome reference = run(model, model::AttentionKernel::explicit_softmax, true);
    const Outcome fused = run(model, model::AttentionKernel::sdpa, true);
    const double scale = std::max(1.0, max_abs(reference.logits));
    EXPECT_LE(max_abs(fused.logits - reference.logits), 1e-5 * scale) << what;
    ASSERT_EQ(fused.grads.size(), reference.grads.size());
    for (size_t i = 0; i < fused.grads.size(); ++i) {
      const double grad_scale = max_abs(reference.grads[i]);
      ASSERT_GT(grad_scale, 0.0) << what << " parameter " << i;
      EXPECT_LE(max_abs(fused.grads[i] - reference.grads[i]), 1e-4 * grad_scale)
          << what << " parameter " << i;
    }
  }
}

TEST(AttentionParity, SdpaEqualsExplicitInBf16) {
  model::Transformer model = make_model("qwen3", 4, 2, 4);
  model->to(torch::kBFloat16);
  torch::NoGradGuard no_grad;
  const Outcome reference = run(model, model::AttentionKernel::explicit_softmax, false);
  const Outcome fused = run(model, model::AttentionKernel::sdpa, false);
  EXPECT_LE(max_abs(fused.logits - reference.logits),
            3e-2 * std::max(1.0, max_abs(reference.logits)));
}

// Chunked prefill of left-padded prompts, then decoding step by step with the KV cache.
TEST(AttentionParity, KvCacheDecodingWithSdpaEqualsExplicit) {
  model::Transformer model = make_model("qwen3", 4, 2, 5);
  torch::NoGradGuard no_grad;
  const torch::Tensor prompts = torch::tensor({{0, 0, 5, 9, 3}, {4, 8, 1, 2, 6}, {0, 0, 0, 0, 2}});
  const torch::Tensor prompt_mask = prompts.ne(0);
  const torch::Tensor positions = (prompt_mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
  const torch::Tensor next = torch::tensor({{7}, {11}, {13}});
  std::vector<torch::Tensor> outputs[2];
  for (const auto kernel :
       {model::AttentionKernel::explicit_softmax, model::AttentionKernel::sdpa}) {
    model->set_attention(kernel);
    model->set_fused_decode(false);  // the plain decode path under both kernels
    auto& out = outputs[kernel == model::AttentionKernel::sdpa ? 1 : 0];
    model::KVCache cache =
        model::KVCache::allocate(model->config(), 3, 9, torch::kFloat, torch::kCPU);
    torch::Tensor key_mask = torch::zeros({3, 9}, torch::kBool);
    key_mask.narrow(1, 0, 5).copy_(prompt_mask);
    for (int64_t start = 0; start < 5; start += 3) {  // prefill chunks of 3 and 2
      const int64_t size = std::min<int64_t>(3, 5 - start);
      out.push_back(model
                        ->forward_cached(prompts.narrow(1, start, size),
                                         positions.narrow(1, start, size),
                                         key_mask.narrow(1, 0, start + size), cache)
                        .select(1, size - 1));
    }
    torch::Tensor position = prompt_mask.to(torch::kLong).sum(1, true);
    for (int64_t t = 0; t < 3; ++t) {
      key_mask.select(1, cache.length).fill_(true);
      out.push_back(
          model->forward_cached(next + t, position, key_mask.narrow(1, 0, cache.length + 1), cache)
              .select(1, 0));
      position = position + 1;
    }
  }
  ASSERT_EQ(outputs[0].size(), outputs[1].size());
  // Row 2's first prefill chunk is all padding: its logits are not a real position's.
  for (size_t i = 0; i < outputs[0].size(); ++i) {
    torch::Tensor gap = (outputs[1][i] - outputs[0][i]).abs();
    if (i == 0) gap = gap.narrow(0, 0, 2);
    EXPECT_LE(gap.max().item<double>(), 1e-5 * std::max(1.0, max_abs(outputs[0][i])))
        << "output " << i;
  }
}

}  // namespace
}  // namespace gopd
