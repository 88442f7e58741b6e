// The update of a training step: see update.h.
#include "gopd/train/update.h"

#include "gopd/model/autocast.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include <spdlog/spdlog.h>

#include "gopd/core/error.h"
#include "gopd/kernels/adamw.h"
#include "gopd/train/checkpoint.h"
#include "gopd/train/lr_schedule.h"

namespace gopd::train {
namespace {

// Running sums of the micro-batch metrics, each weighted by the micro-batch's share.
class MetricAccumulator {
 public:
  void add(const std::map<std::string, torch::Tensor>& metrics, double weight) {
    for (const auto& [key, value] : metrics) sums_[key] += weight * value.item<double>();
  }
  void put(nlohmann::json& line, std::vector<std::string>& keys) const {
    for (const auto& [key, value] : sums_) {
      line[key] = value;
      keys.push_back(key);
    }
  }
  // Every rank's sums added up (a rank may lack keys: one with no rows has none).
  void reduce(const dist::Comm& comm) {
    if (!comm.active()) return;
    std::map<std::string, double> total;
    for (const std::string& text : comm.all_gather_text(nlohmann::json(sums_).dump())) {
      const nlohmann::json rank = nlohmann::json::parse(text);
      for (const auto& [key, value] : rank.items())
        total[key] += value.is_number() ? value.get<double>() : std::nan("");  // NaN reads null
    }
    sums_ = std::move(total);
  }

 private:
  std::map<std::string, double> sums_;
};

}  // namespace

int64_t micro_rows(const core::OptimConfig& optim, int64_t rows, int64_t width) {
  if (optim.micro_batch_tokens > 0) {
    return std::max<int64_t>(1, optim.micro_batch_tokens / std::max<int64_t>(1, width));
  }
  return optim.micro_batch_size > 0 ? optim.micro_batch_size : rows;
}

UpdateShape update_shape(const core::OptimConfig& optim, int64_t rows, int64_t width) {
  UpdateShape shape;
  shape.epochs = std::max<int64_t>(1, optim.ppo_epochs);
  shape.mini_batches = std::clamp<int64_t>(optim.mini_batches, 1, std::max<int64_t>(rows, 1));
  shape.micro = micro_rows(optim, rows, width);
  return shape;
}

Updater::Updater(std::vector<torch::Tensor> parameters, const core::OptimConfig& optim,
                 int64_t total_steps, int64_t max_nonfinite_steps, objective::LossAgg agg,
                 std::shared_ptr<const dist::Comm> comm)
    : parameters_(std::move(parameters)),
      optim_(optim),
      total_steps_(total_steps),
      max_nonfinite_steps_(max_nonfinite_steps),
      agg_(agg),
      comm_(comm ? std::move(comm) : std::make_shared<const dist::Comm>()) {
  const auto options = torch::optim::AdamWOptions(optim.lr)
                           .betas({optim.beta1, optim.beta2})
                           .eps(optim.eps)
                           .weight_decay(optim.weight_decay);
  optimizer_ = std::make_unique<torch::optim::AdamW>(parameters_, options);
  if (optim.shard_optimizer) {
    sharded_ = std::make_unique<dist::ShardedAdamW>(parameters_, options, comm_);
  } else {
    reduce_ = std::make_unique<dist::GradientAllReduce>(parameters_, comm_, optim.overlap_allreduce);
  }
}

torch::optim::AdamW& Updater::optimizer_for_checkpoint() {
  if (sharded_) {
    optimizer_->state().clear();
    sharded_->export_state(*optimizer_);
  }
  return *optimizer_;
}

void Updater::restore(const std::string& checkpoint_directory) {
  restore_optimizer_and_rng(checkpoint_directory, *optimizer_);
  // A state saved from host memory (ZeRO-1's export) or another device goes to each parameter's
  // (with ZeRO-1, only this rank's slice is taken from it, in import_state).
  for (const torch::Tensor& parameter : sharded_ ? std::vector<torch::Tensor>() : parameters_) {
    const auto found = optimizer_->state().find(parameter.unsafeGetTensorImpl());
    if (found == optimizer_->state().end()) continue;
    auto& state = static_cast<torch::optim::AdamWParamState&>(*found->second);
    if (state.exp_avg().device() != parameter.device()) {
      state.exp_avg(state.exp_avg().to(parameter.device()));
      state.exp_avg_sq(state.exp_avg_sq().to(parameter.device()));
    }
  }
  if (sharded_) {
    sharded_->import_state(*optimizer_);
    optimizer_->state().clear();  // the slices are the state now
  }
}

int64_t Updater::optimizer_state_bytes() const {
  if (sharded_) return sharded_->state_bytes();
  int64_t bytes = 0;
  for (const torch::Tensor& parameter : parameters_)
    bytes += 2 * parameter.numel() * int64_t(parameter.element_size());
  return bytes;
}

void Updater::update(int64_t step, const torch::Tensor& mask, const UpdateShape& shape,
                     const MicroBatchLoss& loss_of, nlohmann::json& line) {
  const int64_t rows = mask.size(0);
  // Each micro-batch's loss is weighted by its share of what the mini-batch's loss averages
  // over (tokens, or sequences with at least one token), so that accumulation gives the loss
  // of the whole mini-batch in one piece.
  const bool by_tokens = agg_ == objective::LossAgg::token_mean;
  const auto units = [&](int64_t begin, int64_t end) {
    const torch::Tensor part = mask.slice(0, begin, end);
    return by_tokens ? part.sum().item<double>() : (part.sum(1) > 0).sum().item<double>();
  };
  // Several ranks: every rank makes as many updates (a rank short of rows makes some from an
  // empty slice, with a zero gradient), and shares are of the mini-batch's count over all ranks.
  const int64_t mini_batches =
      comm_->active() ? int64_t(comm_->max(double(shape.mini_batches))) : shape.mini_batches;
  const double updates = double(shape.epochs * mini_batches);
  const bool bounded = int64_t(shape.bounds.size()) == mini_batches + 1;
  const auto bound = [&](int64_t part) {
    return bounded ? shape.bounds[size_t(part)] : rows * part / mini_batches;
  };
  std::vector<double> global_units;
  for (int64_t part = 0; part < mini_batches; ++part)
    global_units.push_back(units(bound(part), bound(part + 1)));
  global_units = comm_->sum(global_units);
  if (reduce_) reduce_->reset_time();
  if (sharded_) {
    sharded_->reset_time();
    optimizer_->state().clear();  // a checkpoint's export, no longer needed
  }
  MetricAccumulator metrics;
  double grad_norm_sum = 0;
  int64_t applied = 0;
  for (int64_t epoch = 0; epoch < shape.epochs; ++epoch) {
    for (int64_t part = 0; part < mini_batches; ++part) {
      // Mini-batch `part`: a contiguous slice of the rows (the rows of one prompt stay together).
      const int64_t first = bound(part);
      const int64_t last = bound(part + 1);
      const double part_units = std::max(1.0, global_units[size_t(part)]);
      optimizer_->zero_grad();
      double loss = 0;
      for (int64_t begin = first; begin < last; begin += shape.micro) {
        const int64_t end = std::min(last, begin + shape.micro);
        const double share = units(begin, end) / part_units;
        objective::LossOutput output;
        {
          // Forward under the student's autocast; backward outside it (as torch.autocast).
          const model::AutocastGuard autocast(autocast_device_, autocast_);
          output = loss_of(begin, end);
        }
        // The mini-batch's last backward completes the gradients: their all-reduce starts
        // bucket by bucket while it runs.
        if (reduce_ && end == last) reduce_->arm();
        (output.loss * share).backward();
        loss += share * output.loss.item<double>();
        metrics.add(output.metrics, share / updates);
      }
      double grad_norm = 0;
      if (apply(step, loss, grad_norm)) ++applied;
      grad_norm_sum += grad_norm;
    }
  }
  metrics.reduce(*comm_);
  global_keys_ = {"optim/lr", "optim/grad_norm", "optim/updates", "optim/skipped"};
  metrics.put(line, global_keys_);
  if (comm_->active()) {
    line["perf/allreduce_s"] = reduce_ ? reduce_->seconds() : sharded_->seconds();
    if (reduce_) {
      // The share of gradient buckets whose all-reduce ran behind backward (a rank's).
      line["perf/allreduce_overlapped_fraction"] =
          double(reduce_->started_in_backward()) / double(std::max<int64_t>(1, reduce_->started()));
    }
  }
  line["optim/lr"] = learning_rate(optim_, step, total_steps_);
  line["optim/grad_norm"] = grad_norm_sum / updates;
  line["optim/updates"] = applied;
  line["perf/micro_batch_rows"] = std::min(shape.micro, std::max<int64_t>(rows, 1));
  line["perf/optimizer_state_mb"] = double(optimizer_state_bytes()) / 1e6;  // AdamW's, this rank
  if (applied < int64_t(updates)) line["optim/skipped"] = int64_t(updates) - applied;
}

bool Updater::apply(int64_t step, double loss, double& grad_norm) {
  const double lr = learning_rate(optim_, step, total_steps_);
  for (auto& group : optimizer_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  const double max_norm =
      optim_.grad_clip > 0 ? optim_.grad_clip : std::numeric_limits<double>::infinity();
  // The gradients' collectives first (with overlap they started during backward), then the
  // loss's: every rank issues them in this order, whether or not it ran a backward.
  if (sharded_) {
    grad_norm = sharded_->reduce_gradients();
  } else {
    reduce_->run();
    grad_norm = torch::nn::utils::clip_grad_norm_(parameters_, max_norm);
  }
  loss = comm_->sum(loss);
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    optimizer_->zero_grad();
    if (sharded_) sharded_->discard_gradient();
    ++counters_.nonfinite_in_a_row;
    ++counters_.skipped;
    spdlog::warn("step {}: non-finite {} — update skipped ({} in a row)", step + 1,
                 std::isfinite(loss) ? "gradient norm" : "loss", counters_.nonfinite_in_a_row);
    if (counters_.nonfinite_in_a_row >= max_nonfinite_steps_) {
      core::throw_runtime_failure("stopping: " + std::to_string(counters_.nonfinite_in_a_row) +
                                  " updates in a row had a non-finite loss or gradient norm "
                                  "(train.max_nonfinite_steps); lower optim.lr or check the data");
    }
    return false;
  }
  counters_.nonfinite_in_a_row = 0;
  if (sharded_) {
    // clip_grad_norm_'s rule on the global norm of the reduce-scattered gradient.
    const double factor = max_norm / (grad_norm + 1e-6);
    if (factor < 1) sharded_->scale_gradient(factor);
    sharded_->step(lr);
  } else {
    kernels::adamw_step(*optimizer_);
  }
  ++counters_.applied;
  return true;
}

}  // namespace gopd::train
