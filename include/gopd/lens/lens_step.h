// The whole LENS step on one GRPO batch (lens.h has the decisions it makes): the low-success
// groups, their interference scores and purified prompts, n rollouts on each purified prompt,
// the transfer plan and its application to the batch's rows with CRPO weights, the metrics and
// the lens_dump.jsonl lines. The policy, the reference, the sampler and the verifier are handed
// in as calls, so the step runs with fakes in tests and with the trainer's student otherwise.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gopd/core/config.h"
#include "gopd/lens/rows.h"
#include "gopd/reward/rollout_rewards.h"

namespace gopd::lens {

enum class WeightScheme { crpo, crpo_literal, uniform };
WeightScheme parse_weight_scheme(const std::string& name);  // lens.weight_scheme

// Responses sampled for a list of prompts: row k·n + i = response i of prompt k.
struct Samples {
  std::vector<std::vector<int64_t>> responses;
  std::vector<std::vector<float>> logprobs;  // the sampler's, one per response token
  int64_t generated_tokens = 0;
};

using Prompts = std::vector<std::vector<int64_t>>;

struct LensHooks {
  // log π(x_j | x_<j) of each prompt's own tokens (position 0: 0) under the policy and π_ref.
  std::function<std::vector<std::vector<double>>(const Prompts&)> policy_prompt_logprobs;
  std::function<std::vector<std::vector<double>>(const Prompts&)> reference_prompt_logprobs;
  // n responses per prompt from the current policy; prompt k purifies batch group `groups[k]`
  // (whose position in the batch seeds its samples, whatever the rank that holds it).
  std::function<Samples(const std::vector<int64_t>& groups, const Prompts&)> sample;
  // The rewards of `responses`, response r answering the record of batch group `groups[r]`.
  std::function<std::vector<reward::RewardResult>(const std::vector<int64_t>& groups,
                                                  const Prompts& responses)>
      verify;
  // The positions [first, last) of group g's prompt that purification may delete (the user's text).
  std::function<std::pair<int64_t, int64_t>(int64_t group)> eligible_span;
  // Text of token ids, for the dump.
  std::function<std::string(const std::vector<int64_t>&)> decode;
};

struct LensStepResult {
  int64_t transferred = 0;  // rows of `rows` that now hold a purified prompt's success
  std::string dump;         // lens_dump.jsonl lines of this step ("" when it dumps nothing)
};

// LENS on a batch of groups (group g = prompts[g], rows g·n … g·n + n − 1 of `rows`, verified):
// purifies the groups with success rate below τ, rolls out n responses on each purified prompt,
// and transfers purified successes into the groups (rows and log w̃ updated in place). Writes
// the lens/* metrics into `line`; dumps when (step + 1) is a multiple of config.dump_every.
// `record_ids` name each group's record in the dump.
LensStepResult lens_step(const core::LensConfig& config, WeightScheme scheme, int64_t n,
                         int64_t step, const Prompts& prompts,
                         const std::vector<std::string>& record_ids, RlvrRows& rows,
                         const LensHooks& hooks, nlohmann::json& line);

}  // namespace gopd::lens
