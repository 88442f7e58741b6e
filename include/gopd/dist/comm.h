// The collectives of a data-parallel job on PyTorch's c10d (DESIGN.md "Scale-out plan"): a
// TCPStore rendezvous at MASTER_ADDR:MASTER_PORT (torchrun's agent store when torchrun hosts
// one), ProcessGroupGloo for CPU tensors and, when the job's device is a GPU, ProcessGroupNCCL
// for CUDA tensors. Every collective has the job's timeout: a rank that died ends the others
// with an error naming the collective, never a hang. A Comm of one process (no environment)
// makes every collective the identity, so callers need no second path. c10d's headers stay in
// comm_torch.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "gopd/dist/world.h"

namespace gopd::dist {

class Comm {
 public:
  Comm();  // one process
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  // Joins the job of `world` (a one-process Comm when world.world_size == 1); `device` is the
  // rank's training device ("cpu", "cuda:N"). Runtime failure naming the address on timeout.
  static std::shared_ptr<Comm> join(const World& world, const std::string& device,
                                    std::chrono::milliseconds timeout);

  const World& world() const { return world_; }
  int64_t rank() const { return world_.rank; }
  int64_t size() const { return world_.world_size; }
  bool active() const { return world_.world_size > 1; }
  bool leader() const { return world_.rank == 0; }

  // A collective in flight; wait() ends it (with the job's timeout and error).
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
  };

  // In place, across ranks; CUDA tensors go over NCCL, CPU tensors over Gloo. Contiguous.
  void all_reduce_sum(torch::Tensor& tensor) const;
  // The same, started and left running (nullptr in one process).
  std::unique_ptr<Pending> all_reduce_sum_async(torch::Tensor& tensor) const;
  void all_reduce_max(torch::Tensor& tensor) const;
  // `input` holds size() equal slices; `output` (one slice) gets their sum over ranks, this
  // rank's slice: ZeRO-1's gradient shard.
  void reduce_scatter_sum(torch::Tensor& output, const torch::Tensor& input) const;
  // `output` (size() slices) gets every rank's `input`, in rank order.
  void all_gather(torch::Tensor& output, const torch::Tensor& input) const;
  void barrier() const;

  // Conveniences on host values (Gloo).
  std::vector<double> sum(std::vector<double> values) const;
  double sum(double value) const { return sum(std::vector<double>{value})[0]; }
  double max(double value) const;
  // Every rank's text, in rank order.
  std::vector<std::string> all_gather_text(const std::string& text) const;

 private:
  struct Groups;
  World world_;
  std::unique_ptr<Groups> groups_;
};

}  // namespace gopd::dist
