// One training step of each algorithm, as DESIGN.md's data flow draws it: the batch's prompts
// → rollout (the student samples, no grad) → scoring (teachers / references / verifier) →
// objective (the loss of each micro-batch) → update (update.h). Each step writes its metrics
// into the step's metrics line.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "gopd/data/jsonl.h"
#include "gopd/rollout/rollout_engine.h"
#include "gopd/train/job.h"
#include "gopd/train/update.h"

namespace gopd::train {

// Wall-clock time of the stages, for the perf/* metrics.
using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// GPU memory of a phase of the step: the allocator's peak since the last mark goes to
// "perf/peak_gpu_mem_gb/<phase>" and raises "perf/peak_gpu_mem_gb", the step's peak; the count
// starts again. Nothing on the CPU (perf/peak_rss_mb covers it).
void mark_gpu_phase(const Job& job, const std::string& phase, nlohmann::json& line);

struct StepContext {
  Job& job;
  Updater& updater;
  std::string run_path;  // the run directory
  // This rank's prompts: their positions in the step's global batch (one process: 0, 1, …),
  // which seed their samples so that a prompt gets the same ones on whichever rank holds it.
  std::vector<int64_t> positions;
  int64_t batch_prompts = 0;  // the step's global batch (all ranks)
  std::string lens_dump;      // lens_dump.jsonl lines of the step (the trainer writes them)
};

// The mini-batches of a step whose prompts have `n` rows each, as one process would cut the
// global batch (rows·p/M of its R rows): the global mini-batch count, clamped to R, and this
// rank's share of each (its rows whose global index falls in it, which are contiguous).
void align_mini_batches(const StepContext& context, int64_t n, UpdateShape& shape);

// sft: cross-entropy on the records' solutions (prompt tokens masked).
void sft_step(StepContext& context, int64_t step, const std::vector<data::Record>& batch,
              nlohmann::json& line);
// opd, gopd: rollout.n samples per prompt, scored by each record's teacher (and reference).
void distillation_step(StepContext& context, int64_t step, const std::vector<data::Record>& batch,
                       nlohmann::json& line);
// grpo, lens: a group of rollout.n samples per prompt, verifiable rewards, group advantages, the
// clipped surrogate (and LENS's purification and transfer, lens_step.h).
void rlvr_step(StepContext& context, int64_t step, const std::vector<size_t>& indices,
               nlohmann::json& line);

// The rollout stage, shared by the steps and evaluation.
std::vector<std::vector<int64_t>> encode_prompts(const Job& job,
                                                 const std::vector<data::Record>& records);
rollout::GenerationParams generation_params(const Job& job, uint64_t seed);
// n responses per prompt by the current student (no grad), with the job's rollout sampling;
// prompt i's samples are seeded by `positions[i]` (empty = i); `on_row_finished` sees each
// row as it finishes.
rollout::RolloutBatch sample(Job& job, const std::vector<std::vector<int64_t>>& prompts,
                             uint64_t seed, int64_t n, const std::vector<int64_t>& positions = {},
                             rollout::RowFinished on_row_finished = nullptr);
// Row `row` of a rollout without padding: its tokens, the sampler's log-probs, its text.
std::vector<int64_t> response_tokens(const rollout::RolloutBatch& batch, int64_t row);
std::vector<float> response_logprobs_of(const rollout::RolloutBatch& batch, int64_t row);
std::string response_text(const rollout::RolloutBatch& batch, int64_t row,
                          const tokenizer::Tokenizer& tokenizer);

// avg@k of the student on the job's eval set (−1 without one), logged with `label`. Several
// ranks share the prompts and sum their counts (a collective: every rank calls it).
double evaluate(Job& job, const std::string& label);

}  // namespace gopd::train
