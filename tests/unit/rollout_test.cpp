// Rollout engine: KV-cache decoding against recompute-everything decoding, recorded
// sampler log-probs against a fresh scoring pass, truncated sampling statistics, stop
// tokens and stop strings, and shared-prompt-cache samples against independent prefills.
#include <gtest/gtest.h>

#include <map>
#include <torch/torch.h>

#include <cmath>

#include "gopd/model/transformer.h"
#include "gopd/rollout/rollout_engine.h"
#include "gopd/rollout/sampler.h"
#include "gopd/scoring/sequence_logprobs.h"

namespace gopd::rollout {
namespace {

model::Transformer tiny_model(uint64_t seed, int64_t vocab = 29) {
  const model::ModelConfig c = model::model_config_for("qwen3", vocab, 32, 2, 4, 2, 64);
  torch::manual_seed(seed);
  model::Transformer model(c);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0.0, 0.5);  // peaky, varied distributions
  return model;
}

const std::vector<std::vector<int64_t>> kPrompts = {{3, 7, 1, 9, 4, 4, 2}, {5}, {8, 8, 12}};

TEST(Rollout, GreedyWithCacheEqualsRecomputeOnRaggedBatch) {
  model::Transformer model = tiny_model(1);
  GenerationParams params;
  params.sampling.temperature = 0.0;
  params.max_new_tokens = 12;
  params.n = 2;
  const RolloutBatch cached = generate(model, kPrompts, params);
  const RolloutBatch recomputed = generate_without_cache(model, kPrompts, params);
  EXPECT_TRUE(torch::equal(cached.response_ids, recomputed.response_ids));
  EXPECT_TRUE(torch::equal(cached.response_mask, recomputed.response_mask));
  EXPECT_EQ(cached.response_ids.size(0), 6);
  EXPECT_EQ(cached.group_ids[5].item<int64_t>(), 2);
  EXPECT_EQ(cached.generated_tokens, 6 * 12);
  for (FinishReason reason : cached.finish_reasons) EXPECT_EQ(reason, FinishReason::kLength);
}

TEST(Rollout, SampledLogprobsEqualFreshScoring) {
  model::Transformer model = tiny_model(2);
  GenerationParams params;
  params.sampling.temperature = 1.0;
  params.sampling.top_p = 0.9;  // truncation must not change the recorded log-prob
  params.max_new_tokens = 10;
  params.n = 3;
  params.seed = 17;
  params.stop_token_ids = {0};
  const RolloutBatch batch = generate(model, kPrompts, params);
  const torch::Tensor ids = torch::cat({batch.prompt_ids, batch.response_ids}, 1);
  const torch::Tensor mask = torch::cat({batch.prompt_mask, batch.response_mask}, 1);
  const torch::Tensor fresh = scoring::sequence_logprobs(model, ids, mask);  // (B, P+T-1)
  const int64_t prompt_width = batch.prompt_ids.size(1);
  const torch::Tensor response_part = fresh.narrow(1, prompt_width - 1, batch.response_ids.size(1));
  const torch::Tensor valid = batch.response_mask.to(torch::kBool);
  const double error =
      (response_part - batch.response_logprobs).abs().masked_select(valid).max().item<double>();
  EXPECT_LT(error, 1e-5);
  EXPECT_GT(valid.sum().item<int64_t>(), 20);
}

// Continuous batching (params.max_active_rows): a few samples decode at once and finished ones
// are replaced by waiting samples. Each sample draws from its own generator, so the samples and
// their log-probs are those of the static batch — greedy and sampled, with stop tokens (samples
// of very different lengths), ragged prompts, n samples split across refills, chunked prefill.
TEST(Rollout, ContinuousBatchingGivesTheStaticBatchsSamples) {
  model::Transformer model = tiny_model(6);
  const std::vector<std::vector<int64_t>> prompts = {
      {3, 7, 1, 9, 4, 4, 2}, {5}, {8, 8, 12}, {2, 2}, {6, 1, 1, 1, 1, 1, 1, 1, 1, 3}, {4, 9}};
  for (const double temperature : {0.0, 1.0}) {
    GenerationParams params;
    params.sampling.temperature = temperature;
    params.max_new_tokens = 14;
    params.n = 3;
    params.seed = 23;
    params.stop_token_ids = {0, 1};  // frequent: lengths from 1 to 14
    const RolloutBatch reference = generate(model, prompts, params);
    const int64_t lengths = reference.response_mask.sum(1).max().item<int64_t>() -
                            reference.response_mask.sum(1).min().item<int64_t>();
    EXPECT_GT(lengths, 3) << "the samples should finish at different steps";
    for (const int64_t slots : {1, 2, 5, 17}) {
      for (const int64_t chunk : {0, 2}) {
        SCOPED_TRACE("T " + std::to_string(temperature) + " slots " + std::to_string(slots) +
                     " prefill chunk " + std::to_string(chunk));
        GenerationParams continuous = params;
        continuous.max_active_rows = slots;
        continuous.prefill_chunk = chunk;
        const RolloutBatch batch = generate(model, prompts, continuous);
        EXPECT_TRUE(torch::equal(batch.response_ids, reference.response_ids));
        EXPECT_TRUE(torch::equal(batch.response_mask, reference.response_mask));
        EXPECT_TRUE(torch::equal(batch.prompt_ids, reference.prompt_ids));
        EXPECT_TRUE(torch::equal(batch.group_ids, reference.group_ids));
        EXPECT_TRUE(torch::allclose(batch.response_logprobs, reference.response_logprobs, 1e-5, 1e-5));
        EXPECT_EQ(batch.generated_tokens, reference.generated_tokens);
        EXPECT_EQ(batch.finish_reasons, reference.finish_reasons);
      }
    }
  }
}

// on_row_finished (the served teachers' pipelining) sees every row exactly once, with the
// response the batch returns, in the order rows finish; it never changes what is sampled.
TEST(Rollout, RowFinishedSeesEachRowOnceWithItsFinalResponse) {
  model::Transformer model = tiny_model(6);
  const std::vector<std::vector<int64_t>> prompts = {{3, 7, 1, 9}, {5}, {8, 8, 12}, {2, 2, 6, 1, 1}};
  GenerationParams params;
  params.max_new_tokens = 12;
  params.n = 3;
  params.seed = 29;
  params.stop_token_ids = {0, 1};
  const RolloutBatch reference = generate(model, prompts, params);
  const auto stop_at_two = make_stop_checker(
      [](const std::vector<int64_t>& ids) {
        std::string text;
        for (const int64_t id : ids) text += char('a' + id % 26);
        return text;
      },
      {"cd"});
  for (const int64_t slots : {0, 2, 5}) {
    for (const bool no_cache : {false, true}) {
      for (const bool stops : {false, true}) {
        SCOPED_TRACE("slots " + std::to_string(slots) + (no_cache ? " no cache" : "") +
                     (stops ? " stop strings" : ""));
        GenerationParams observed = params;
        observed.max_active_rows = slots;
        std::map<int64_t, std::vector<int64_t>> seen;
        std::vector<int64_t> order;
        observed.on_row_finished = [&](int64_t row, const std::vector<int64_t>& response, FinishReason) {
          EXPECT_EQ(seen.count(row), 0u) << "row " << row << " reported twice";
          seen[row] = response;
          order.push_back(row);
        };
        const StopChecker checker = stops ? stop_at_two : nullptr;
        const RolloutBatch batch = no_cache ? generate_without_cache(model, prompts, observed, checker)
                                            : generate(model, prompts, observed, checker);
        const RolloutBatch plain = no_cache ? generate_without_cache(model, prompts, params, checker)
                                            : generate(model, prompts, params, checker);
        EXPECT_TRUE(torch::equal(batch.response_ids, plain.response_ids));
        ASSERT_EQ(int64_t(seen.size()), batch.response_ids.size(0));
        for (const auto& [row, response] : seen) {
          const int64_t length = batch.response_mask[row].sum().item<int64_t>();
          ASSERT_EQ(int64_t(response.size()), length) << "row " << row;
          for (int64_t t = 0; t < length; ++t) {
            EXPECT_EQ(response[size_t(t)], batch.response_ids[row][t].item<int64_t>()) << "row " << row;
          }
        }
        // Rows are reported as they finish: shorter responses first (up to ties).
        for (size_t i = 1; i < order.size(); ++i) {
          if (slots == 0 || no_cache) {
            EXPECT_LE(seen[order[i - 1]].size(), seen[order[i]].size());
          }
        }
        if (!stops) EXPECT_TRUE(torch::equal(batch.response_ids, reference.response_ids));
      }
    }
  }
}

// next_row (gopd serve's continuous batching): rows that join while others decode get the
// samples their seeds give alone, and follow the given rows in the batch.
TEST(Rollout, RowsJoiningMidDecodeGetTheirOwnSamples) {
  model::Transformer model = tiny_model(7);
  const std::vector<std::vector<int64_t>> given = {{3, 7, 1}, {5, 2}};
  const std::vector<std::vector<int64_t>> joining = {{8, 8, 12, 4}, {2}, {6, 1, 1, 9, 9, 3}, {4, 9}};
  GenerationParams params;
  params.max_new_tokens = 10;
  params.stop_token_ids = {0, 1};
  params.row_seeds = {11, 12};
  const std::vector<uint64_t> joining_seeds = {13, 14, 15, 16};
  for (const int64_t slots : {1, 2, 3, 8}) {
    SCOPED_TRACE("slots " + std::to_string(slots));
    GenerationParams continuous = params;
    continuous.max_active_rows = slots;
    size_t next = 0;
    int64_t asked = 0;
    continuous.next_row = [&](std::vector<int64_t>& prompt, uint64_t& seed) {
      ++asked;
      if (next == joining.size()) return false;
      prompt = joining[next];
      seed = joining_seeds[next++];
      return true;
    };
    const RolloutBatch batch = generate(model, given, continuous);
    ASSERT_EQ(batch.response_ids.size(0), 6);
    EXPECT_GT(asked, 4);
    std::vector<std::vector<int64_t>> all = given;
    all.insert(all.end(), joining.begin(), joining.end());
    std::vector<uint64_t> seeds = params.row_seeds;
    seeds.insert(seeds.end(), joining_seeds.begin(), joining_seeds.end());
    for (size_t r = 0; r < all.size(); ++r) {
      GenerationParams alone = params;
      alone.row_seeds = {seeds[r]};
      const RolloutBatch reference = generate(model, {all[r]}, alone);
      const int64_t length = reference.response_mask[0].sum().item<int64_t>();
      ASSERT_EQ(batch.response_mask[int64_t(r)].sum().item<int64_t>(), length) << "row " << r;
      EXPECT_TRUE(torch::equal(batch.response_ids[int64_t(r)].narrow(0, 0, length),
                               reference.response_ids[0].narrow(0, 0, length)))
          << "row " << r;
    }
  }
}

TEST(Sampler, TruncatedFrequenciesMatchTheRenormalisedDistribution) {
  // Fixed logits over 8 tokens; 40k draws per setting. Each count is compared with its
  // expectation within 5 binomial standard deviations (plus 1), a bound a correct sampler
  // exceeds with probability < 1e-5 per token.
  const torch::Tensor logits =
      torch::tensor({2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f}).view({1, -1});
  struct Setting {
    SamplingParams params;
    std::vector<int64_t> allowed;
  };
  std::vector<Setting> settings;
  {
    SamplingParams p;
    p.top_k = 3;
    settings.push_back({p, {0, 1, 2}});
  }
  {
    SamplingParams p;
    p.top_p = 0.7;
    settings.push_back({p, {}});
  }
  {
    SamplingParams p;
    p.min_p = 0.2;
    p.temperature = 0.7;
    settings.push_back({p, {}});
  }
  {
    SamplingParams p;
    p.top_k = 5;
    p.top_p = 0.9;
    p.temperature = 1.3;
    settings.push_back({p, {}});
  }
  for (const Setting& setting : settings) {
    const torch::Tensor expected = sampling_distribution(logits, setting.params)[0];  // (V)
    if (!setting.allowed.empty()) {
      for (int64_t v = 0; v < 8; ++v) {
        const bool allowed = std::count(setting.allowed.begin(), setting.allowed.end(), v) > 0;
        EXPECT_EQ(expected[v].item<float>() > 0, allowed) << "token " << v;
      }
    }
    // top_p = 0.7 keeps exactly the smallest prefix reaching 0.7 (tokens 0, 1, 2 here).
    if (setting.params.top_p == 0.7) {
      EXPECT_GT(expected[2].item<float>(), 0);
      EXPECT_EQ(expected[3].item<float>(), 0);
    }
    // One row per draw, each with its own generator: the batched path is what is tested.
    const int64_t draws = 40000;
    std::vector<core::Rng> generators;
    for (int64_t i = 0; i < draws; ++i) generators.emplace_back(1000 + static_cast<uint64_t>(i));
    std::vector<core::Rng*> rngs;
    for (auto& generator : generators) rngs.push_back(&generator);
    const torch::Tensor tokens =
        sample_tokens(logits.expand({draws, 8}), setting.params, rngs).tokens;  // (draws)
    std::vector<int64_t> counts(8, 0);
    for (int64_t v = 0; v < 8; ++v)
      counts[static_cast<size_t>(v)] = (tokens == v).sum().item<int64_t>();
    for (int64_t v = 0; v < 8; ++v) {
      const double p = expected[v].item<double>();
      if (p == 0) {
        EXPECT_EQ(counts[static_cast<size_t>(v)], 0)
            << "token " << v << " is outside the allowed set";
        continue;
      }
      const double mean = p * draws;
      const double bound = 5 * std::sqrt(draws * p * (1 - p)) + 1;
      EXPECT_NEAR(static_cast<double>(counts[static_cast<size_t>(v)]), mean, bound)
          << "token " << v;
    }
  }
}

TEST(Sampler, GreedyIsArgmaxAndLogprobUsesTemperatureOne) {
  const torch::Tensor logits = torch::tensor({{0.1f, 3.0f, -1.0f}, {2.0f, 2.5f, 9.0f}});
  core::Rng a(1), b(2);
  std::vector<core::Rng*> rngs = {&a, &b};
  SamplingParams greedy;
  greedy.temperature = 0.0;
  const Sample sample = sample_tokens(logits, greedy, rngs);
  EXPECT_EQ(sample.tokens[0].item<int64_t>(), 1);
  EXPECT_EQ(sample.tokens[1].item<int64_t>(), 2);
  EXPECT_NEAR(sample.logprobs[0].item<float>(), torch::log_softmax(logits[0], 0)[1].item<float>(),
              1e-6);
}

TEST(Rollout, EosEndsTheSequenceAndIsKept) {
  model::Transformer model = tiny_model(3);
  GenerationParams params;
  params.sampling.temperature = 0.0;
  params.max_new_tokens = 12;
  const RolloutBatch free_run = generate(model, {kPrompts[0]}, params);
  const int64_t third = free_run.response_ids[0][2].item<int64_t>();
  params.stop_token_ids = {third};
  const RolloutBatch stopped = generate(model, {kPrompts[0]}, params);
  // Stops at the first occurrence of that token, which is at index <= 2.
  const int64_t length = stopped.response_mask.sum().item<int64_t>();
  EXPECT_LE(length, 3);
  EXPECT_EQ(stopped.response_ids[0][length - 1].item<int64_t>(), third);
  EXPECT_EQ(stopped.finish_reasons[0], FinishReason::kEos);
  EXPECT_TRUE(torch::equal(stopped.response_ids[0].narrow(0, 0, length),
                           free_run.response_ids[0].narrow(0, 0, length)));
}

TEST(Rollout, StopStringsAcrossTokenBoundaries) {
  // A toy decoder: token t prints two letters, so "cd" + "ef" contain the stop "de" only
  // across the boundary between two tokens.
  auto decode = [](const std::vector<int64_t>& ids) {
    std::string text;
    for (int64_t id : ids) {
      text += static_cast<char>('a' + (2 * id) % 26);
      text += static_cast<char>('a' + (2 * id + 1) % 26);
    }
    return text;
  };
  const StopChecker checker = make_stop_checker(decode, {"de"});
  EXPECT_EQ(checker({0}), -1);       // "ab"
  EXPECT_EQ(checker({0, 1}), -1);    // "abcd"
  EXPECT_EQ(checker({0, 1, 2}), 3);  // "abcdef": "de" straddles tokens 1 and 2
  EXPECT_EQ(make_stop_checker(decode, {"bcd"})({0, 1}), 2);
  // Long responses: only the tail is decoded, and the cut is still exact.
  std::vector<int64_t> long_ids(200, 12);  // "yz" repeated
  EXPECT_EQ(checker(long_ids), -1);
  long_ids.push_back(1);
  long_ids.push_back(2);
  EXPECT_EQ(checker(long_ids), 202);

  model::Transformer model = tiny_model(4);
  GenerationParams params;
  params.sampling.temperature = 0.0;
  params.max_new_tokens = 12;
  const RolloutBatch free_run = generate(model, {kPrompts[1]}, params);
  std::vector<int64_t> ids(free_run.response_ids[0].data_ptr<int64_t>(),
                           free_run.response_ids[0].data_ptr<int64_t>() + 12);
  // Stop on the last letter of token 3 plus the first of token 4.
  const std::string text = decode(ids);
  const std::string stop = text.substr(7, 2);
  const RolloutBatch stopped =
      generate(model, {kPrompts[1]}, params, make_stop_checker(decode, {stop}));
  const int64_t length = stopped.response_mask.sum().item<int64_t>();
  const int64_t expected = static_cast<int64_t>(text.find(stop) + stop.size() + 1) / 2;
  EXPECT_EQ(length, expected);
  EXPECT_EQ(stopped.finish_reasons[0], FinishReason::kStop);
}

TEST(Rollout, SharedPromptCacheEqualsIndependentPrefills) {
  model::Transformer model = tiny_model(5);
  GenerationParams params;
  params.sampling.temperature = 1.0;
  params.sampling.top_k = 10;
  params.max_new_tokens = 9;
  params.n = 3;
  params.seed = 1234;
  params.stop_token_ids = {0};
  const RolloutBatch shared = generate(model, kPrompts, params);
  for (int64_t prompt = 0; prompt < 3; ++prompt) {
    for (int64_t sample = 0; sample < 3; ++sample) {
      GenerationParams single = params;
      single.n = 1;
      single.row_seeds = {sample_seed(params.seed, prompt, sample)};
      const RolloutBatch alone = generate(model, {kPrompts[static_cast<size_t>(prompt)]}, single);
      const int64_t row = prompt * 3 + sample;
      const int64_t length = alone.response_mask.sum().item<int64_t>();
      EXPECT_EQ(shared.response_mask[row].sum().item<int64_t>(), length);
      EXPECT_TRUE(torch::equal(shared.response_ids[row].narrow(0, 0, length),
                               alone.response_ids[0].narrow(0, 0, length)))
          << "prompt " << prompt << " sample " << sample;
    }
  }
  // Same seed ⇒ same samples; another seed ⇒ different ones.
  EXPECT_TRUE(torch::equal(generate(model, kPrompts, params).response_ids, shared.response_ids));
  params.seed = 1235;
  EXPECT_FALSE(torch::equal(generate(model, kPrompts, params).response_ids, shared.response_ids));
}

TEST(Rollout, ChunkedPrefillGivesTheSameSamples) {
  model::Transformer model = tiny_model(6);
  GenerationParams params;
  params.sampling.temperature = 0.8;
  params.max_new_tokens = 8;
  params.seed = 5;
  const RolloutBatch whole = generate(model, kPrompts, params);
  params.prefill_chunk = 2;
  const RolloutBatch chunked = generate(model, kPrompts, params);
  EXPECT_TRUE(torch::equal(whole.response_ids, chunked.response_ids));
  EXPECT_LT((whole.response_logprobs - chunked.response_logprobs).abs().max().item<float>(), 1e-5);
}

}  // namespace
}  // namespace gopd::rollout
