// Training checkpoints (DESIGN.md "File formats"): `<run>/checkpoints/step_N/` is a Hugging Face
// model directory (what transformers and vLLM load) plus what resuming needs:
//   optimizer.pt         the optimizer's state (AdamW moments and step counts), torch::save
//   rng_state.pt         LibTorch's default CPU generator (the trainer's own sampling seeds are
//                        derived from run.seed and the step, so they need no state)
//   trainer_state.json   step, data cursor (epoch + position in its shuffled order), counters
// A checkpoint is written under `.partial-step_N` and renamed into place once complete, so a
// run killed mid-save leaves the previous checkpoints untouched and `--resume auto` ignores the
// partial one.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "gopd/model/transformer.h"

namespace gopd::train {

struct CheckpointState {
  int64_t step = 0;                // training steps completed
  int64_t epoch = -1;              // epoch of the data cursor (−1: none started)
  int64_t cursor = 0;              // records of that epoch's order already consumed
  int64_t optimizer_steps = 0;     // updates applied
  int64_t skipped_steps = 0;       // updates skipped (non-finite)
  int64_t nonfinite_in_a_row = 0;  // consecutive skipped updates at save time
  std::string algorithm;
};

// Writes `checkpoints_directory`/step_<state.step> (replacing one of that name) and returns its
// path. `tokenizer_directory` is copied into the model directory. The model is saved in
// `save_dtype` (Undefined = the weights' dtype); when that is not the weights' dtype, the
// weights as trained also go to master/ (a model directory of its own, which loaders of the
// checkpoint directory do not look into) so that a resumed run continues exactly.
std::string save_checkpoint(const std::string& checkpoints_directory, const CheckpointState& state,
                            model::Transformer& model, const torch::optim::Optimizer& optimizer,
                            const std::string& tokenizer_directory,
                            torch::ScalarType save_dtype = torch::ScalarType::Undefined);

// The directory a resumed run loads the student from: master/ when the checkpoint has one.
std::string trained_weights_directory(const std::string& checkpoint_directory);

// The complete checkpoint with the highest step under `checkpoints_directory`, "" if none.
std::string latest_checkpoint(const std::string& checkpoints_directory);

// Reads trainer_state.json of a checkpoint; bad input (exit 2) naming the file if it is missing
// or malformed.
CheckpointState read_checkpoint_state(const std::string& checkpoint_directory);

// Restores the optimizer's state and LibTorch's default CPU generator from a checkpoint.
void restore_optimizer_and_rng(const std::string& checkpoint_directory,
                               torch::optim::Optimizer& optimizer);

// Deletes all but the newest `keep_last` step_N checkpoints (keep_last <= 0 keeps all) and any
// partial ones.
void prune_checkpoints(const std::string& checkpoints_directory, int64_t keep_last);

}  // namespace gopd::train
