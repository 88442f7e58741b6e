// The trainer's batched log-prob passes (scoring::response_logprobs, scoring::prompt_logprobs)
// against a naive forward of each sequence alone, unpadded: ragged prompts and responses,
// left-padded prompts, micro-batches that split the batch unevenly, a temperature other than
// 1, padded vocabularies cut to the tokenizer's width, fused and reference kernels.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "gopd/model/transformer.h"
#include "gopd/scoring/sequence_logprobs.h"
#include "gopd/scoring/sequences.h"

namespace {

using namespace gopd;

model::Transformer tiny_model() {
  model::ModelConfig c = model::model_config_for("qwen3", 61, 32, 2, 4, 2, 64);
  c.tie_word_embeddings = false;
  torch::manual_seed(5);
  model::Transformer model(c);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    item.value().copy_(item.key().find("norm") != std::string::npos ? 1.0 + 0.3 * torch::randn_like(item.value())
                                                                     : 0.3 * torch::randn_like(item.value()));
  }
  model->eval();
  return model;
}

// log π(tokens[j] | tokens[<j]) of one sequence alone, at `temperature`, over the first
// `width` logits (0 = all): a plain forward, no padding, no batching.
std::vector<double> naive(model::Transformer& model, const std::vector<int64_t>& tokens, double temperature,
                          int64_t width) {
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = torch::tensor(tokens, torch::kLong).unsqueeze(0);  // (1, L)
  torch::Tensor logits = model->forward(ids, torch::ones_like(ids))[0].to(torch::kDouble);  // (L, V)
  if (width > 0) logits = logits.narrow(-1, 0, width);
  const torch::Tensor logp = torch::log_softmax(logits / temperature, -1);
  std::vector<double> out(tokens.size(), 0.0);
  for (size_t j = 1; j < tokens.size(); ++j) out[j] = logp[int64_t(j) - 1][tokens[j]].item<double>();
  return out;
}

const std::vector<std::vector<int64_t>> kPrompts = {{3, 17, 9, 40, 22}, {8}, {11, 12}, {5, 6, 7, 30}, {44, 2, 19}};
const std::vector<std::vector<int64_t>> kResponses = {{4, 4, 50}, {9, 10, 11, 12, 13}, {1}, {20, 21}, {33, 34, 35, 36}};

TEST(ScoringPasses, ResponseLogprobsMatchEachSequenceAlone) {
  model::Transformer model = tiny_model();
  const scoring::TrainingSequences s = scoring::pair_sequences(kPrompts, kResponses, 0);
  for (const double temperature : {1.0, 0.7}) {
    for (const int64_t width : {int64_t(0), int64_t(57)}) {
      for (const kernels::Impl impl : {kernels::Impl::fused, kernels::Impl::reference}) {
        for (const int64_t micro : {int64_t(0), int64_t(2), int64_t(4)}) {
          // lm_head in chunks of 3 rows (they split responses) with micro-batches of 2 and 4.
          const int64_t chunk = micro == 0 ? 0 : 3;
          SCOPED_TRACE("T " + std::to_string(temperature) + " width " + std::to_string(width) + " micro " +
                       std::to_string(micro) + (impl == kernels::Impl::fused ? " fused" : " reference"));
          const torch::Tensor batched = scoring::response_logprobs(
              model, s.input_ids, s.attention_mask, s.targets, s.prompt_length, temperature, micro, width, chunk, impl);
          ASSERT_EQ(batched.sizes(), s.targets.sizes());
          for (size_t r = 0; r < kPrompts.size(); ++r) {
            std::vector<int64_t> whole = kPrompts[r];
            whole.insert(whole.end(), kResponses[r].begin(), kResponses[r].end());
            const std::vector<double> expected = naive(model, whole, temperature, width);
            for (size_t t = 0; t < kResponses[r].size(); ++t) {
              EXPECT_NEAR(batched[int64_t(r)][int64_t(t)].item<double>(), expected[kPrompts[r].size() + t], 2e-5)
                  << "row " << r << " token " << t;
            }
          }
        }
      }
    }
  }
}

TEST(ScoringPasses, PromptLogprobsMatchEachPromptAlone) {
  model::Transformer model = tiny_model();
  for (const int64_t width : {int64_t(0), int64_t(57)}) {
    for (const int64_t micro : {int64_t(0), int64_t(2), int64_t(3)}) {
      SCOPED_TRACE("width " + std::to_string(width) + " micro " + std::to_string(micro));
      const std::vector<std::vector<double>> batched = scoring::prompt_logprobs(model, kPrompts, 1, micro, width);
      ASSERT_EQ(batched.size(), kPrompts.size());
      for (size_t i = 0; i < kPrompts.size(); ++i) {
        const std::vector<double> expected = naive(model, kPrompts[i], 1.0, width);
        ASSERT_EQ(batched[i].size(), expected.size());
        EXPECT_EQ(batched[i][0], 0.0);
        for (size_t j = 1; j < expected.size(); ++j) {
          EXPECT_NEAR(batched[i][j], expected[j], 2e-5) << "prompt " << i << " token " << j;
        }
      }
    }
  }
}

}  // namespace
