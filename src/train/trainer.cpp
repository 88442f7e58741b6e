// The training loop of gopd train (see trainer.h): load the job, then per step draw the batch
// and run the algorithm's step (rollout → scoring → objective → update, steps.h), then log,
// evaluate and save. Several processes (dist/): every rank runs this loop on its share of each
// step's prompts (every world_size-th one); rank 0 writes the run directory.
#include "gopd/train/trainer.h"

#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include <sys/resource.h>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/core/metrics.h"
#include "gopd/core/op_profile.h"
#include "gopd/core/rng.h"
#include "gopd/core/run_directory.h"
#include "gopd/core/runtime.h"
#include "gopd/dist/data_parallel.h"
#include "gopd/train/checkpoint.h"
#include "gopd/train/job.h"
#include "gopd/train/steps.h"
#include "gopd/train/update.h"

namespace gopd::train {
namespace {

int64_t peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) / 1024;  // Linux: kilobytes
}

// Drops the lines of a JSONL log that a killed run wrote after its last checkpoint (they are
// redone): every line whose "step" is beyond `step`.
void trim_log(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept;
  int64_t dropped = 0;
  for (std::string text; std::getline(in, text);) {
    const nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
    const bool keep = line.is_object() && line.value("step", int64_t(0)) <= step;
    if (keep) kept += text + "\n";
    dropped += keep ? 0 : 1;
  }
  in.close();
  if (dropped == 0) return;
  spdlog::info("{}: dropped {} line(s) after step {} (redone from there; a half line of a killed "
               "run among them)", path, dropped, step);
  core::write_file_atomically(path, kept);
}

// How a metric of several ranks' shards becomes the batch's: counts add up, maxima and
// minima are taken, a stage's seconds are the slowest rank's, throughputs add up, and the
// rest are means over the ranks that report them, weighted by their prompts (exact for the
// per-response means when the ranks hold as many responses, as they do when the batch divides
// evenly). Keys the update already summed over the ranks are left as they are.
// Ratios of sums (put_ratio, put_std: their sums under "~" + key) are recomputed from the sums
// over all ranks, exactly; the "~" keys are dropped in any case.
void reduce_line(const dist::Comm& comm, double weight, const std::vector<std::string>& global,
                 nlohmann::json& line) {
  nlohmann::json sums = nlohmann::json::object();
  for (auto it = line.begin(); it != line.end();) {
    if (it.key().rfind('~', 0) == 0) {
      sums[it.key().substr(1)] = it.value();
      it = line.erase(it);
    } else {
      ++it;
    }
  }
  if (!comm.active()) return;
  const std::set<std::string> kept(global.begin(), global.end());
  const auto ends_with = [](const std::string& text, const std::string& tail) {
    return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
  };
  nlohmann::json mine = {{"weight", weight}, {"values", nlohmann::json::object()}, {"sums", sums}};
  for (const auto& [key, value] : line.items()) {
    // A maximum the step wrote over the update's (batch_stats.h) is this rank's: reduced too.
    const bool extreme = ends_with(key, "_max") || ends_with(key, "_min");
    if (value.is_number() && (extreme || !kept.count(key)) && !sums.contains(key) &&
        key != "step" && key != "epoch")
      mine["values"][key] = value;
  }
  const std::set<std::string> counts = {"lens/transferred", "lens/rebuilt_groups",
                                        "lens/all_correct_rebuilt_groups",
                                        "lens/purified_rollout_tokens"};
  std::map<std::string, std::vector<std::pair<double, double>>> seen;  // key → (value, weight)
  std::map<std::string, std::vector<double>> totals;                    // key → summed sums
  const auto number = [](const nlohmann::json& value) {
    return value.is_number() ? value.get<double>() : std::nan("");  // NaN is written as null
  };
  for (const std::string& text : comm.all_gather_text(mine.dump())) {
    const nlohmann::json rank = nlohmann::json::parse(text);
    for (const auto& [key, value] : rank["values"].items())
      seen[key].emplace_back(number(value), rank["weight"].get<double>());
    for (const auto& [key, value] : rank["sums"].items()) {
      std::vector<double>& total = totals[key];
      total.resize(value.size(), 0.0);
      for (size_t i = 0; i < value.size(); ++i) total[i] += number(value[i]);
    }
  }
  for (const auto& [key, total] : totals) {
    if (total.size() == 2) {
      line[key] = total[1] != 0 ? total[0] / total[1] : 0.0;
    } else {
      const double mean = total[0] / total[2];
      line[key] = std::sqrt(std::max(0.0, total[1] / total[2] - mean * mean));
    }
  }
  for (const auto& [key, values] : seen) {
    double result = 0;
    if (counts.count(key) || ends_with(key, "/responses") || ends_with(key, "_per_s")) {
      for (const auto& [value, w] : values) result += value;
    } else if (ends_with(key, "_max") || key.rfind("perf/", 0) == 0) {
      result = values.front().first;
      for (const auto& [value, w] : values) result = std::max(result, value);
    } else if (ends_with(key, "_min")) {
      result = values.front().first;
      for (const auto& [value, w] : values) result = std::min(result, value);
    } else {
      double weights = 0;
      for (const auto& [value, w] : values) {
        result += value * w;
        weights += w;
      }
      result = weights > 0 ? result / weights : values.front().first;
    }
    const bool integer = line.contains(key) && line[key].is_number_integer();
    if (integer) {
      line[key] = int64_t(std::llround(result));
    } else {
      line[key] = result;
    }
  }
}

class Trainer {
 public:
  Trainer(const core::Config& config, const TrainOptions& options)
      : job_(load_job(config, options)),
        updater_(job_.student->parameters(), config.optim, job_.total_steps,
                 config.train.max_nonfinite_steps, job_.agg, job_.comm) {
    updater_.set_autocast(job_.device.type(), job_.mixed_precision);
  }

  TrainSummary run();

 private:
  void restore();
  std::vector<size_t> epoch_order(int64_t epoch) const;
  // The next batch of record indices, moving to the next epoch when this one is used up.
  std::vector<size_t> next_batch(std::vector<size_t>& order);
  void log_step(int64_t step, const nlohmann::json& line) const;
  void save(int64_t step);
  // The step of a rank with none of the batch's prompts: its part in the update's collectives.
  void idle_step(int64_t step, int64_t batch_prompts, nlohmann::json& line);
  bool leader() const { return job_.comm->leader(); }

  Job job_;
  Updater updater_;
  core::RunDirectory run_;
  TrainSummary summary_;
};

// After prepare_run (which seeds LibTorch): the optimizer, the generator and the logs as they
// were at the checkpoint.
void Trainer::restore() {
  if (job_.resume_from.empty()) {
    // Training starts at step 0: lines an earlier run left in this run directory (a run killed
    // or stopped before its first checkpoint, a half line among them) would be redone.
    if (leader()) {
      trim_log(run_.metrics_path, 0);
      trim_log(run_.path + "/lens_dump.jsonl", 0);
    }
    return;
  }
  updater_.restore(job_.resume_from);
  const CheckpointState& state = job_.state;
  updater_.counters() = {state.optimizer_steps, state.skipped_steps, state.nonfinite_in_a_row};
  summary_.resumed_from_step = state.step;
  if (leader()) {
    trim_log(run_.metrics_path, state.step);
    trim_log(run_.path + "/lens_dump.jsonl", state.step);
  }
  spdlog::info("resumed from {} (step {}, epoch {}, record {} of the epoch)", job_.resume_from,
               state.step, state.epoch, state.cursor);
}

std::vector<size_t> Trainer::epoch_order(int64_t epoch) const {
  std::vector<size_t> order(job_.train_records.size());
  std::iota(order.begin(), order.end(), size_t(0));
  if (job_.cfg().data.shuffle) {
    core::Rng rng(job_seed(job_, "epoch/" + std::to_string(epoch)));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.next_u64() % i]);
  }
  return order;
}

std::vector<size_t> Trainer::next_batch(std::vector<size_t>& order) {
  CheckpointState& state = job_.state;
  if (state.epoch < 0 || state.cursor >= int64_t(order.size())) {
    order = epoch_order(++state.epoch);
    state.cursor = 0;
  }
  std::vector<size_t> indices;
  while (int64_t(indices.size()) < job_.cfg().rollout.batch_prompts &&
         state.cursor < int64_t(order.size())) {
    indices.push_back(order[size_t(state.cursor++)]);
  }
  return indices;
}

void Trainer::log_step(int64_t step, const nlohmann::json& line) const {
  const auto loss = line.find(job_.loss_key());
  spdlog::info("step {}/{}  loss {:.4f}  grad_norm {:.3f}  lr {:.2e}{}  {:.1f} s", step + 1,
               job_.total_steps, loss != line.end() ? loss->get<double>() : 0.0,
               line["optim/grad_norm"].get<double>(), line["optim/lr"].get<double>(),
               line.contains("reward/accuracy")
                   ? fmt::format("  accuracy {:.3f}", line["reward/accuracy"].get<double>())
                   : std::string(),
               line["perf/step_s"].get<double>());
}

void Trainer::save(int64_t step) {
  CheckpointState& state = job_.state;
  state.step = step;
  state.optimizer_steps = updater_.counters().applied;
  state.skipped_steps = updater_.counters().skipped;
  state.nonfinite_in_a_row = updater_.counters().nonfinite_in_a_row;
  const std::string checkpoints = run_.path + "/checkpoints";
  // With ZeRO-1 every rank hands in its slice of the optimizer state; rank 0 writes.
  torch::optim::AdamW& optimizer = updater_.optimizer_for_checkpoint();
  summary_.final_model = checkpoints + "/step_" + std::to_string(step);
  if (!leader()) {
    updater_.release_checkpoint_state();
    return;
  }
  summary_.final_model = save_checkpoint(checkpoints, state, job_.student, optimizer,
                                         job_.cfg().student.path, job_.save_dtype);
  updater_.release_checkpoint_state();
  spdlog::info("saved {}", summary_.final_model);
  prune_checkpoints(checkpoints, job_.cfg().train.keep_last);
}

void Trainer::idle_step(int64_t step, int64_t batch_prompts, nlohmann::json& line) {
  UpdateShape shape;
  if (job_.algorithm != Algorithm::sft) {
    shape = update_shape(job_.cfg().optim, 0, 1);
    align_mini_batches(StepContext{job_, updater_, run_.path, {}, batch_prompts, ""},
                       job_.cfg().rollout.n, shape);
  }
  updater_.update(
      step, torch::zeros({0, 1}, torch::TensorOptions().device(job_.device)), shape,
      [](int64_t, int64_t) -> objective::LossOutput {
        core::throw_runtime_failure("idle rank asked for a loss");
      },
      line);
}

TrainSummary Trainer::run() {
  const core::Config& config = job_.cfg();
  run_ = core::prepare_run(config, leader());
  if (!leader() && spdlog::get_level() < spdlog::level::warn) {
    spdlog::set_level(spdlog::level::warn);  // rank 0 tells the story; the others warn and fail
  }
  restore();
  summary_.run_directory = run_.path;
  std::optional<core::MetricsSink> sink;
  if (leader()) sink.emplace(run_.metrics_path);
  const auto write = [&](const nlohmann::json& line) {
    if (sink) sink->write(line);
  };
  spdlog::info("{}: {} steps, {} prompts/step × {} samples, objective {}, kernels {}",
               config.algorithm, job_.total_steps, config.rollout.batch_prompts, config.rollout.n,
               job_.algorithm == Algorithm::sft ? "sft" : config.gopd.objective,
               config.kernels.impl);
  if (config.train.eval_every > 0 && job_.state.step == 0) {
    const double initial_accuracy = evaluate(job_, "step 0");
    if (initial_accuracy >= 0) write({{"step", 0}, {"eval/accuracy", initial_accuracy}});
  }
  StepContext context{job_, updater_, run_.path, {}, 0, {}};
  std::vector<size_t> order =
      job_.state.epoch >= 0 ? epoch_order(job_.state.epoch) : std::vector<size_t>();
  if (job_.state.epoch < 0) job_.state.cursor = 0;
  for (int64_t step = job_.state.step; step < job_.total_steps; ++step) {
    // This rank's share of the batch: every world_size-th prompt, from its rank on.
    const std::vector<size_t> batch_indices = next_batch(order);
    std::vector<size_t> indices;
    context.positions.clear();
    context.lens_dump.clear();
    context.batch_prompts = int64_t(batch_indices.size());
    for (size_t p = size_t(job_.world.rank); p < batch_indices.size();
         p += size_t(job_.world.world_size)) {
      indices.push_back(batch_indices[p]);
      context.positions.push_back(int64_t(p));
    }
    const auto step_start = Clock::now();
    const core::OpSeconds ops_before = core::op_seconds();
    core::reset_peak_gpu_memory(job_.device_name);
    nlohmann::json line = {{"step", step + 1}, {"epoch", job_.state.epoch}};
    if (indices.empty()) {
      idle_step(step, int64_t(batch_indices.size()), line);
    } else if (job_.rlvr()) {
      rlvr_step(context, step, indices, line);
    } else {
      std::vector<data::Record> batch;
      for (const size_t index : indices) batch.push_back(job_.train_records[index]);
      if (job_.algorithm == Algorithm::sft) {
        sft_step(context, step, batch, line);
      } else {
        distillation_step(context, step, batch, line);
      }
    }
    line["perf/step_s"] = seconds_since(step_start);
    if (core::op_profile_enabled()) {
      // where the step went (gopd bench train): inside tensor operators or not
      const core::OpSeconds ops = core::op_seconds();
      line["perf/ops_matmul_s"] = ops.matmul - ops_before.matmul;
      line["perf/ops_fused_s"] = ops.fused - ops_before.fused;
      line["perf/ops_other_s"] = ops.other - ops_before.other;
      line["perf/ops_calls"] = double(ops.calls - ops_before.calls);
      line["perf/outside_ops_fraction"] =
          1.0 - (ops.total() - ops_before.total()) / std::max(line["perf/step_s"].get<double>(), 1e-9);
    }
    line["perf/peak_rss_mb"] = peak_rss_mb();
    reduce_line(*job_.comm, double(indices.size()), updater_.global_keys(), line);
    if (job_.comm->active()) line["dist/world_size"] = job_.world.world_size;
    if (job_.comm->active() && job_.algorithm == Algorithm::lens) {
      // LENS's dump lines of every rank, in rank order.
      std::string dump;
      for (const std::string& part : job_.comm->all_gather_text(context.lens_dump)) dump += part;
      context.lens_dump = dump;
    }
    if (leader() && !context.lens_dump.empty()) {
      std::ofstream out(run_.path + "/lens_dump.jsonl", std::ios::app);
      out << context.lens_dump;
      if (!out) core::throw_runtime_failure(run_.path + "/lens_dump.jsonl: cannot write");
    }
    const int64_t check_every = config.train.check_sync_every;
    if (check_every > 0 && (step + 1) % check_every == 0) {
      dist::check_weights_in_sync(*job_.comm, job_.student->parameters(), step + 1);
    }
    const bool last = step + 1 == job_.total_steps;
    if (config.train.eval_every > 0 && (step + 1) % config.train.eval_every == 0 && !last) {
      line["eval/accuracy"] = evaluate(job_, "step " + std::to_string(step + 1));
    }
    write(line);
    if (leader() && ((step + 1) % std::max<int64_t>(1, config.run.log_every) == 0 || last))
      log_step(step, line);
    if (config.train.save_every > 0 && (step + 1) % config.train.save_every == 0 && !last)
      save(step + 1);
  }
  save(job_.total_steps);
  summary_.steps = updater_.counters().applied;
  summary_.skipped_steps = updater_.counters().skipped;
  summary_.final_eval_accuracy = evaluate(job_, "final");
  if (summary_.final_eval_accuracy >= 0) {
    write({{"step", job_.total_steps}, {"eval/accuracy", summary_.final_eval_accuracy}});
  }
  job_.comm->barrier();  // rank 0 hosts the store: nobody leaves while another still talks
  return summary_;
}

}  // namespace

TrainSummary run_training(const core::Config& config, const TrainOptions& options) {
  // Everything that can be wrong with the job is found before the run directory is created.
  Trainer trainer(config, options);
  return trainer.run();
}

}  // namespace gopd::train
