// The rollout stage and evaluation of the trainer: see steps.h.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "gopd/core/runtime.h"
#include "gopd/model/autocast.h"
#include "gopd/train/steps.h"

namespace gopd::train {

std::vector<std::vector<int64_t>> encode_prompts(const Job& job,
                                                 const std::vector<data::Record>& records) {
  std::vector<std::vector<int64_t>> prompts;
  for (const data::Record& record : records) {
    prompts.push_back(data::encode_prompt(record, job.format, *job.tokenizer.tokenizer));
  }
  return prompts;
}

void align_mini_batches(const StepContext& context, int64_t n, UpdateShape& shape) {
  const int64_t global_rows = context.batch_prompts * n;
  shape.mini_batches =
      std::clamp<int64_t>(context.job.cfg().optim.mini_batches, 1, std::max<int64_t>(global_rows, 1));
  const int64_t parts = shape.mini_batches;
  shape.bounds.assign(size_t(parts + 1), 0);
  const int64_t local_rows = int64_t(context.positions.size()) * n;
  for (int64_t part = 0; part <= parts; ++part) {
    const int64_t limit = global_rows * part / parts;  // global rows before mini-batch `part`
    int64_t count = 0;
    for (int64_t row = 0; row < local_rows; ++row) {
      const int64_t global = context.positions[size_t(row / n)] * n + row % n;
      count += global < limit ? 1 : 0;
    }
    shape.bounds[size_t(part)] = count;
  }
}

void mark_gpu_phase(const Job& job, const std::string& phase, nlohmann::json& line) {
  if (!job.device.is_cuda()) return;
  const double gigabytes = double(core::peak_gpu_memory_bytes(job.device_name)) / 1e9;
  line["perf/peak_gpu_mem_gb/" + phase] = gigabytes;
  const double step_peak =
      line.contains("perf/peak_gpu_mem_gb") ? line["perf/peak_gpu_mem_gb"].get<double>() : 0.0;
  line["perf/peak_gpu_mem_gb"] = std::max(step_peak, gigabytes);
  core::reset_peak_gpu_memory(job.device_name);
}

rollout::GenerationParams generation_params(const Job& job, uint64_t seed) {
  rollout::GenerationParams params;
  params.stop_token_ids = job.tokenizer.info.stop_ids;
  params.seed = seed;
  params.pad_id = job.pad_id;
  params.vocab_limit = job.vocab_width;
  return params;
}

rollout::RolloutBatch sample(Job& job, const std::vector<std::vector<int64_t>>& prompts,
                             uint64_t seed, int64_t n, const std::vector<int64_t>& positions,
                             rollout::RowFinished on_row_finished) {
  const core::RolloutConfig& config = job.cfg().rollout;
  rollout::GenerationParams params = generation_params(job, seed);
  params.sampling.temperature = config.temperature;
  params.sampling.top_p = config.top_p;
  params.sampling.top_k = config.top_k;
  params.sampling.min_p = config.min_p;
  params.n = n;
  params.max_new_tokens = config.max_new_tokens;
  params.prefill_chunk = config.prefill_chunk;
  params.max_active_rows = config.micro_batch_size;
  params.on_row_finished = std::move(on_row_finished);
  if (!positions.empty()) {
    for (const int64_t position : positions) {
      for (int64_t j = 0; j < n; ++j) params.row_seeds.push_back(rollout::sample_seed(seed, position, j));
    }
  }
  torch::NoGradGuard no_grad;
  const model::AutocastGuard autocast(job.device.type(), job.mixed_precision);
  job.student->eval();
  rollout::RolloutBatch batch = rollout::generate(job.student, prompts, params);
  job.student->train();
  return batch;
}

std::vector<int64_t> response_tokens(const rollout::RolloutBatch& batch, int64_t row) {
  const int64_t length = batch.response_mask[row].sum().item<int64_t>();
  const torch::Tensor ids = batch.response_ids[row].narrow(0, 0, length).contiguous();
  return std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + length);
}

std::vector<float> response_logprobs_of(const rollout::RolloutBatch& batch, int64_t row) {
  const int64_t length = batch.response_mask[row].sum().item<int64_t>();
  const torch::Tensor values =
      batch.response_logprobs[row].narrow(0, 0, length).to(torch::kFloat).contiguous();
  return std::vector<float>(values.data_ptr<float>(), values.data_ptr<float>() + length);
}

std::string response_text(const rollout::RolloutBatch& batch, int64_t row,
                          const tokenizer::Tokenizer& tokenizer) {
  return tokenizer.decode(response_tokens(batch, row), true);
}

double evaluate(Job& job, const std::string& label) {
  if (job.eval_records.empty()) return -1;
  const core::Config& config = job.cfg();
  const auto start = Clock::now();
  // This rank's share: every world_size-th prompt. A prompt's samples are seeded by its place
  // in its chunk of rollout.batch_prompts, as one process generating chunk by chunk seeds them.
  const size_t chunk = size_t(std::max<int64_t>(1, config.rollout.batch_prompts));
  std::vector<data::Record> records;
  std::vector<int64_t> places;
  std::vector<const reward::RewardSpec*> specs;
  for (size_t i = size_t(job.world.rank); i < job.eval_records.size();
       i += size_t(job.world.world_size)) {
    records.push_back(job.eval_records[i]);
    places.push_back(int64_t(i % chunk));
    specs.push_back(&job.eval_specs[i]);
  }
  const std::vector<std::vector<int64_t>> prompts = encode_prompts(job, records);
  rollout::GenerationParams params = generation_params(job, job_seed(job, "eval"));
  params.sampling.temperature = config.eval.temperature;
  params.sampling.top_p = config.eval.top_p;
  params.n = config.eval.samples;
  params.max_new_tokens = config.eval.max_new_tokens;
  params.max_active_rows = config.rollout.micro_batch_size;
  std::vector<reward::RewardJob> jobs;
  {
    torch::NoGradGuard no_grad;
    const model::AutocastGuard autocast(job.device.type(), job.mixed_precision);
    job.student->eval();
    for (size_t begin = 0; begin < prompts.size(); begin += chunk) {
      const size_t end = std::min(prompts.size(), begin + chunk);
      const std::vector<std::vector<int64_t>> part(prompts.begin() + long(begin),
                                                   prompts.begin() + long(end));
      params.row_seeds.clear();
      for (size_t i = begin; i < end; ++i) {
        for (int64_t j = 0; j < params.n; ++j)
          params.row_seeds.push_back(rollout::sample_seed(params.seed, places[i], j));
      }
      const rollout::RolloutBatch batch = rollout::generate(job.student, part, params);
      for (int64_t r = 0; r < batch.response_ids.size(0); ++r) {
        jobs.push_back({specs[begin + size_t(batch.group_ids[r].item<int64_t>())],
                        response_text(batch, r, *job.tokenizer.tokenizer)});
      }
    }
    job.student->train();
  }
  // Correctness only: the format reward is a training signal, not accuracy.
  double correct = 0;
  for (const reward::RewardResult& result : reward::score_async(jobs, config.reward).get())
    correct += result.correct;
  const std::vector<double> totals = job.comm->sum({correct, double(jobs.size())});
  const double accuracy = totals[1] == 0 ? 0.0 : totals[0] / totals[1];
  spdlog::info("eval ({}): avg@{} = {:.4f} on {} prompts ({:.1f} s)", label, config.eval.samples,
               accuracy, job.eval_records.size(), seconds_since(start));
  return accuracy;
}

}  // namespace gopd::train
