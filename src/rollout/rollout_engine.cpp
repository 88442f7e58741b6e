// Implements the KV-cache rollout engine and its no-cache reference.
#include "gopd/rollout/rollout_engine.h"

#include "gopd/model/autocast.h"

#include <algorithm>

namespace gopd::rollout {
namespace {

// Per-row bookkeeping shared by both generation paths.
struct SequenceState {
  std::vector<int64_t> tokens;
  std::vector<float> logprobs;
  FinishReason reason = FinishReason::kLength;
  bool finished = false;
};

// Decides whether the sequence has finished after `token`.
void append_and_check(SequenceState& state, int64_t token, float logprob,
                   const GenerationParams& params, const StopChecker& stop_checker) {
  state.tokens.push_back(token);
  state.logprobs.push_back(logprob);
  if (std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(), token) !=
      params.stop_token_ids.end()) {
    state.finished = true;
    state.reason = FinishReason::kEos;
    return;
  }
  if (stop_checker) {
    const int64_t keep = stop_checker(state.tokens);
    if (keep >= 0) {
      state.tokens.resize(static_cast<size_t>(keep));
      state.logprobs.resize(static_cast<size_t>(keep));
      state.finished = true;
      state.reason = FinishReason::kStop;
      return;
    }
  }
  if (static_cast<int64_t>(state.tokens.size()) >= params.max_new_tokens) {
    state.finished = true;
    state.reason = FinishReason::kLength;
  }
}

// Appends a sampled token to row `row`; a row that finishes is handed to on_row_finished.
void append_token(SequenceState& state, int64_t row, int64_t token, float logprob,
                  const GenerationParams& params, const StopChecker& stop_checker) {
  append_and_check(state, token, logprob, params, stop_checker);
  if (state.finished && params.on_row_finished) params.on_row_finished(row, state.tokens, state.reason);
}

RolloutBatch assemble(const std::vector<std::vector<int64_t>>& prompts,
                      const std::vector<SequenceState>& states, const GenerationParams& params) {
  const int64_t rows = static_cast<int64_t>(states.size());
  int64_t prompt_width = 0;
  for (const auto& prompt : prompts) prompt_width = std::max<int64_t>(prompt_width, prompt.size());
  int64_t response_width = 0;
  for (const auto& state : states) {
    response_width = std::max<int64_t>(response_width, state.tokens.size());
  }
  RolloutBatch batch;
  batch.prompt_ids = torch::full({rows, prompt_width}, params.pad_id, torch::kLong);
  batch.prompt_mask = torch::zeros({rows, prompt_width}, torch::kLong);
  batch.response_ids = torch::full({rows, response_width}, params.pad_id, torch::kLong);
  batch.response_mask = torch::zeros({rows, response_width}, torch::kLong);
  batch.response_logprobs = torch::zeros({rows, response_width}, torch::kFloat);
  batch.group_ids = torch::empty({rows}, torch::kLong);
  auto prompt_ids = batch.prompt_ids.accessor<int64_t, 2>();
  auto prompt_mask = batch.prompt_mask.accessor<int64_t, 2>();
  auto response_ids = batch.response_ids.accessor<int64_t, 2>();
  auto response_mask = batch.response_mask.accessor<int64_t, 2>();
  auto response_logprobs = batch.response_logprobs.accessor<float, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t group = r / params.n;
    batch.group_ids[r] = group;
    const auto& prompt = prompts[static_cast<size_t>(group)];
    const int64_t offset = prompt_width - static_cast<int64_t>(prompt.size());
    for (size_t t = 0; t < prompt.size(); ++t) {
      prompt_ids[r][offset + static_cast<int64_t>(t)] = prompt[t];
      prompt_mask[r][offset + static_cast<int64_t>(t)] = 1;
    }
    const SequenceState& state = states[static_cast<size_t>(r)];
    for (size_t t = 0; t < state.tokens.size(); ++t) {
      response_ids[r][static_cast<int64_t>(t)] = state.tokens[t];
      response_mask[r][static_cast<int64_t>(t)] = 1;
      response_logprobs[r][static_cast<int64_t>(t)] = state.logprobs[t];
    }
    batch.finish_reasons.push_back(state.reason);
    batch.generated_tokens += static_cast<int64_t>(state.tokens.size());
  }
  return batch;
}

void check_inputs(const std::vector<std::vector<int64_t>>& prompts,
                  const GenerationParams& params) {
  TORCH_CHECK(!prompts.empty(), "generate: no prompts");
  for (const auto& prompt : prompts) TORCH_CHECK(!prompt.empty(), "generate: empty prompt");
  TORCH_CHECK(params.n >= 1 && params.max_new_tokens >= 1, "generate: n and max_new_tokens >= 1");
}

std::vector<core::Rng> make_generators(int64_t prompts, const GenerationParams& params) {
  std::vector<core::Rng> generators;
  if (!params.row_seeds.empty()) {
    TORCH_CHECK(static_cast<int64_t>(params.row_seeds.size()) == prompts * params.n,
                "generate: row_seeds must hold prompts x n seeds");
    for (uint64_t seed : params.row_seeds) generators.emplace_back(seed);
    return generators;
  }
  for (int64_t i = 0; i < prompts; ++i) {
    for (int64_t j = 0; j < params.n; ++j) generators.emplace_back(sample_seed(params.seed, i, j));
  }
  return generators;
}

// The columns of the tokenizer's vocabulary: padded embedding rows are never sampled.
torch::Tensor vocabulary_logits(const torch::Tensor& logits, const GenerationParams& params) {
  if (params.vocab_limit <= 0 || params.vocab_limit >= logits.size(-1)) return logits;
  return logits.narrow(-1, 0, params.vocab_limit);
}

// The decoding part of a continuous rollout: the cache rows, key mask and next position of each
// live sample, the logits its next token is drawn from, and which sample each row is.
struct LiveBatch {
  model::KVCache cache;         // per layer (A, Hkv, capacity, D)
  torch::Tensor key_mask;       // (A, capacity) bool, CPU: the row's real cache positions
  torch::Tensor next_position;  // (A) int64, CPU
  torch::Tensor logits;         // (A, V) on the model's device
  std::vector<int64_t> rows;    // sample index (prompt * n + j) of each cache row
};

// Prefills the prompts of samples `rows` (each distinct prompt once, left-padded to the widest)
// and gives each sample its prompt's cache rows and last logits; capacity = the prompt width.
LiveBatch prefill_samples(model::Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                          const std::vector<int64_t>& rows, const GenerationParams& params,
                          torch::Device device, torch::Dtype dtype) {
  std::vector<int64_t> distinct;  // prompt indices, in order of first appearance
  std::vector<int64_t> row_prompt;
  for (const int64_t row : rows) {
    const int64_t prompt = row / params.n;
    if (distinct.empty() || distinct.back() != prompt) distinct.push_back(prompt);
    row_prompt.push_back(static_cast<int64_t>(distinct.size()) - 1);
  }
  const int64_t count = static_cast<int64_t>(distinct.size());
  int64_t width = 0;
  for (const int64_t i : distinct) width = std::max<int64_t>(width, prompts[size_t(i)].size());
  torch::Tensor ids = torch::full({count, width}, params.pad_id, torch::kLong);
  torch::Tensor mask = torch::zeros({count, width}, torch::kBool);
  for (int64_t i = 0; i < count; ++i) {
    const auto& prompt = prompts[size_t(distinct[size_t(i)])];
    const int64_t length = static_cast<int64_t>(prompt.size());
    ids[i].narrow(0, width - length, length).copy_(torch::tensor(prompt, torch::kLong));
    mask[i].narrow(0, width - length, length).fill_(true);
  }
  LiveBatch batch;
  batch.cache = model::KVCache::allocate(model->config(), count, width, dtype, device);
  const torch::Tensor positions = (mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
  const int64_t chunk = params.prefill_chunk > 0 ? params.prefill_chunk : width;
  for (int64_t start = 0; start < width; start += chunk) {
    const int64_t size = std::min(chunk, width - start);
    batch.logits = model
                       ->forward_cached(ids.narrow(1, start, size).to(device),
                                        positions.narrow(1, start, size).to(device),
                                        mask.narrow(1, 0, start + size).to(device), batch.cache)
                       .select(1, size - 1);
  }
  const torch::Tensor index = torch::tensor(row_prompt, torch::kLong);
  batch.cache.select_rows(index.to(device));
  batch.logits = batch.logits.index_select(0, index.to(device));
  batch.key_mask = mask.index_select(0, index);
  batch.next_position = mask.to(torch::kLong).sum(1).index_select(0, index);
  batch.rows = rows;
  return batch;
}

// `incoming` joins `live` in one cache: positions no live row uses any more are dropped from the
// front, both parts end at the same cache position (left-padded), and the capacity leaves room
// for `max_new_tokens` more. Positions are the rows' own (rotary embeddings use position ids,
// not cache slots), so moving a row along the cache does not change what it computes.
void merge_samples(LiveBatch& live, LiveBatch incoming, int64_t max_new_tokens,
                   const model::ModelConfig& config, torch::Device device, torch::Dtype dtype) {
  const int64_t live_rows = static_cast<int64_t>(live.rows.size());
  const int64_t new_rows = static_cast<int64_t>(incoming.rows.size());
  if (live_rows == 0) live.cache = model::KVCache();  // every live row finished: nothing to keep
  const int64_t length = live_rows > 0 ? live.cache.length : 0;
  int64_t first = length;  // the first cache position a live row still reads
  if (live_rows > 0) {
    first = live.key_mask.narrow(1, 0, length).to(torch::kLong).argmax(1).min().item<int64_t>();
  }
  const int64_t kept = length - first;
  const int64_t width = incoming.cache.length;
  const int64_t end = std::max(kept, width);
  // Layer by layer, each old layer released once copied: the merge holds one layer twice, not
  // the whole cache.
  model::KVCache merged;
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  for (size_t layer = 0; layer < incoming.cache.keys.size(); ++layer) {
    for (const bool values : {false, true}) {
      torch::Tensor target = torch::zeros(
          {live_rows + new_rows, config.num_key_value_heads, end + max_new_tokens, config.head_dim},
          options);
      std::vector<torch::Tensor>& live_side = values ? live.cache.values : live.cache.keys;
      std::vector<torch::Tensor>& new_side = values ? incoming.cache.values : incoming.cache.keys;
      if (live_rows > 0) {
        target.narrow(0, 0, live_rows).narrow(2, end - kept, kept)
            .copy_(live_side[layer].narrow(2, first, kept));
        live_side[layer] = torch::Tensor();
      }
      target.narrow(0, live_rows, new_rows).narrow(2, end - width, width)
          .copy_(new_side[layer].narrow(2, 0, width));
      new_side[layer] = torch::Tensor();
      (values ? merged.values : merged.keys).push_back(target);
    }
  }
  merged.length = end;
  torch::Tensor key_mask = torch::zeros({live_rows + new_rows, end + max_new_tokens}, torch::kBool);
  if (live_rows > 0) {
    key_mask.narrow(0, 0, live_rows).narrow(1, end - kept, kept)
        .copy_(live.key_mask.narrow(1, first, kept));
  }
  key_mask.narrow(0, live_rows, new_rows).narrow(1, end - width, width)
      .copy_(incoming.key_mask.narrow(1, 0, width));
  live.cache = std::move(merged);
  live.key_mask = key_mask;
  live.next_position = live_rows > 0 ? torch::cat({live.next_position, incoming.next_position})
                                     : incoming.next_position;
  live.logits = live_rows > 0 ? torch::cat({live.logits, incoming.logits}) : incoming.logits;
  live.rows.insert(live.rows.end(), incoming.rows.begin(), incoming.rows.end());
}

// generate() with at most params.max_active_rows samples decoding at once (see the header).
RolloutBatch generate_continuous(model::Transformer& model,
                                 const std::vector<std::vector<int64_t>>& given_prompts,
                                 const GenerationParams& params, const StopChecker& stop_checker,
                                 torch::Device device, torch::Dtype dtype) {
  // Rows from params.next_row join as prompts of their own (n = 1, checked by generate).
  std::vector<std::vector<int64_t>> prompts = given_prompts;
  int64_t rows = static_cast<int64_t>(prompts.size()) * params.n;
  const int64_t slots = params.max_active_rows;
  // Refill once a few slots are free rather than after every finished sample: each refill
  // prefills and copies the cache once.
  const int64_t refill_at = std::max<int64_t>(1, slots / 8);
  std::vector<core::Rng> generators = make_generators(static_cast<int64_t>(prompts.size()), params);
  std::vector<SequenceState> states(static_cast<size_t>(rows));
  LiveBatch live;
  int64_t next_waiting = 0;
  while (true) {
    const int64_t free = slots - static_cast<int64_t>(live.rows.size());
    if (params.next_row && free > 0 && (free >= refill_at || live.rows.empty())) {
      std::vector<int64_t> prompt;
      uint64_t seed = 0;
      while (rows - next_waiting < free && params.next_row(prompt, seed)) {
        TORCH_CHECK(!prompt.empty(), "generate: next_row gave an empty prompt");
        prompts.push_back(std::move(prompt));
        generators.emplace_back(seed);
        states.emplace_back();
        ++rows;
        prompt.clear();
      }
    }
    if (next_waiting < rows && free > 0 && (free >= refill_at || live.rows.empty())) {
      std::vector<int64_t> admitted;
      for (int64_t r = next_waiting; r < std::min(rows, next_waiting + free); ++r) admitted.push_back(r);
      next_waiting += static_cast<int64_t>(admitted.size());
      merge_samples(live, prefill_samples(model, prompts, admitted, params, device, dtype),
                    params.max_new_tokens, model->config(), device, dtype);
    }
    if (live.rows.empty()) break;
    std::vector<core::Rng*> row_generators;
    for (const int64_t row : live.rows) row_generators.push_back(&generators[static_cast<size_t>(row)]);
    const Sample sample =
        sample_tokens(vocabulary_logits(live.logits, params), params.sampling, row_generators);
    const torch::Tensor tokens = sample.tokens.to(torch::kCPU).contiguous();
    const torch::Tensor logprobs = sample.logprobs.to(torch::kCPU, torch::kFloat).contiguous();
    const int64_t* token_at = tokens.data_ptr<int64_t>();
    const float* logprob_at = logprobs.data_ptr<float>();
    std::vector<int64_t> keep;
    for (size_t a = 0; a < live.rows.size(); ++a) {
      SequenceState& state = states[static_cast<size_t>(live.rows[a])];
      append_token(state, live.rows[a], token_at[a], logprob_at[a], params, stop_checker);
      if (!state.finished) keep.push_back(static_cast<int64_t>(a));
    }
    torch::Tensor next_tokens = tokens;
    if (keep.size() != live.rows.size()) {
      const torch::Tensor keep_index = torch::tensor(keep, torch::kLong);
      std::vector<int64_t> still;
      for (const int64_t a : keep) still.push_back(live.rows[static_cast<size_t>(a)]);
      live.rows = still;
      if (keep.empty()) continue;  // refill, or done
      live.cache.select_rows(keep_index.to(device));
      live.key_mask = live.key_mask.index_select(0, keep_index);
      live.next_position = live.next_position.index_select(0, keep_index);
      next_tokens = tokens.index_select(0, keep_index);
    }
    live.key_mask.select(1, live.cache.length).fill_(true);
    live.logits = model
                      ->forward_cached(next_tokens.view({-1, 1}).to(device),
                                       live.next_position.view({-1, 1}).to(device),
                                       live.key_mask.narrow(1, 0, live.cache.length + 1).to(device),
                                       live.cache)
                      .select(1, 0);
    live.next_position += 1;
  }
  return assemble(prompts, states, params);
}

}  // namespace

uint64_t sample_seed(uint64_t seed, int64_t prompt, int64_t sample) {
  const uint64_t words[3] = {seed, static_cast<uint64_t>(prompt), static_cast<uint64_t>(sample)};
  return core::stable_hash(words, sizeof words);
}

StopChecker make_stop_checker(std::function<std::string(const std::vector<int64_t>&)> decode,
                              std::vector<std::string> stop_strings) {
  if (stop_strings.empty()) return nullptr;
  size_t longest = 0;
  for (const std::string& stop : stop_strings) longest = std::max(longest, stop.size());
  // Earlier calls found no stop string, so a new one ends in the newest token and lies in
  // the last `longest` bytes; tokens carry at least one byte, so that many tokens (plus a
  // margin for multi-byte characters split across tokens) cover it. Decoding only this
  // tail keeps the check O(1) per token instead of O(length).
  const size_t window = longest + 4;
  return [decode = std::move(decode), stops = std::move(stop_strings),
          window](const std::vector<int64_t>& ids) -> int64_t {
    const size_t start = ids.size() > window ? ids.size() - window : 0;
    auto contains_stop = [&](size_t end) {
      const std::string text =
          decode(std::vector<int64_t>(ids.begin() + static_cast<std::ptrdiff_t>(start),
                                      ids.begin() + static_cast<std::ptrdiff_t>(end)));
      for (const std::string& stop : stops) {
        if (!stop.empty() && text.find(stop) != std::string::npos) return true;
      }
      return false;
    };
    if (!contains_stop(ids.size())) return -1;
    for (size_t keep = start + 1; keep <= ids.size(); ++keep) {
      if (contains_stop(keep)) return static_cast<int64_t>(keep);
    }
    return static_cast<int64_t>(ids.size());
  };
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kStop:
      return "stop";
    default:
      return "length";
  }
}

RolloutBatch generate(model::Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                      const GenerationParams& params, const StopChecker& stop_checker) {
  check_inputs(prompts, params);
  torch::NoGradGuard no_grad;
  const torch::Device device = model->output_weight().device();
  // Under autocast (train.precision: bf16) keys and values come out in its dtype: the cache
  // holds them as they are.
  const torch::Dtype dtype = model::autocast_enabled(device.type())
                                 ? model::autocast_dtype(device.type())
                                 : model->output_weight().scalar_type();
  const int64_t prompt_count = static_cast<int64_t>(prompts.size());
  if (params.next_row) {
    TORCH_CHECK(params.n == 1 && params.max_active_rows > 0,
                "generate: next_row needs n = 1 and max_active_rows > 0");
    return generate_continuous(model, prompts, params, stop_checker, device, dtype);
  }
  if (params.max_active_rows > 0 && params.max_active_rows < prompt_count * params.n) {
    return generate_continuous(model, prompts, params, stop_checker, device, dtype);
  }
  int64_t width = 0;
  for (const auto& prompt : prompts) width = std::max<int64_t>(width, prompt.size());

  // Prefill each distinct prompt once, left-padded.
  torch::Tensor ids = torch::full({prompt_count, width}, params.pad_id, torch::kLong);  // (P, W)
  torch::Tensor mask = torch::zeros({prompt_count, width}, torch::kBool);               // (P, W)
  for (int64_t i = 0; i < prompt_count; ++i) {
    const auto& prompt = prompts[static_cast<size_t>(i)];
    const int64_t length = static_cast<int64_t>(prompt.size());
    ids[i].narrow(0, width - length, length).copy_(torch::tensor(prompt, torch::kLong));
    mask[i].narrow(0, width - length, length).fill_(true);
  }
  const int64_t capacity = width + params.max_new_tokens;
  model::KVCache cache =
      model::KVCache::allocate(model->config(), prompt_count, capacity, dtype, device);
  torch::Tensor key_mask = torch::zeros({prompt_count, capacity}, torch::kBool);  // (P, C)
  key_mask.narrow(1, 0, width).copy_(mask);
  torch::Tensor positions = (mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0);  // (P, W)
  torch::Tensor next_position = mask.to(torch::kLong).sum(1);                    // (P)
  const int64_t chunk = params.prefill_chunk > 0 ? params.prefill_chunk : width;
  torch::Tensor last_logits;  // (P, V)
  for (int64_t start = 0; start < width; start += chunk) {
    const int64_t size = std::min(chunk, width - start);
    const torch::Tensor logits = model->forward_cached(
        ids.narrow(1, start, size).to(device), positions.narrow(1, start, size).to(device),
        key_mask.narrow(1, 0, start + size).to(device), cache);  // (P, size, V)
    last_logits = logits.select(1, size - 1);
  }

  // Copy each prompt's cache rows to its n samples.
  const int64_t rows = prompt_count * params.n;
  torch::Tensor row_prompt = torch::arange(prompt_count, torch::kLong).repeat_interleave(params.n);
  if (params.n > 1) {
    cache.select_rows(row_prompt.to(device));
    last_logits = last_logits.index_select(0, row_prompt.to(device));
    key_mask = key_mask.index_select(0, row_prompt);
    next_position = next_position.index_select(0, row_prompt);
  }
  std::vector<core::Rng> generators = make_generators(prompt_count, params);
  std::vector<SequenceState> states(static_cast<size_t>(rows));
  std::vector<int64_t> active(static_cast<size_t>(rows));  // row index of each cache row
  for (int64_t r = 0; r < rows; ++r) active[static_cast<size_t>(r)] = r;

  torch::Tensor logits = last_logits;  // (A, V)
  while (!active.empty()) {
    std::vector<core::Rng*> row_generators;
    for (int64_t row : active) row_generators.push_back(&generators[static_cast<size_t>(row)]);
    const Sample sample = sample_tokens(vocabulary_logits(logits, params), params.sampling, row_generators);
    const torch::Tensor tokens = sample.tokens.to(torch::kCPU).contiguous();
    const torch::Tensor logprobs = sample.logprobs.to(torch::kCPU, torch::kFloat).contiguous();
    const int64_t* token_at = tokens.data_ptr<int64_t>();
    const float* logprob_at = logprobs.data_ptr<float>();
    std::vector<int64_t> keep;  // positions in `active` that continue
    for (size_t a = 0; a < active.size(); ++a) {
      SequenceState& state = states[static_cast<size_t>(active[a])];
      append_token(state, active[a], token_at[a], logprob_at[a], params, stop_checker);
      if (!state.finished) keep.push_back(static_cast<int64_t>(a));
    }
    if (keep.empty()) break;
    torch::Tensor next_tokens = tokens;
    if (static_cast<size_t>(keep.size()) != active.size()) {
      // Finished sequences leave the batch: drop their cache rows.
      const torch::Tensor keep_index = torch::tensor(keep, torch::kLong);
      cache.select_rows(keep_index.to(device));
      key_mask = key_mask.index_select(0, keep_index);
      next_position = next_position.index_select(0, keep_index);
      next_tokens = tokens.index_select(0, keep_index);
      std::vector<int64_t> still_active;
      for (int64_t a : keep) still_active.push_back(active[static_cast<size_t>(a)]);
      active = still_active;
    }
    key_mask.select(1, cache.length).fill_(true);
    logits = model
                 ->forward_cached(next_tokens.view({-1, 1}).to(device),
                                  next_position.view({-1, 1}).to(device),
                                  key_mask.narrow(1, 0, cache.length + 1).to(device), cache)
                 .select(1, 0);
    next_position += 1;
  }
  return assemble(prompts, states, params);
}

RolloutBatch generate_without_cache(model::Transformer& model,
                                    const std::vector<std::vector<int64_t>>& prompts,
                                    const GenerationParams& params,
                                    const StopChecker& stop_checker) {
  check_inputs(prompts, params);
  torch::NoGradGuard no_grad;
  const torch::Device device = model->output_weight().device();
  const int64_t prompt_count = static_cast<int64_t>(prompts.size());
  const int64_t rows = prompt_count * params.n;
  std::vector<core::Rng> generators = make_generators(prompt_count, params);
  std::vector<SequenceState> states(static_cast<size_t>(rows));
  std::vector<int64_t> active(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) active[static_cast<size_t>(r)] = r;
  while (!active.empty()) {
    // Every step re-reads the whole left-padded sequence of every live row.
    int64_t width = 0;
    for (int64_t row : active) {
      width = std::max<int64_t>(width, prompts[static_cast<size_t>(row / params.n)].size() +
                                           states[static_cast<size_t>(row)].tokens.size());
    }
    const int64_t count = static_cast<int64_t>(active.size());
    torch::Tensor ids = torch::full({count, width}, params.pad_id, torch::kLong);  // (A, W)
    torch::Tensor mask = torch::zeros({count, width}, torch::kLong);               // (A, W)
    for (int64_t a = 0; a < count; ++a) {
      const int64_t row = active[static_cast<size_t>(a)];
      std::vector<int64_t> sequence = prompts[static_cast<size_t>(row / params.n)];
      const auto& generated = states[static_cast<size_t>(row)].tokens;
      sequence.insert(sequence.end(), generated.begin(), generated.end());
      const int64_t length = static_cast<int64_t>(sequence.size());
      ids[a].narrow(0, width - length, length).copy_(torch::tensor(sequence, torch::kLong));
      mask[a].narrow(0, width - length, length).fill_(1);
    }
    const torch::Tensor logits =
        model->forward(ids.to(device), mask.to(device)).select(1, width - 1);  // (A, V)
    std::vector<core::Rng*> row_generators;
    for (int64_t row : active) row_generators.push_back(&generators[static_cast<size_t>(row)]);
    const Sample sample = sample_tokens(vocabulary_logits(logits, params), params.sampling, row_generators);
    const torch::Tensor tokens = sample.tokens.to(torch::kCPU);
    const torch::Tensor logprobs = sample.logprobs.to(torch::kCPU);
    std::vector<int64_t> still_active;
    for (int64_t a = 0; a < count; ++a) {
      SequenceState& state = states[static_cast<size_t>(active[static_cast<size_t>(a)])];
      append_token(state, active[static_cast<size_t>(a)], tokens[a].item<int64_t>(),
                   logprobs[a].item<float>(), params, stop_checker);
      if (!state.finished) still_active.push_back(active[static_cast<size_t>(a)]);
    }
    active = still_active;
  }
  return assemble(prompts, states, params);
}

}  // namespace gopd::rollout
