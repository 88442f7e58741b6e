// Data parallelism around the single-device model: see data_parallel.h.
#include "gopd/dist/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <string>

#include "gopd/core/error.h"
#include "gopd/kernels/adamw.h"

namespace gopd::dist {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

torch::Tensor gradient_or_zeros(const torch::Tensor& parameter) {
  const torch::Tensor& grad = parameter.grad();
  return grad.defined() ? grad.reshape({-1}) : torch::zeros({parameter.numel()}, parameter.options());
}

}  // namespace

struct GradientAllReduce::State {
  struct Bucket {
    std::vector<size_t> parameters;  // indices into `parameters`
    std::vector<int64_t> offsets;    // each one's place in `flat`
    int64_t numel = 0;
    torch::Tensor flat;
    int64_t waiting = 0;  // gradients not yet copied in
    std::unique_ptr<Comm::Pending> pending;
  };
  std::vector<torch::Tensor> parameters;
  std::shared_ptr<const Comm> comm;
  bool overlap = true;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;    // parameter → bucket
  std::vector<size_t> slot_of;      // parameter → its place in the bucket's lists
  std::vector<bool> copied;         // parameter → its gradient is in its bucket
  bool armed = false;
  size_t next = 0;  // the next bucket to start
  double seconds = 0;
  int64_t started_in_backward = 0;
  int64_t started = 0;

  void begin() {
    for (Bucket& bucket : buckets) {
      bucket.flat = torch::zeros({bucket.numel}, parameters[bucket.parameters.front()].options());
      bucket.waiting = int64_t(bucket.parameters.size());
      bucket.pending.reset();
    }
    copied.assign(parameters.size(), false);
    next = 0;
  }
  void copy_in(size_t index, const torch::Tensor& gradient) {
    Bucket& bucket = buckets[bucket_of[index]];
    const size_t slot = slot_of[index];
    bucket.flat.narrow(0, bucket.offsets[slot], gradient.numel()).copy_(gradient.reshape({-1}));
    copied[index] = true;
    --bucket.waiting;
  }
  void start_ready() {
    while (next < buckets.size() && buckets[next].waiting == 0) {
      buckets[next].pending = comm->all_reduce_sum_async(buckets[next].flat);
      ++next;
      ++started;
      started_in_backward += armed ? 1 : 0;
    }
  }
  // The hook of parameter `index`: its gradient of this backward, before accumulation.
  void on_gradient(size_t index, const torch::Tensor& incoming) {
    if (!armed || copied[index]) return;
    torch::NoGradGuard no_grad;
    const torch::Tensor& previous = parameters[index].grad();
    copy_in(index, previous.defined() ? previous + incoming : incoming);
    start_ready();
  }
};

GradientAllReduce::GradientAllReduce(std::vector<torch::Tensor> parameters,
                                     std::shared_ptr<const Comm> comm, bool overlap,
                                     int64_t bucket_bytes)
    : state_(std::make_shared<State>()) {
  State& state = *state_;
  state.parameters = std::move(parameters);
  state.comm = std::move(comm);
  state.overlap = overlap;
  state.bucket_of.assign(state.parameters.size(), 0);
  state.slot_of.assign(state.parameters.size(), 0);
  if (!state.comm || !state.comm->active()) return;
  // Backward completes the last parameters first: buckets run from the end, consecutive
  // parameters of one dtype and device until a bucket holds bucket_bytes.
  int64_t bytes = 0;
  for (size_t k = state.parameters.size(); k-- > 0;) {
    const torch::Tensor& parameter = state.parameters[k];
    const int64_t size = parameter.numel() * int64_t(parameter.element_size());
    const bool fits = !state.buckets.empty() && bytes + size <= bucket_bytes &&
                      state.parameters[state.buckets.back().parameters.front()].dtype() == parameter.dtype() &&
                      state.parameters[state.buckets.back().parameters.front()].device() == parameter.device();
    if (!fits) {
      state.buckets.emplace_back();
      bytes = 0;
    }
    State::Bucket& bucket = state.buckets.back();
    state.slot_of[k] = bucket.parameters.size();
    bucket.parameters.push_back(k);
    bucket.offsets.push_back(bucket.numel);
    bucket.numel += parameter.numel();
    state.bucket_of[k] = state.buckets.size() - 1;
    bytes += size;
  }
  if (!overlap) return;
  const std::weak_ptr<State> weak = state_;
  for (size_t k = 0; k < state.parameters.size(); ++k) {
    state.parameters[k].register_hook([weak, k](const torch::Tensor& gradient) {
      if (const std::shared_ptr<State> live = weak.lock()) live->on_gradient(k, gradient);
    });
  }
}

void GradientAllReduce::arm() {
  State& state = *state_;
  if (!state.comm || !state.comm->active() || !state.overlap) return;
  state.begin();
  state.armed = true;
}

void GradientAllReduce::run() {
  State& state = *state_;
  if (!state.comm || !state.comm->active()) return;
  const auto start = Clock::now();
  torch::NoGradGuard no_grad;
  if (!state.armed) state.begin();
  state.armed = false;
  // Gradients no hook delivered (no backward on this rank, or a parameter it did not reach).
  for (size_t k = 0; k < state.parameters.size(); ++k) {
    if (!state.copied[k]) state.copy_in(k, gradient_or_zeros(state.parameters[k]));
  }
  state.start_ready();
  for (State::Bucket& bucket : state.buckets) {
    if (bucket.pending) bucket.pending->wait();
    for (size_t slot = 0; slot < bucket.parameters.size(); ++slot) {
      torch::Tensor& parameter = state.parameters[bucket.parameters[slot]];
      const torch::Tensor summed =
          bucket.flat.narrow(0, bucket.offsets[slot], parameter.numel()).view_as(parameter);
      if (parameter.grad().defined()) {
        parameter.mutable_grad().copy_(summed);
      } else {
        parameter.mutable_grad() = summed.clone();
      }
    }
    bucket.flat = torch::Tensor();
    bucket.pending.reset();
  }
  state.seconds += since(start);
}

double GradientAllReduce::seconds() const { return state_->seconds; }
int64_t GradientAllReduce::started_in_backward() const { return state_->started_in_backward; }
int64_t GradientAllReduce::started() const { return state_->started; }
void GradientAllReduce::reset_time() {
  state_->seconds = 0;
  state_->started_in_backward = 0;
  state_->started = 0;
}

ShardedAdamW::ShardedAdamW(std::vector<torch::Tensor> parameters,
                           const torch::optim::AdamWOptions& options,
                           std::shared_ptr<const Comm> comm)
    : parameters_(std::move(parameters)), comm_(std::move(comm)) {
  for (const torch::Tensor& parameter : parameters_) {
    if (parameter.dtype() != parameters_.front().dtype() ||
        parameter.device() != parameters_.front().device()) {
      core::throw_bad_input("optim.shard_optimizer: the student's parameters must share one "
                            "dtype and device");
    }
    total_ += parameter.numel();
  }
  const int64_t ranks = comm_ ? comm_->size() : 1;
  slice_ = (total_ + ranks - 1) / ranks;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat;
  for (const torch::Tensor& parameter : parameters_) flat.push_back(parameter.detach().reshape({-1}));
  const int64_t begin = std::min(total_, slice_ * (comm_ ? comm_->rank() : 0));
  const int64_t length = std::min(total_, begin + slice_) - begin;
  shard_ = torch::zeros({slice_}, parameters_.front().options().requires_grad(false));
  shard_.narrow(0, 0, length).copy_(torch::cat(flat).narrow(0, begin, length));
  optimizer_ = std::make_unique<torch::optim::AdamW>(std::vector<torch::Tensor>{shard_}, options);
}

double ShardedAdamW::reduce_gradients() {
  const auto start = Clock::now();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (const torch::Tensor& parameter : parameters_) parts.push_back(gradient_or_zeros(parameter));
  const int64_t ranks = comm_ ? comm_->size() : 1;
  const int64_t padding = slice_ * ranks - total_;
  if (padding > 0) parts.push_back(torch::zeros({padding}, shard_.options()));
  const torch::Tensor flat = torch::cat(parts);
  for (torch::Tensor& parameter : parameters_) parameter.mutable_grad() = torch::Tensor();
  torch::Tensor grad = torch::empty({slice_}, shard_.options());
  if (comm_) {
    comm_->reduce_scatter_sum(grad, flat);
  } else {
    grad.copy_(flat);
  }
  shard_.mutable_grad() = grad;
  torch::Tensor squares = grad.to(torch::kFloat64).square().sum().reshape({1});
  if (comm_) comm_->all_reduce_sum(squares);
  seconds_ += since(start);
  return std::sqrt(squares.item<double>());
}

void ShardedAdamW::scale_gradient(double factor) {
  torch::NoGradGuard no_grad;
  shard_.mutable_grad().mul_(factor);
}

void ShardedAdamW::discard_gradient() { shard_.mutable_grad() = torch::Tensor(); }

void ShardedAdamW::step(double lr) {
  for (auto& group : optimizer_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  kernels::adamw_step(*optimizer_);
  shard_.mutable_grad() = torch::Tensor();
  const auto start = Clock::now();
  torch::NoGradGuard no_grad;
  const int64_t ranks = comm_ ? comm_->size() : 1;
  torch::Tensor flat = torch::empty({slice_ * ranks}, shard_.options());
  if (comm_) {
    comm_->all_gather(flat, shard_);
  } else {
    flat.copy_(shard_);
  }
  int64_t offset = 0;
  for (torch::Tensor& parameter : parameters_) {
    parameter.detach().copy_(flat.narrow(0, offset, parameter.numel()).view_as(parameter));
    offset += parameter.numel();
  }
  seconds_ += since(start);
}

void ShardedAdamW::export_state(torch::optim::AdamW& full) const {
  const auto found = optimizer_->state().find(shard_.unsafeGetTensorImpl());
  // Every rank steps together: either all have state or none.
  if (found == optimizer_->state().end()) return;
  const auto& state = static_cast<const torch::optim::AdamWParamState&>(*found->second);
  const int64_t ranks = comm_ ? comm_->size() : 1;
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> gathered;
  for (const auto& [name, slice] : {std::pair<std::string, torch::Tensor>{"exp_avg", state.exp_avg()},
                                    {"exp_avg_sq", state.exp_avg_sq()}}) {
    // Assembled in host memory (over Gloo): the whole state never sits on a GPU.
    const torch::Tensor host = slice.to(torch::kCPU).contiguous();
    torch::Tensor flat = torch::empty({slice_ * ranks}, host.options());
    if (comm_) {
      comm_->all_gather(flat, host);
    } else {
      flat.copy_(host);
    }
    gathered[name] = flat;
  }
  int64_t offset = 0;
  for (const torch::Tensor& parameter : parameters_) {
    auto moments = std::make_unique<torch::optim::AdamWParamState>();
    moments->step(state.step());
    moments->exp_avg(gathered["exp_avg"].narrow(0, offset, parameter.numel()).view_as(parameter).clone());
    moments->exp_avg_sq(
        gathered["exp_avg_sq"].narrow(0, offset, parameter.numel()).view_as(parameter).clone());
    full.state()[parameter.unsafeGetTensorImpl()] = std::move(moments);
    offset += parameter.numel();
  }
}

void ShardedAdamW::import_state(const torch::optim::AdamW& full) {
  std::vector<torch::Tensor> exp_avg;
  std::vector<torch::Tensor> exp_avg_sq;
  int64_t step = -1;
  for (const torch::Tensor& parameter : parameters_) {
    const auto found = full.state().find(parameter.unsafeGetTensorImpl());
    if (found == full.state().end()) {
      if (step > 0) core::throw_bad_input("optimizer state covers only some of the parameters");
      step = 0;
      continue;
    }
    const auto& state = static_cast<const torch::optim::AdamWParamState&>(*found->second);
    if (step == 0) core::throw_bad_input("optimizer state covers only some of the parameters");
    step = state.step();
    exp_avg.push_back(state.exp_avg().reshape({-1}));
    exp_avg_sq.push_back(state.exp_avg_sq().reshape({-1}));
  }
  if (step <= 0) return;
  const int64_t begin = std::min(total_, slice_ * (comm_ ? comm_->rank() : 0));
  const int64_t length = std::min(total_, begin + slice_) - begin;
  const auto slice_of = [&](const std::vector<torch::Tensor>& parts) {
    torch::Tensor slice = torch::zeros({slice_}, shard_.options());
    // Only this rank's range is copied to its device.
    int64_t offset = 0;
    for (const torch::Tensor& part : parts) {
      const int64_t from = std::max(begin, offset);
      const int64_t to = std::min(begin + length, offset + part.numel());
      if (from < to) slice.narrow(0, from - begin, to - from).copy_(part.narrow(0, from - offset, to - from));
      offset += part.numel();
    }
    return slice;
  };
  auto moments = std::make_unique<torch::optim::AdamWParamState>();
  moments->step(step);
  moments->exp_avg(slice_of(exp_avg));
  moments->exp_avg_sq(slice_of(exp_avg_sq));
  optimizer_->state()[shard_.unsafeGetTensorImpl()] = std::move(moments);
}

int64_t ShardedAdamW::state_bytes() const {
  return 2 * shard_.numel() * int64_t(shard_.element_size());  // exp_avg and exp_avg_sq
}

void check_weights_in_sync(const Comm& comm, const std::vector<torch::Tensor>& parameters,
                           int64_t step) {
  if (!comm.active()) return;
  torch::NoGradGuard no_grad;
  // Two sums per parameter in fp64, one of them position-weighted: ranks whose weights differ
  // in any bit will almost surely differ here; equal weights give equal sums (same reduction).
  std::vector<torch::Tensor> sums;
  for (const torch::Tensor& parameter : parameters) {
    const torch::Tensor values = parameter.detach().reshape({-1}).to(torch::kFloat64);
    const torch::Tensor positions =
        torch::arange(1, values.numel() + 1, values.options()).remainder(1021.0).add_(1.0);
    sums.push_back(values.sum().reshape({1}));
    sums.push_back((values * positions).sum().reshape({1}));
  }
  torch::Tensor high = torch::cat(sums).cpu().contiguous();
  if (!torch::isfinite(high).all().item<bool>()) {
    core::throw_runtime_failure("rank " + std::to_string(comm.rank()) + ": after step " +
                                std::to_string(step) + " the weights are not finite");
  }
  torch::Tensor low = -high;
  comm.all_reduce_max(high);
  comm.all_reduce_max(low);
  if (!torch::equal(high, -low)) {
    core::throw_runtime_failure(
        "rank " + std::to_string(comm.rank()) + ": after step " + std::to_string(step) +
        " the ranks' weights differ (train.check_sync_every); a rank updated differently — "
        "nondeterministic kernels, or a bug: please report it");
  }
}

}  // namespace gopd::dist
