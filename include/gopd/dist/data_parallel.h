// Data parallelism around the single-device model (DESIGN.md "Scale-out plan"): each rank
// computes the gradient of its shard of the batch, already divided by the global count of
// what the loss averages over, so the sum over ranks is the update one process would make.
// Gradients cross ranks in buckets of about 25 MB on c10d's all-reduce, once per optimizer
// update, overlapped with the mini-batch's last backward: a bucket starts its all-reduce as soon
// as its parameters' gradients are complete (own buckets rather than c10d's Reducer: the Reducer
// averages where gopd's normalisation needs a sum, rebuilds its buckets in arrival order, and
// cannot hand ZeRO-1 a reduce-scattered shard). With optim.shard_optimizer (ZeRO-1)
// the gradients are reduce-scattered instead and each rank keeps AdamW's state for its slice
// of the flattened parameters only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "gopd/dist/comm.h"

namespace gopd::dist {

// Sums every parameter's gradient over the ranks, in place (an undefined gradient counts as
// zeros and is defined afterwards). A no-op in one process. Buckets hold the parameters in
// reverse order (the order backward completes them) and start strictly in bucket order, so
// every rank issues the same collectives in the same order whatever its backward did.
class GradientAllReduce {
 public:
  // `overlap` false: everything after backward (the reference path; the same sums, bit for bit).
  GradientAllReduce(std::vector<torch::Tensor> parameters, std::shared_ptr<const Comm> comm,
                    bool overlap = true, int64_t bucket_bytes = 25 << 20);
  // Before the backward that completes the gradients: from now on a parameter's gradient, once
  // accumulated, is copied into its bucket and a complete bucket starts its all-reduce.
  void arm();
  // After that backward (or with none): starts what is left, waits, writes the sums back.
  void run();
  double seconds() const;  // time run() waited since the last reset (what backward did not hide)
  // Buckets whose all-reduce started during a backward since the last reset, and all started.
  int64_t started_in_backward() const;
  int64_t started() const;
  void reset_time();

  struct State;  // shared with the gradient hooks

 private:
  std::shared_ptr<State> state_;
};

// ZeRO-1 AdamW: the parameters, flattened in order and padded to a multiple of the world size,
// are cut into one contiguous slice per rank; a rank keeps the AdamW moments of its slice only,
// updates it and all-gathers the updated weights. The same arithmetic as the unsharded step
// (kernels/adamw.h) on every element.
class ShardedAdamW {
 public:
  ShardedAdamW(std::vector<torch::Tensor> parameters, const torch::optim::AdamWOptions& options,
               std::shared_ptr<const Comm> comm);

  // Reduce-scatters the accumulated gradients into this rank's slice (sum over ranks) and
  // returns the global L2 norm of the summed gradient. Clears the parameters' gradients.
  double reduce_gradients();
  // Scales the slice's gradient (global-norm clipping).
  void scale_gradient(double factor);
  // One AdamW step of the slice at `lr`, then the updated weights to every rank.
  void step(double lr);
  void discard_gradient();  // a skipped update

  // A whole-model AdamW state (what a one-process run saves), assembled from every rank's
  // slice (collective: every rank calls it); and the inverse, from such a state.
  void export_state(torch::optim::AdamW& full) const;
  void import_state(const torch::optim::AdamW& full);

  int64_t state_bytes() const;  // this rank's moments
  double seconds() const { return seconds_; }
  void reset_time() { seconds_ = 0; }

 private:
  std::vector<torch::Tensor> parameters_;
  std::shared_ptr<const Comm> comm_;
  int64_t total_ = 0;  // elements of all parameters
  int64_t slice_ = 0;  // elements per rank (the last rank's tail is padding)
  torch::Tensor shard_;  // this rank's slice of the weights, AdamW's only parameter
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  double seconds_ = 0;
};

// Compares a hash of the weights across ranks; runtime failure naming the step when a rank's
// weights differ from the others'. A no-op in one process.
void check_weights_in_sync(const Comm& comm, const std::vector<torch::Tensor>& parameters,
                           int64_t step);

}  // namespace gopd::dist
