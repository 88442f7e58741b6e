// The on-policy training loop (DESIGN.md "Data flows one way"): per step draw prompts, sample
// with the current student (no grad), score with the teacher(s) and the reference (no grad),
// compute the objective, update with micro-batches and gradient accumulation, log, evaluate,
// save. Algorithms: gopd (ExOPD with λ, default 1.25), opd (λ = 1), grpo (a group of
// rollout.n samples per prompt, verifiable rewards on worker threads, group advantages, the
// clipped surrogate, optional k3 KL to the reference), lens (GRPO plus LENS's prompt
// purification, rollout transfer and CRPO ratio; lens/lens.h) and sft (cross-entropy on the
// dataset's solutions, prompts masked: used to make tiny bases and teachers).
#pragma once

#include <cstdint>
#include <string>

#include "gopd/core/config.h"

namespace gopd::train {

struct TrainSummary {
  int64_t steps = 0;                 // optimizer steps taken
  int64_t skipped_steps = 0;         // updates skipped for a non-finite loss or gradient norm
  std::string run_directory;
  std::string final_model;           // model directory written at the end (checkpoints/step_N)
  int64_t resumed_from_step = 0;     // step of the checkpoint the run continued from
  double final_eval_accuracy = -1;   // avg@k on the eval set, −1 without one
};

struct TrainOptions {
  // "" = a fresh run; "auto" = continue from the newest complete checkpoint of the run
  // directory (a fresh run if there is none); otherwise a checkpoint directory to continue from.
  std::string resume;
};

TrainSummary run_training(const core::Config& config, const TrainOptions& options = {});

}  // namespace gopd::train
