// The rows of a GRPO/LENS batch and the LENS transfer applied to them: row r = rollout r % n of
// prompt r / n, trained as the response conditioned on the original prompt, sampled from x_roll
// (the original prompt, or the purified one it was transferred from).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "gopd/lens/lens.h"
#include "gopd/scoring/sequences.h"

namespace gopd::lens {

struct RlvrRows {
  std::vector<std::vector<int64_t>> prompt;  // the original prompt of the row's group
  std::vector<std::vector<int64_t>> response;
  std::vector<std::vector<int64_t>>
      roll_prompt;                 // x_roll: the prompt the response was sampled from
  std::vector<double> reward;      // what the advantages use
  std::vector<double> correct;     // the verifier's part (success = correct ≥ 1)
  std::vector<double> log_weight;  // log w̃ of CRPO (0 = plain GRPO)
  std::vector<std::vector<float>> rollout_logprobs;  // the sampler's log π(y_t | x_roll, y_<t)
};

// The rollouts of one purified prompt: its ids and its n responses with their rewards.
struct PurifiedGroup {
  std::vector<int64_t> prompt;
  std::vector<std::vector<int64_t>> responses;
  std::vector<double> reward;
  std::vector<double> correct;
  std::vector<std::vector<float>> rollout_logprobs;  // the sampler's, one per response token
};

// Applies `plan` to group `group` (rows group·n … group·n + n − 1): each replaced failure takes
// the purified success's response, reward and correctness, and remembers the purified prompt
// as its x_roll (its prompt stays the original). When anything was replaced, every row of the
// group gets log w̃ from `weights` (crpo_weights); other groups keep w̃ = 1. Returns the
// number of rows replaced.
int64_t apply_transfer(RlvrRows& rows, int64_t group, int64_t n, const TransferPlan& plan,
                       const std::vector<double>& weights, const PurifiedGroup& purified);

// The sequences trained on (original prompts) and those π_old is computed on (x_roll).
scoring::TrainingSequences training_sequences(const RlvrRows& rows, int64_t pad);
scoring::TrainingSequences rollout_sequences(const RlvrRows& rows, int64_t pad);

// The sampler's log-probs as a (B, length) fp32 tensor, 0 after each response's end.
torch::Tensor rollout_logprobs(const RlvrRows& rows, int64_t length);

// CRPO's calibration 1/w̃ per row (B) fp32 (lens.h: the default weight_scheme crpo).
torch::Tensor calibration_weights(const RlvrRows& rows);

// crpo_literal: old + log w̃ on every token of a row, so that the clipped ratio is
// π_θ(y | x) / (w̃ · π_old(y | x_roll)) as the paper writes it (lens.h: what that silences).
torch::Tensor calibrated_old_logprobs(const torch::Tensor& old_logprobs, const RlvrRows& rows);

}  // namespace gopd::lens
