// The update of a training step: ppo_epochs passes × mini_batches optimizer updates over a
// batch, each accumulating micro-batch gradients weighted by their share of what the loss
// averages over (tokens, or sequences with at least one token), then a clipped, checked AdamW
// step at the schedule's learning rate. It knows nothing of the algorithm: the loss of rows
// [begin, end) is a call it is handed. In a multi-process job (dist/data_parallel.h) each rank
// updates from its shard of the batch: the micro-batch shares are taken of the global count,
// the gradients summed over ranks before the clip, and the metrics summed the same way, so N
// ranks make the update (and log the numbers) one process would.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "gopd/core/config.h"
#include "gopd/dist/comm.h"
#include "gopd/dist/data_parallel.h"
#include "gopd/objective/loss_output.h"
#include "gopd/objective/policy_loss.h"

namespace gopd::train {

// The loss of rows [begin, end) of a batch, for gradient accumulation.
using MicroBatchLoss = std::function<objective::LossOutput(int64_t begin, int64_t end)>;

// How a batch of `rows` rows, each `width` padded tokens (prompt + response), is updated:
// optim.ppo_epochs, optim.mini_batches, and rows per micro-batch (micro_rows).
struct UpdateShape {
  int64_t epochs = 1;
  int64_t mini_batches = 1;
  int64_t micro = 1;  // rows per forward/backward
  // Where each mini-batch starts in this rank's rows (mini_batches + 1 entries, the last = rows);
  // empty = rows · p / mini_batches. A rank of a multi-process job holds some of the batch's
  // rows: its share of each global mini-batch (steps.h align_mini_batches).
  std::vector<int64_t> bounds;
  bool several_updates() const { return epochs * mini_batches > 1; }
};
UpdateShape update_shape(const core::OptimConfig& optim, int64_t rows, int64_t width);

// Rows per forward/backward: optim.micro_batch_size, or with optim.micro_batch_tokens as many
// rows of `width` padded tokens as fit in the budget (at least one); `rows` when both are 0.
int64_t micro_rows(const core::OptimConfig& optim, int64_t rows, int64_t width);

// Applied and skipped updates, and how many non-finite updates came in a row (what a
// checkpoint saves of the update).
struct UpdateCounters {
  int64_t applied = 0;
  int64_t skipped = 0;
  int64_t nonfinite_in_a_row = 0;
};

class Updater {
 public:
  // `comm`: the job's ranks (nullptr = one process); optim.shard_optimizer shards AdamW (ZeRO-1)
  // across them.
  Updater(std::vector<torch::Tensor> parameters, const core::OptimConfig& optim,
          int64_t total_steps, int64_t max_nonfinite_steps, objective::LossAgg agg,
          std::shared_ptr<const dist::Comm> comm = nullptr);

  // The updates of step `step` over a batch whose response tokens are `mask` (B, T); writes
  // loss and optimizer metrics (micro-batch metrics averaged by share) into `line`.
  void update(int64_t step, const torch::Tensor& mask, const UpdateShape& shape,
              const MicroBatchLoss& loss_of, nlohmann::json& line);

  // Mixed precision: each micro-batch's forward (the loss closure) runs under bf16 autocast on
  // `device`; off by default.
  void set_autocast(c10::DeviceType device, bool enabled) {
    autocast_device_ = device;
    autocast_ = enabled;
  }

  // The whole-model AdamW state as a checkpoint saves it: the optimizer itself, or with ZeRO-1
  // one assembled from every rank's slice (a collective: every rank calls it).
  torch::optim::AdamW& optimizer_for_checkpoint();
  // Restores that state from a checkpoint (and LibTorch's CPU generator).
  void restore(const std::string& checkpoint_directory);
  // Drops ZeRO-1's assembled whole-model state once the checkpoint is written.
  void release_checkpoint_state() {
    if (sharded_) optimizer_->state().clear();
  }
  // Bytes of AdamW state this rank holds.
  int64_t optimizer_state_bytes() const;
  // The keys of the last update's line that hold numbers of the whole batch (summed over ranks
  // already): the loss and objective metrics and optim/*.
  const std::vector<std::string>& global_keys() const { return global_keys_; }
  UpdateCounters& counters() { return counters_; }

 private:
  // Clips, checks and applies the accumulated gradient; false when the update was skipped.
  bool apply(int64_t step, double loss, double& grad_norm);

  std::vector<torch::Tensor> parameters_;
  const core::OptimConfig& optim_;
  int64_t total_steps_;
  int64_t max_nonfinite_steps_;
  objective::LossAgg agg_;
  std::shared_ptr<const dist::Comm> comm_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;   // every parameter (also ZeRO-1's export)
  std::unique_ptr<dist::ShardedAdamW> sharded_;      // ZeRO-1
  std::unique_ptr<dist::GradientAllReduce> reduce_;  // several ranks, no ZeRO-1
  UpdateCounters counters_;
  std::vector<std::string> global_keys_;
  c10::DeviceType autocast_device_ = c10::DeviceType::CPU;
  bool autocast_ = false;
};

}  // namespace gopd::train
