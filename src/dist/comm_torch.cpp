// The collectives of a data-parallel job on c10d: see comm.h.
#include "gopd/dist/comm.h"

#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef GOPD_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "gopd/core/error.h"

namespace gopd::dist {

struct Comm::Groups {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> gloo;
  c10::intrusive_ptr<c10d::Backend> nccl;  // only when the rank's device is a GPU
  std::chrono::milliseconds timeout{600'000};
};

namespace {

[[noreturn]] void fail(const World& world, const std::string& what, const std::string& detail) {
  core::throw_runtime_failure("rank " + std::to_string(world.rank) + " of " +
                              std::to_string(world.world_size) + ": " + what + " failed (" +
                              detail + "); another rank stopped or the network is down");
}

bool loopback(const std::string& address) {
  return address == "127.0.0.1" || address == "localhost" || address == "::1";
}

}  // namespace

Comm::Comm() = default;
Comm::~Comm() {
  if (groups_ && groups_->nccl) {
    try {
      groups_->nccl->shutdown();  // NCCL's communicators and watchdog, before the store goes
    } catch (const std::exception& error) {
      spdlog::warn("NCCL shutdown: {}", error.what());
    }
  }
}

std::shared_ptr<Comm> Comm::join(const World& world, const std::string& device,
                                 std::chrono::milliseconds timeout) {
  auto comm = std::make_shared<Comm>();
  comm->world_ = world;
  if (!world.distributed()) return comm;
  auto groups = std::make_unique<Groups>();
  groups->timeout = timeout;
  try {
    // torchrun's agent already serves a store at MASTER_ADDR:MASTER_PORT; its workers are
    // clients under a per-attempt prefix (as torch.distributed's env:// rendezvous does).
    const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    const bool agent = agent_store && std::string(agent_store) == "True";
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(world.master_port);
    options.isServer = !agent && world.rank == 0;
    options.numWorkers = agent ? std::nullopt : std::optional<std::size_t>(world.world_size);
    options.waitWorkers = !agent;
    options.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::TCPStore>(world.master_addr, options);
    if (agent) {
      const char* restarts = std::getenv("TORCHELASTIC_RESTART_COUNT");
      store = c10::make_intrusive<c10d::PrefixStore>(
          "/worker/attempt_" + std::string(restarts ? restarts : "0"), store);
    }
    groups->store = store;
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* interfaces = std::getenv("GLOO_SOCKET_IFNAME");
    if (interfaces && *interfaces) {
      const std::string list(interfaces);  // "eth0" or "eth0,eth1"
      for (size_t start = 0; start <= list.size();) {
        const size_t comma = std::min(list.find(',', start), list.size());
        if (comma > start) {
          gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(
              list.substr(start, comma - start)));
        }
        start = comma + 1;
      }
    } else if (loopback(world.master_addr)) {
      gloo_options->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    groups->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo", store), int(world.rank),
        int(world.world_size), gloo_options);
    if (device.rfind("cuda", 0) == 0) {
#ifdef GOPD_WITH_NCCL
      // NCCL binds a communicator to the current device: the rank's own GPU.
      c10::cuda::set_device(c10::DeviceIndex(torch::Device(device).index()));
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      groups->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl", store), int(world.rank),
          int(world.world_size), nccl_options);
#else
      core::throw_bad_input("run.device " + device +
                            ": this gopd was built without NCCL; multi-process GPU training "
                            "needs a CUDA build of LibTorch and nccl.h at build time");
#endif
    }
  } catch (const c10::Error& error) {
    fail(world, "rendezvous at " + world.master_addr + ":" + std::to_string(world.master_port),
         error.what_without_backtrace());
  }
  comm->groups_ = std::move(groups);
  spdlog::info("rank {} of {} ({}, local rank {} of {}): joined {}:{}{}", world.rank,
               world.world_size, world.source, world.local_rank, world.local_world_size,
               world.master_addr, world.master_port,
               comm->groups_->nccl ? " (NCCL for GPU tensors, Gloo for host values)" : " (Gloo)");
  return comm;
}

namespace {

// Waits for a collective with the job's timeout; a failure names the collective.
void finish(const World& world, const char* what, const c10::intrusive_ptr<c10d::Work>& work,
            std::chrono::milliseconds timeout) {
  try {
    if (!work->wait(timeout)) fail(world, what, "timed out");
  } catch (const c10::Error& error) {
    fail(world, what, error.what_without_backtrace());
  }
}

}  // namespace

#define GOPD_COLLECTIVE(name, call)                                                    \
  do {                                                                                 \
    c10::intrusive_ptr<c10d::Work> work;                                               \
    try {                                                                              \
      work = (call);                                                                   \
    } catch (const c10::Error& error) {                                                \
      fail(world_, name, error.what_without_backtrace());                              \
    }                                                                                  \
    finish(world_, name, work, groups_->timeout);                                      \
  } while (false)

namespace {

c10d::Backend& backend_for(const torch::Tensor& tensor, const c10::intrusive_ptr<c10d::Backend>& gloo,
                           const c10::intrusive_ptr<c10d::Backend>& nccl) {
  return tensor.is_cuda() && nccl ? *nccl : *gloo;
}

}  // namespace

namespace {

// Starts an all-reduce of `tensor` (in place) on its backend; a failure to start names it.
c10::intrusive_ptr<c10d::Work> start_all_reduce(const World& world, const c10::intrusive_ptr<c10d::Backend>& gloo,
                                                const c10::intrusive_ptr<c10d::Backend>& nccl,
                                                torch::Tensor& tensor, c10d::ReduceOp::RedOpType op) {
  TORCH_CHECK(tensor.is_contiguous(), "all-reduce: tensor must be contiguous");
  std::vector<torch::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp(op);
  try {
    return backend_for(tensor, gloo, nccl).allreduce(tensors, options);
  } catch (const c10::Error& error) {
    fail(world, "all-reduce", error.what_without_backtrace());
  }
}

class PendingWork : public Comm::Pending {
 public:
  PendingWork(const World& world, c10::intrusive_ptr<c10d::Work> work,
              std::chrono::milliseconds timeout)
      : world_(world), work_(std::move(work)), timeout_(timeout) {}
  void wait() override { finish(world_, "all-reduce", work_, timeout_); }

 private:
  const World& world_;
  c10::intrusive_ptr<c10d::Work> work_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

void Comm::all_reduce_sum(torch::Tensor& tensor) const {
  if (!active()) return;
  finish(world_, "all-reduce",
         start_all_reduce(world_, groups_->gloo, groups_->nccl, tensor, c10d::ReduceOp::SUM),
         groups_->timeout);
}

std::unique_ptr<Comm::Pending> Comm::all_reduce_sum_async(torch::Tensor& tensor) const {
  if (!active()) return nullptr;
  return std::make_unique<PendingWork>(
      world_, start_all_reduce(world_, groups_->gloo, groups_->nccl, tensor, c10d::ReduceOp::SUM),
      groups_->timeout);
}

void Comm::all_reduce_max(torch::Tensor& tensor) const {
  if (!active()) return;
  finish(world_, "all-reduce (max)",
         start_all_reduce(world_, groups_->gloo, groups_->nccl, tensor, c10d::ReduceOp::MAX),
         groups_->timeout);
}

void Comm::reduce_scatter_sum(torch::Tensor& output, const torch::Tensor& input) const {
  if (!active()) {
    output.copy_(input.view_as(output));
    return;
  }
  TORCH_CHECK(input.numel() == output.numel() * size() && input.is_contiguous() &&
                  output.is_contiguous(),
              "reduce_scatter_sum: input must hold world-size contiguous slices of the output");
  torch::Tensor in = input;
  c10d::ReduceScatterOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  GOPD_COLLECTIVE("reduce-scatter", backend_for(output, groups_->gloo, groups_->nccl)._reduce_scatter_base(output, in, options));
}

void Comm::all_gather(torch::Tensor& output, const torch::Tensor& input) const {
  if (!active()) {
    output.copy_(input.view_as(output));
    return;
  }
  TORCH_CHECK(output.numel() == input.numel() * size() && input.is_contiguous() &&
                  output.is_contiguous(),
              "all_gather: output must hold world-size contiguous slices of the input");
  torch::Tensor in = input;
  GOPD_COLLECTIVE("all-gather", backend_for(output, groups_->gloo, groups_->nccl)._allgather_base(output, in));
}

void Comm::barrier() const {
  if (!active()) return;
  torch::Tensor token = torch::zeros({1});
  all_reduce_sum(token);
}

std::vector<double> Comm::sum(std::vector<double> values) const {
  if (!active() || values.empty()) return values;
  torch::Tensor tensor = torch::tensor(values, torch::kFloat64);
  all_reduce_sum(tensor);
  std::memcpy(values.data(), tensor.data_ptr<double>(), values.size() * sizeof(double));
  return values;
}

double Comm::max(double value) const {
  if (!active()) return value;
  torch::Tensor tensor = torch::tensor({value}, torch::kFloat64);
  all_reduce_max(tensor);
  return tensor.item<double>();
}

std::vector<std::string> Comm::all_gather_text(const std::string& text) const {
  if (!active()) return {text};
  torch::Tensor length = torch::tensor({int64_t(text.size())}, torch::kInt64);
  torch::Tensor lengths = torch::empty({size()}, torch::kInt64);
  all_gather(lengths, length);
  const int64_t longest = lengths.max().item<int64_t>();
  torch::Tensor mine = torch::zeros({std::max<int64_t>(longest, 1)}, torch::kUInt8);
  std::memcpy(mine.data_ptr(), text.data(), text.size());
  torch::Tensor all = torch::empty({size() * mine.numel()}, torch::kUInt8);
  all_gather(all, mine);
  std::vector<std::string> texts;
  const auto* bytes = reinterpret_cast<const char*>(all.data_ptr());
  for (int64_t r = 0; r < size(); ++r) {
    texts.emplace_back(bytes + r * mine.numel(), size_t(lengths[r].item<int64_t>()));
  }
  return texts;
}

}  // namespace gopd::dist
