// Batched sampling with a KV cache → RolloutBatch. Prompts of different lengths are
// left-padded and prefilled together (optionally in chunks); each prompt is prefilled once
// and its cache rows are copied to its n samples; decoding is incremental; a finished
// sequence leaves the active batch (its cache rows are dropped), so cost follows the live
// sequences. The engine knows nothing about text except through an optional stop-string
// checker.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "gopd/model/transformer.h"
#include "gopd/rollout/sampler.h"

namespace gopd::rollout {

enum class FinishReason { kEos, kStop, kLength };
const char* finish_reason_name(FinishReason reason);  // "eos" | "stop" | "length"

// Called once per row as soon as it finishes (row = prompt × n + sample), with its response
// tokens: later stages can start on it while the other rows still decode.
using RowFinished = std::function<void(int64_t row, const std::vector<int64_t>& response_ids,
                                       FinishReason reason)>;
// Continuous batching across callers: asked for another row whenever a decoding slot is free
// and every row given so far has started; fills its prompt and seed and returns true, or
// returns false when there is none now. Such rows follow the given ones in the batch.
using NextRow = std::function<bool(std::vector<int64_t>& prompt, uint64_t& seed)>;

struct GenerationParams {
  SamplingParams sampling;
  int64_t n = 1;  // samples per prompt
  int64_t max_new_tokens = 256;
  std::vector<int64_t> stop_token_ids;  // eos and end-of-turn ids
  uint64_t seed = 0;                // sample j of prompt i draws from Rng(sample_seed(seed, i, j))
  std::vector<uint64_t> row_seeds;  // if given (prompts × n), overrides the derived seeds
  int64_t prefill_chunk = 0;        // tokens per prefill forward; 0 = whole prompts
  int64_t pad_id = 0;               // fills padding positions of the returned tensors
  int64_t vocab_limit = 0;          // sample among ids < vocab_limit only (0 = all logits)
  // Continuous batching: at most this many sequences decode at once; a finished one's slot is
  // refilled with the next waiting sample (its prompt prefilled and its cache rows merged in),
  // so a long straggler does not leave the batch idle. 0 = every sample at once (static).
  int64_t max_active_rows = 0;
  RowFinished on_row_finished;  // optional; never changes what is sampled
  NextRow next_row;             // optional; needs n = 1 and max_active_rows > 0
};

// The seed of sample `sample` of prompt `prompt`.
uint64_t sample_seed(uint64_t seed, int64_t prompt, int64_t sample);

// Returns how many of the response's tokens to keep if it now ends with a stop string
// (the tokens up to and including the one that completed it), or -1 if it does not.
using StopChecker = std::function<int64_t(const std::vector<int64_t>& response_ids)>;

struct RolloutBatch {
  // Row r = sample (r % n) of prompt (r / n).
  torch::Tensor prompt_ids;                  // (B, P) int64, left-padded with pad_id
  torch::Tensor prompt_mask;                 // (B, P) int64, 1 = prompt token
  torch::Tensor response_ids;                // (B, T) int64, right-padded with pad_id
  torch::Tensor response_mask;               // (B, T) int64, 1 = generated token
  torch::Tensor response_logprobs;           // (B, T) fp32, sampler log-probs (0 at padding)
  torch::Tensor group_ids;                   // (B) int64, prompt index of each row
  std::vector<FinishReason> finish_reasons;  // (B)
  int64_t generated_tokens = 0;              // sum of response lengths
};

// A StopChecker for `stop_strings` on text produced by `decode`: once the decoded response
// contains a stop string (possibly spread over several tokens), the response is cut after
// the first token at which it is complete.
StopChecker make_stop_checker(std::function<std::string(const std::vector<int64_t>&)> decode,
                              std::vector<std::string> stop_strings);

// Samples `params.n` responses for each prompt (token ids, non-empty). Sample j of prompt i
// draws from its own generator, so the tokens do not depend on which samples share a batch
// (static or continuous batching alike, up to the last bits of the logits).
RolloutBatch generate(model::Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                      const GenerationParams& params, const StopChecker& stop_checker = nullptr);

// The baseline the benchmark compares against: the same sampling by a full forward pass
// over the whole sequence at every step (no cache). Same seeds ⇒ same tokens.
RolloutBatch generate_without_cache(model::Transformer& model,
                                    const std::vector<std::vector<int64_t>>& prompts,
                                    const GenerationParams& params,
                                    const StopChecker& stop_checker = nullptr);

}  // namespace gopd::rollout
