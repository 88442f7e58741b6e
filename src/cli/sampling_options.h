// Options and the batched sampling loop shared by `gopd generate` and `gopd eval`: both load
// a model directory with its tokenizer, turn dataset records into prompts, and sample K
// responses per prompt with the rollout engine, a batch of prompts at a time.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "gopd/data/prompt_encoding.h"
#include "gopd/data/record.h"
#include "gopd/model/transformer.h"
#include "gopd/rollout/rollout_engine.h"
#include "gopd/tokenizer/tokenizer.h"

namespace gopd::cli {

struct SamplingOptions {
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  double min_p = 0.0;
  int64_t max_new_tokens = 256;
  std::vector<std::string> stop;
  uint64_t seed = 0;
  bool chat = false;
  bool no_thinking = false;
  int64_t batch_prompts = 16;
};

void add_sampling_options(CLI::App& command, SamplingOptions& options, double default_temperature);

// One sampled response.
struct SampleRecord {
  int64_t prompt_index = 0;
  int64_t sample_index = 0;
  std::vector<int64_t> tokens;
  std::vector<float> logprobs;
  std::string text;
  std::string finish_reason;
};

struct LoadedModel {
  model::Transformer model{nullptr};
  tokenizer::LoadedTokenizer tokenizer;
};

LoadedModel load_model_with_tokenizer(const std::string& directory);

// Samples `n` responses for each record; calls `on_sample` in prompt order.
void sample_records(LoadedModel& loaded, const std::vector<data::Record>& records, int64_t n,
                    const SamplingOptions& options, const std::string& progress_label,
                    const std::function<void(const SampleRecord&)>& on_sample);

}  // namespace gopd::cli
