// The fused decode step (kernels/decode_ops.h: one token per row against the KV cache, CPU
// fp32, no gradients) against the model's plain LibTorch path, on awkward shapes: grouped-query
// heads with 3 query heads per kv head, a single kv head, plain heads; qk-norm (qwen3), qkv bias
// (qwen2), untied head (llama); left-padded prompts of different lengths; a key mask with a row
// stride wider than the cache; rows leaving the batch mid-way; a row that sees no key at all.
// Values only: the fused path never runs with gradients on (asserted below).
//
// Tolerance: logits and cached keys/values ≤ 1e-5 · max(|reference|, 1) (sums in another order).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "gopd/kernels/decode_ops.h"
#include "gopd/model/transformer.h"
#include "gopd/rollout/rollout_engine.h"

namespace gopd {
namespace {

model::Transformer make_model(const std::string& family, int64_t heads, int64_t kv_heads,
                              uint64_t seed) {
  // hidden 36: head_dim 6 with 6 heads, 12 with 3
  model::ModelConfig config = model::model_config_for(family, 31, 36, 2, heads, kv_heads, 44);
  torch::manual_seed(seed);
  model::Transformer model(config);
  model::initialize_weights(model);
  torch::NoGradGuard no_grad;
  for (auto& parameter : model->parameters()) {
    if (parameter.dim() == 2) parameter.mul_(8.0);  // sharp attention, logits of a few nats
    if (parameter.dim() == 1) parameter.add_(torch::randn_like(parameter) * 0.3);  // norms, biases
  }
  return model;
}

double max_abs(const torch::Tensor& tensor) { return tensor.abs().max().item<double>(); }

struct Trace {
  std::vector<torch::Tensor> logits;  // one (B, V) per decode step
  model::KVCache cache;
};

// Prefill three left-padded prompts, then six decode steps; after step 3 row 1 leaves the
// batch; at step 5 the remaining row 0 sees no key (its mask row is all false).
Trace decode(model::Transformer& model, bool fused) {
  model->set_fused_decode(fused);
  torch::NoGradGuard no_grad;
  const torch::Tensor prompts = torch::tensor({{0, 0, 5, 9, 3}, {4, 8, 1, 2, 6}, {0, 0, 0, 0, 2}});
  const torch::Tensor prompt_mask = prompts.ne(0);
  const torch::Tensor positions = (prompt_mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
  Trace trace;
  trace.cache = model::KVCache::allocate(model->config(), 3, 11, torch::kFloat, torch::kCPU);
  // wider than the cache: the mask handed to the model is a strided view of it
  torch::Tensor key_mask = torch::zeros({3, 16}, torch::kBool);
  key_mask.narrow(1, 0, 5).copy_(prompt_mask);
  model->forward_cached(prompts, positions, key_mask.narrow(1, 0, 5), trace.cache);
  torch::Tensor position = prompt_mask.to(torch::kLong).sum(1, true);
  torch::Tensor next = torch::tensor({{7}, {11}, {13}});
  for (int64_t t = 0; t < 6; ++t) {
    if (t == 3) {
      const torch::Tensor keep = torch::tensor({0, 2});
      trace.cache.select_rows(keep);
      key_mask = key_mask.index_select(0, keep);
      position = position.index_select(0, keep);
      next = next.index_select(0, keep);
    }
    key_mask.select(1, trace.cache.length).fill_(true);
    if (t == 5) key_mask[0].fill_(false);
    trace.logits.push_back(
        model->forward_cached(next, position, key_mask.narrow(1, 0, trace.cache.length + 1),
                              trace.cache)
            .select(1, 0)
            .clone());
    position = position + 1;
    next = (next * 3 + 1) % 31;
  }
  return trace;
}

TEST(DecodeFusedParity, MatchesTheReferencePathOnEveryFamily) {
  struct Shape {
    std::string family;
    int64_t heads, kv_heads;
  };
  for (const Shape& shape : {Shape{"qwen3", 6, 2}, Shape{"qwen2", 6, 1}, Shape{"llama", 3, 3}}) {
    const std::string what = shape.family + " heads " + std::to_string(shape.heads) + "/" +
                             std::to_string(shape.kv_heads);
    model::Transformer model = make_model(shape.family, shape.heads, shape.kv_heads, 11);
    const Trace reference = decode(model, false);
    EXPECT_EQ(model->fused_decode_steps(), 0) << what;
    const Trace fused = decode(model, true);
    EXPECT_EQ(model->fused_decode_steps(), 6) << what << ": every decode step is fused";
    ASSERT_EQ(fused.logits.size(), reference.logits.size());
    for (size_t i = 0; i < fused.logits.size(); ++i) {
      const double scale = std::max(1.0, max_abs(reference.logits[i]));
      EXPECT_GT(max_abs(reference.logits[i]), 0.5) << what << " step " << i << " is not trivial";
      EXPECT_LE(max_abs(fused.logits[i] - reference.logits[i]), 1e-5 * scale)
          << what << " step " << i;
    }
    for (size_t layer = 0; layer < fused.cache.keys.size(); ++layer) {
      for (const bool values : {false, true}) {
        const torch::Tensor& a = values ? fused.cache.values[layer] : fused.cache.keys[layer];
        const torch::Tensor& b = values ? reference.cache.values[layer] : reference.cache.keys[layer];
        EXPECT_LE(max_abs(a - b), 1e-5 * std::max(1.0, max_abs(b)))
            << what << " layer " << layer << (values ? " values" : " keys");
      }
    }
  }
}

TEST(DecodeFusedParity, NotTakenWithGradientsOrInBf16) {
  model::Transformer model = make_model("qwen3", 6, 2, 12);
  model::KVCache cache = model::KVCache::allocate(model->config(), 1, 4, torch::kFloat, torch::kCPU);
  const torch::Tensor mask = torch::ones({1, 1}, torch::kBool);
  // gradients on: the reference path, whose logits carry a graph
  const torch::Tensor logits = model->forward_cached(torch::tensor({{3}}), torch::tensor({{0}}), mask, cache);
  EXPECT_TRUE(logits.requires_grad());
  EXPECT_EQ(model->fused_decode_steps(), 0);
  model->to(torch::kBFloat16);
  torch::NoGradGuard no_grad;
  model::KVCache half = model::KVCache::allocate(model->config(), 1, 4, torch::kBFloat16, torch::kCPU);
  model->forward_cached(torch::tensor({{3}}), torch::tensor({{0}}), mask, half);
  EXPECT_EQ(model->fused_decode_steps(), 0);
}

// A whole greedy rollout draws the same tokens with nearly the same log-probabilities.
TEST(DecodeFusedParity, GreedyRolloutsDrawTheSameTokens) {
  model::Transformer model = make_model("qwen3", 6, 2, 13);
  rollout::GenerationParams params;
  params.sampling.temperature = 0.0;
  params.max_new_tokens = 20;
  params.n = 2;
  const std::vector<std::vector<int64_t>> prompts = {{5, 9, 3}, {4, 8, 1, 2, 6, 7}, {2}};
  model->set_fused_decode(false);
  const rollout::RolloutBatch reference = rollout::generate(model, prompts, params);
  model->set_fused_decode(true);
  const rollout::RolloutBatch fused = rollout::generate(model, prompts, params);
  EXPECT_GT(model->fused_decode_steps(), 0);
  EXPECT_TRUE(torch::equal(fused.response_ids, reference.response_ids));
  EXPECT_LE(max_abs(fused.response_logprobs - reference.response_logprobs), 1e-4);
}

TEST(DecodeFusedParity, BadOperandsNameTheOpAndOperand) {
  torch::Tensor cache = torch::zeros({2, 1, 4, 6});
  torch::Tensor values = torch::zeros({2, 1, 4, 6});
  const torch::Tensor q = torch::zeros({2, 12});
  const torch::Tensor kv = torch::zeros({2, 6});
  const torch::Tensor rot = torch::zeros({2, 6});
  const torch::Tensor mask = torch::ones({2, 4}, torch::kBool);
  try {
    kernels::decode_attention(q, kv, kv, {}, {}, 0.0, rot, rot, cache, values, 4, mask, 2);
    ADD_FAILURE() << "a full cache was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("decode_attention"), std::string::npos);
  }
  try {
    kernels::decode_attention(q, kv.to(torch::kDouble), kv, {}, {}, 0.0, rot, rot, cache, values, 1,
                              mask, 2);
    ADD_FAILURE() << "fp64 keys were accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("k must be"), std::string::npos) << error.what();
  }
  EXPECT_THROW(kernels::decode_attention(q, kv, kv, {}, {}, 0.0, rot, rot, cache, values, 1,
                                         mask.narrow(1, 0, 1), 2),
               std::invalid_argument);
  EXPECT_THROW(kernels::rms_norm(torch::zeros({2, 5}), torch::ones({4}), 1e-6), std::invalid_argument);
}

}  // namespace
}  // namespace gopd
