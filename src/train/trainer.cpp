// The training loop of gopd train (see trainer.h): load the job, then per step draw the batch
// and run the algorithm's step (rollout → scoring → objective → update, steps.h), then log,
// evaluate and save. One process; data parallelism wraps it from outside.
#include "gopd/train/trainer.h"

#include <fstream>
#include <numeric>

#include <sys/resource.h>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "gopd/core/atomic_file.h"
#include "gopd/core/metrics.h"
#include "gopd/core/rng.h"
#include "gopd/core/run_directory.h"
#include "gopd/core/runtime.h"
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
  for (std::string text; std::getline(in, text);) {
    const nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
    if (line.is_object() && line.value("step", int64_t(0)) <= step) kept += text + "\n";
  }
  in.close();
  core::write_file_atomically(path, kept);
}

class Trainer {
 public:
  Trainer(const core::Config& config, const TrainOptions& options)
      : job_(load_job(config, options)),
        updater_(job_.student->parameters(), config.optim, job_.total_steps,
                 config.train.max_nonfinite_steps, job_.agg) {
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

  Job job_;
  Updater updater_;
  core::RunDirectory run_;
  TrainSummary summary_;
};

// After prepare_run (which seeds LibTorch): the optimizer, the generator and the logs as they
// were at the checkpoint.
void Trainer::restore() {
  if (job_.resume_from.empty()) return;
  restore_optimizer_and_rng(job_.resume_from, updater_.optimizer());
  const CheckpointState& state = job_.state;
  updater_.counters() = {state.optimizer_steps, state.skipped_steps, state.nonfinite_in_a_row};
  summary_.resumed_from_step = state.step;
  trim_log(run_.metrics_path, state.step);
  trim_log(run_.path + "/lens_dump.jsonl", state.step);
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
  summary_.final_model = save_checkpoint(checkpoints, state, job_.student, updater_.optimizer(),
                                         job_.cfg().student.path, job_.save_dtype);
  spdlog::info("saved {}", summary_.final_model);
  prune_checkpoints(checkpoints, job_.cfg().train.keep_last);
}

TrainSummary Trainer::run() {
  const core::Config& config = job_.cfg();
  run_ = core::prepare_run(config);
  restore();
  summary_.run_directory = run_.path;
  core::MetricsSink sink(run_.metrics_path);
  spdlog::info("{}: {} steps, {} prompts/step × {} samples, objective {}, kernels {}",
               config.algorithm, job_.total_steps, config.rollout.batch_prompts, config.rollout.n,
               job_.algorithm == Algorithm::sft ? "sft" : config.gopd.objective,
               config.kernels.impl);
  if (config.train.eval_every > 0 && job_.state.step == 0) {
    const double initial_accuracy = evaluate(job_, "step 0");
    if (initial_accuracy >= 0) sink.write({{"step", 0}, {"eval/accuracy", initial_accuracy}});
  }
  StepContext context{job_, updater_, run_.path};
  std::vector<size_t> order =
      job_.state.epoch >= 0 ? epoch_order(job_.state.epoch) : std::vector<size_t>();
  if (job_.state.epoch < 0) job_.state.cursor = 0;
  for (int64_t step = job_.state.step; step < job_.total_steps; ++step) {
    const std::vector<size_t> indices = next_batch(order);
    const auto step_start = Clock::now();
    core::reset_peak_gpu_memory(job_.device_name);
    nlohmann::json line = {{"step", step + 1}, {"epoch", job_.state.epoch}};
    if (job_.rlvr()) {
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
    line["perf/peak_rss_mb"] = peak_rss_mb();
    const bool last = step + 1 == job_.total_steps;
    if (config.train.eval_every > 0 && (step + 1) % config.train.eval_every == 0 && !last) {
      line["eval/accuracy"] = evaluate(job_, "step " + std::to_string(step + 1));
    }
    sink.write(line);
    if ((step + 1) % std::max<int64_t>(1, config.run.log_every) == 0 || last) log_step(step, line);
    if (config.train.save_every > 0 && (step + 1) % config.train.save_every == 0 && !last)
      save(step + 1);
  }
  save(job_.total_steps);
  summary_.steps = updater_.counters().applied;
  summary_.skipped_steps = updater_.counters().skipped;
  summary_.final_eval_accuracy = evaluate(job_, "final");
  if (summary_.final_eval_accuracy >= 0) {
    sink.write({{"step", job_.total_steps}, {"eval/accuracy", summary_.final_eval_accuracy}});
  }
  return summary_;
}

}  // namespace

TrainSummary run_training(const core::Config& config, const TrainOptions& options) {
  // Everything that can be wrong with the job is found before the run directory is created.
  Trainer trainer(config, options);
  return trainer.run();
}

}  // namespace gopd::train
