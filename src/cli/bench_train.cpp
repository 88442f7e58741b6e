// `gopd bench train`: the training step on a tiny model, by phase, and the memory of the
// full-vocabulary objective. One JSON object per line on stdout:
//   1. G-OPD steps (sampled-token objective) with λ = 1.25 (reference pass) and λ = 1 (reference
//      pass skipped): seconds per step in rollout / scoring / update, tokens per second, peak
//      RSS — and the scoring time saved by skipping the reference pass, measured in this run;
//   2. the full-vocabulary G-OPD objective, forward + backward on (rows, vocab) logits, fused
//      kernels vs the LibTorch reference composite: time and peak extra CPU memory.
// Without --student/--teacher/--data it builds its own (arith data, a sentencepiece tokenizer,
// random Qwen3-style models) in a temporary directory.
#include "cli/bench_train.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "gopd/core/config.h"
#include "gopd/core/config_loader.h"
#include "gopd/core/error.h"
#include "gopd/core/op_profile.h"
#include "gopd/core/cpu_memory_tracker.h"
#include "gopd/core/runtime.h"
#include "gopd/data/jsonl.h"
#include "gopd/data/record.h"
#include "gopd/data/tasks.h"
#include "gopd/kernels/logit_head.h"
#include "gopd/model/model_io.h"
#include "gopd/model/transformer.h"
#include "gopd/objective/gopd_loss.h"
#include "gopd/tokenizer/tokenizer.h"
#include "gopd/tokenizer/tokenizer_trainer.h"
#include "gopd/train/trainer.h"

namespace gopd::cli {
namespace {

namespace fs = std::filesystem;

struct TrainBenchOptions {
  std::string student;  // model directories and data; built when empty
  std::string teacher;
  std::string data;
  int64_t hidden = 128;  // size of the built models
  int64_t layers = 4;
  int64_t steps = 5;  // measured steps per configuration (after one warm-up step)
  int64_t batch_prompts = 16;
  int64_t n = 2;
  int64_t max_new_tokens = 48;
  int64_t threads = 0;  // 0 = LibTorch's current setting
  int64_t rows = 1024;  // full-vocab objective: positions
  int64_t vocab = 32000;
  int64_t repeats = 3;
  std::string attention = "auto";
  // The GPU form (issue 16): real model shapes on run.device, ExOPD steps only (λ = 1.25).
  std::string device = "cpu";
  std::string shape = "tiny";  // tiny | qwen3-0.6b | qwen3-1.7b | qwen3-4b
  std::string precision = "auto";
  int64_t warmup = 1;                 // steps run before the measured ones
  int64_t micro_batch_tokens = 0;     // optim.micro_batch_tokens (0 = one micro-batch)
  bool activation_checkpointing = false;
  double peak_tflops = 989.0;  // dense bf16 peak of the GPU (H100 / H200 SXM) for the MFU
  std::string keep;            // keep the built models and data here (for the transformers run)
  bool skip_objective = false;  // skip the full-vocab objective measurement
  bool memory_only = false;     // only the update-memory comparison (run_memory_bench)
  int64_t nproc = 0;            // > 0: only the data-parallel comparison, 1 vs nproc ranks
};

// A Qwen3 shape by name; vocab 151,936 and head_dim 128 as the released configs.
model::ModelConfig shape_config(const std::string& shape, int64_t tokenizer_vocab,
                                const TrainBenchOptions& options) {
  if (shape == "tiny") {
    return model::model_config_for("qwen3", tokenizer_vocab, options.hidden, options.layers, 4, 2,
                                   3 * options.hidden);
  }
  struct Shape {
    int64_t hidden, layers, heads, kv_heads, intermediate;
  };
  const std::map<std::string, Shape> shapes = {{"qwen3-0.6b", {1024, 28, 16, 8, 3072}},
                                               {"qwen3-1.7b", {2048, 28, 16, 8, 6144}},
                                               {"qwen3-4b", {2560, 36, 32, 8, 9728}}};
  const Shape& s = shapes.at(shape);
  model::ModelConfig config =
      model::model_config_for("qwen3", 151936, s.hidden, s.layers, s.heads, s.kv_heads, s.intermediate);
  config.head_dim = 128;
  config.rope_theta = 1000000.0;
  config.max_position_embeddings = 40960;
  return config;
}

void print(const nlohmann::json& line) { std::cout << line.dump() << std::endl; }

// Parameters of a decoder of `config` (tied embeddings counted once; norms included).
int64_t parameter_count(const model::ModelConfig& c) {
  const int64_t attention = c.hidden_size * c.head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads);
  const int64_t mlp = 3 * c.hidden_size * c.intermediate_size;
  const int64_t norms = 2 * c.hidden_size + (c.qk_norm ? 2 * c.head_dim : 0);
  const int64_t embeddings = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2);
  return c.num_hidden_layers * (attention + mlp + norms) + embeddings + c.hidden_size;
}

double round2(double value) { return std::round(value * 100.0) / 100.0; }

// arith data, a tokenizer and two random models under `directory`.
void build_inputs(const fs::path& directory, const TrainBenchOptions& options, std::string& student,
                  std::string& teacher, std::string& data) {
  data::TaskOptions task;
  task.task = "arith";
  task.count = 512;
  task.difficulty = 2;
  task.seed = 1;
  std::vector<nlohmann::json> lines;
  for (data::Record record : data::generate_task(task)) {
    // Real shapes sample among 151,936 ids that the small tokenizer cannot decode: without an
    // answer nothing decodes a response (distillation verifies only records with answers).
    if (options.shape != "tiny") record.answer.clear();
    lines.push_back(data::to_json(record));
  }
  data = (directory / "train.jsonl").string();
  data::write_jsonl(data, lines);
  tokenizer::TrainTokenizerOptions tokenizer_options;
  tokenizer_options.input = data;
  tokenizer_options.vocab_size = 512;
  tokenizer_options.out = (directory / "tokenizer").string();
  tokenizer::train_tokenizer(tokenizer_options);
  const tokenizer::LoadedTokenizer loaded = tokenizer::load_tokenizer(tokenizer_options.out);
  for (const std::string name : {"student", "teacher"}) {
    model::ModelConfig config = shape_config(options.shape, loaded.tokenizer->vocab_size(), options);
    config.bos_token_id = loaded.info.bos_id;
    config.pad_token_id = loaded.info.pad_id;
    config.eos_token_ids = loaded.info.stop_ids;
    config.validate("bench train model");
    torch::manual_seed(name == "student" ? 1 : 2);
    model::Transformer transformer(config);
    model::initialize_weights(transformer);
    // Real shapes are saved in bf16 (half the disk; the student still trains fp32 weights).
    model::save_model(transformer, (directory / name).string(), tokenizer_options.out, 5'000'000'000,
                      options.shape == "tiny" ? torch::ScalarType::Undefined : torch::kBFloat16);
  }
  student = (directory / "student").string();
  teacher = (directory / "teacher").string();
}

// Runs `steps + 1` G-OPD steps and returns the mean of each perf/ metric over the steps after
// the first (warm-up).
core::Config bench_config(const fs::path& directory, const TrainBenchOptions& options,
                          const std::string& student, const std::string& teacher,
                          const std::string& data, double lambda) {
  core::Config config;
  config.algorithm = "gopd";
  config.run.name = "lambda-" + std::to_string(lambda);
  config.run.output_dir = (directory / "runs").string();
  config.run.threads = options.threads > 0 ? options.threads : core::current_threads();
  config.student.path = student;
  core::TeacherConfig teacher_config;
  teacher_config.path = teacher;
  teacher_config.dtype = options.device == "cpu" ? "float32" : "auto";
  config.teachers["math"] = teacher_config;
  config.reference.dtype = options.device == "cpu" ? "float32" : "auto";
  config.run.device = options.device;
  config.train.precision = options.precision;
  config.train.activation_checkpointing = options.activation_checkpointing;
  config.optim.micro_batch_tokens = options.micro_batch_tokens;
  config.gopd.lambda = lambda;
  config.data.train_file = data;
  config.rollout.batch_prompts = options.batch_prompts;
  config.rollout.n = options.n;
  config.rollout.max_new_tokens = options.max_new_tokens;
  config.optim.lr = 1e-4;
  config.optim.micro_batch_size = options.batch_prompts * options.n;
  config.kernels.attention = options.attention;
  config.train.max_steps = options.steps + options.warmup;
  config.resolve();
  config.validate();
  return config;
}

// The perf/* averages of a run's metrics.jsonl over the steps after the warm-up.
std::map<std::string, double> average_perf(const std::string& run_directory,
                                           const TrainBenchOptions& options) {
  std::map<std::string, double> sums;
  int64_t counted = 0;
  std::ifstream metrics(run_directory + "/metrics.jsonl");
  for (std::string text; std::getline(metrics, text);) {
    const nlohmann::json line = nlohmann::json::parse(text);
    if (line.value("step", 0) <= options.warmup) continue;
    ++counted;
    for (const auto& [key, value] : line.items()) {
      if (key.rfind("perf/", 0) == 0 || key == "rollout/response_length_mean") {
        sums[key] += value.get<double>();
      }
    }
  }
  for (auto& [key, value] : sums) value /= double(std::max<int64_t>(counted, 1));
  return sums;
}

std::map<std::string, double> measure_steps(const fs::path& directory, const TrainBenchOptions& options,
                                            const std::string& student, const std::string& teacher,
                                            const std::string& data, double lambda) {
  const core::Config config = bench_config(directory, options, student, teacher, data, lambda);
  const train::TrainSummary summary = train::run_training(config);
  return average_perf(summary.run_directory, options);
}

// Data parallel on this machine: the same G-OPD job (λ = 1.25, global batch as given) run by
// 1 rank and by `nproc` ranks through `gopd launch`, each rank with --threads threads, with
// ZeRO-1 off and on: step and update time, the all-reduce's share, tokens/s per rank, and the
// AdamW state a rank holds. The one-rank run is the baseline of each line; one rank with as
// many threads as the N ranks have together is measured too (the same cores, one process).
void run_data_parallel_bench(const fs::path& directory, const TrainBenchOptions& options,
                             const std::string& student, const std::string& teacher,
                             const std::string& data) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::map<std::string, double> baseline;
  const int64_t threads = std::max<int64_t>(1, options.threads);
  struct Variant {
    int64_t ranks;
    int64_t threads;
    bool shard;
    bool overlap;
  };
  for (const Variant& variant :
       {Variant{1, threads, false, true}, Variant{1, threads * options.nproc, false, true},
        Variant{options.nproc, threads, false, false}, Variant{options.nproc, threads, false, true},
        Variant{options.nproc, threads, true, true}}) {
    {
      const int64_t ranks = variant.ranks;
      const bool shard = variant.shard;
      if (ranks == 1 && variant.threads != threads && options.nproc == 1) continue;
      core::Config config = bench_config(directory, options, student, teacher, data, 1.25);
      config.run.name = "dp-" + std::to_string(ranks) + "x" + std::to_string(variant.threads) +
                        (shard ? "-zero1" : "") + (variant.overlap ? "" : "-no-overlap");
      config.optim.overlap_allreduce = variant.overlap;
      config.run.threads = variant.threads;
      config.optim.micro_batch_size = std::max<int64_t>(1, options.batch_prompts * options.n / ranks);
      config.optim.shard_optimizer = shard;
      config.train.check_sync_every = 0;
      const fs::path yaml = directory / (config.run.name + ".yaml");
      std::ofstream(yaml) << core::config_to_yaml(config);
      const std::string command = "'" + self + "' launch --nproc " + std::to_string(ranks) +
                                  " -- train '" + yaml.string() + "' > '" +
                                  (directory / (config.run.name + ".log")).string() + "' 2>&1";
      if (std::system(command.c_str()) != 0) {
        core::throw_runtime_failure("bench train --nproc: the run failed; see " +
                                    (directory / (config.run.name + ".log")).string());
      }
      const auto perf =
          average_perf((fs::path(config.run.output_dir) / config.run.name).string(), options);
      const auto get = [&perf](const std::string& key) {
        const auto found = perf.find(key);
        return found == perf.end() ? 0.0 : found->second;
      };
      if (baseline.empty()) baseline = perf;
      const double step_ms = get("perf/step_s") * 1000.0;
      const double baseline_step_ms = baseline["perf/step_s"] * 1000.0;
      print({{"bench", "train_data_parallel"},
             {"ranks", ranks},
             {"shard_optimizer", shard},
             {"overlap_allreduce", variant.overlap && !shard},
             {"threads_per_rank", config.run.threads},
             {"sequences", options.batch_prompts * options.n},
             {"steps", options.steps},
             {"device", options.device},
             {"step_ms", round2(step_ms)},
             {"rollout_ms", round2(get("perf/rollout_s") * 1000.0)},
             {"update_ms", round2(get("perf/update_s") * 1000.0)},
             // the gradient collectives' time not hidden behind backward (all of it without
             // overlap; ZeRO-1's reduce-scatter and all-gather are not overlapped)
             {"allreduce_exposed_ms", round2(get("perf/allreduce_s") * 1000.0)},
             {"update_tokens_per_s_per_rank", round2(get("perf/update_tokens_per_s") / double(ranks))},
             {"job_update_tokens_per_s", round2(get("perf/update_tokens_per_s"))},
             {"optimizer_state_mb_per_rank", round2(get("perf/optimizer_state_mb"))},
             {"peak_rss_mb_per_rank", round2(get("perf/peak_rss_mb"))},
             {"baseline_step_ms", round2(baseline_step_ms)},
             {"baseline_optimizer_state_mb", round2(baseline["perf/optimizer_state_mb"])},
             {"speedup", round2(baseline_step_ms / std::max(step_ms, 1e-9))}});
    }
  }
}

struct ObjectiveMeasurement {
  double milliseconds = 0;  // median
  double peak_extra_mb = 0;
};

// Forward + backward of the full-vocabulary objective on (rows, vocab) logits.
ObjectiveMeasurement measure_full_vocab(kernels::Impl impl, const TrainBenchOptions& options,
                                        core::CpuMemoryTracker& tracker) {
  torch::manual_seed(0);
  const int64_t batch = 4;
  const int64_t steps = options.rows / batch;
  const torch::Tensor student = torch::randn({batch, steps, options.vocab}).mul_(2.0);
  const torch::Tensor teacher = torch::randn({batch, steps, options.vocab}).mul_(2.0);
  const torch::Tensor reference = torch::randn({batch, steps, options.vocab}).mul_(2.0);
  const torch::Tensor mask = torch::ones({batch, steps});
  auto once = [&] {
    const torch::Tensor logits = student.clone().requires_grad_(true);
    const objective::LossOutput output = objective::gopd_full_vocab_loss(
        logits, teacher, reference, 1.25, 1.0, mask, objective::LossAgg::token_mean, impl);
    output.loss.backward();
  };
  once();  // warm-up
  std::vector<double> times;
  double peak = 0;
  for (int64_t i = 0; i < options.repeats; ++i) {
    tracker.reset_peak();
    const int64_t before = tracker.current_bytes();
    const auto start = std::chrono::steady_clock::now();
    once();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    // The clone of the student logits and its gradient are the same for both paths: counted.
    peak = std::max(peak, double(tracker.peak_bytes() - before) / (1024.0 * 1024.0));
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], peak};
}

// The student's update (forward + backward of the sampled-token log-probs through a chunked or
// whole lm_head) on a (batch, length) batch: median milliseconds and peak extra memory (the CPU
// allocator's, or the CUDA caching allocator's on a GPU) over `repeats`.
ObjectiveMeasurement measure_update_memory(model::Transformer& model, bool checkpointing,
                                           int64_t chunk_rows, int64_t batch, int64_t length,
                                           const TrainBenchOptions& options,
                                           core::CpuMemoryTracker& tracker) {
  const torch::Device device = model->output_weight().device();
  const std::string device_name = device.str();
  model->set_activation_checkpointing(checkpointing);
  torch::manual_seed(1);
  const torch::Tensor ids =
      torch::randint(0, model->config().vocab_size, {batch, length + 1}, torch::kLong).to(device);
  auto once = [&] {
    model->zero_grad(true);
    kernels::LogitHead head;
    head.hidden = model->hidden_states(ids.narrow(1, 0, length));
    head.weight = model->output_weight();
    head.compute_dtype = head.weight.scalar_type();
    head.chunk_rows = chunk_rows;
    kernels::token_logprobs(head, ids.narrow(1, 1, length), 1.0, false, kernels::Impl::fused)
        .logprobs.sum()
        .backward();
  };
  once();  // warm-up, and the gradients' own memory is allocated once (set to none each run)
  std::vector<double> times;
  double peak = 0;
  for (int64_t i = 0; i < options.repeats; ++i) {
    model->zero_grad(true);
    tracker.reset_peak();
    core::reset_peak_gpu_memory(device_name);
    const int64_t before = tracker.current_bytes();
    const auto start = std::chrono::steady_clock::now();
    once();
    if (device.is_cuda()) torch::cuda::synchronize();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    const double extra = device.is_cuda() ? double(core::peak_gpu_memory_bytes(device_name))
                                          : double(tracker.peak_bytes() - before);
    peak = std::max(peak, extra / (1024.0 * 1024.0));
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], peak};
}

// Activation checkpointing and the chunked lm_head against the plain update, same model, same
// batch, same run: what each saves in memory and costs in time.
void run_memory_bench(const TrainBenchOptions& options) {
  model::ModelConfig config = model::model_config_for("qwen3", options.vocab, options.hidden,
                                                      options.layers, 4, 2, 3 * options.hidden);
  torch::manual_seed(0);
  model::Transformer model(config);
  model::initialize_weights(model);
  model->to(torch::Device(options.device == "cpu" ? "cpu" : core::resolve_device(options.device, "--device")));
  const int64_t batch = 4;
  const int64_t length = std::max<int64_t>(1, options.rows / batch);
  core::CpuMemoryTracker tracker;
  const ObjectiveMeasurement plain =
      measure_update_memory(model, false, 0, batch, length, options, tracker);
  const ObjectiveMeasurement checkpointed =
      measure_update_memory(model, true, 0, batch, length, options, tracker);
  const ObjectiveMeasurement chunked =
      measure_update_memory(model, false, 256, batch, length, options, tracker);
  for (const auto& [knob, measured] :
       {std::pair<const char*, ObjectiveMeasurement>{"activation_checkpointing", checkpointed},
        std::pair<const char*, ObjectiveMeasurement>{"lm_head_chunk_tokens=256", chunked}}) {
    print({{"bench", "update_memory"},
           {"knob", knob},
           {"device", options.device},
           {"hidden", options.hidden},
           {"layers", options.layers},
           {"vocab", options.vocab},
           {"tokens", batch * length},
           {"metric", "peak_extra_mb"},
           {"value", round2(measured.peak_extra_mb)},
           {"baseline", round2(plain.peak_extra_mb)},
           {"ratio", round2(plain.peak_extra_mb / std::max(measured.peak_extra_mb, 1e-9))},
           {"time_ms", round2(measured.milliseconds)},
           {"time_ms_baseline", round2(plain.milliseconds)}});
  }
}

void run_train_bench(const TrainBenchOptions& options) {
  if (options.memory_only) {
    if (options.threads > 0) core::set_threads(options.threads);
    run_memory_bench(options);
    return;
  }
  if (options.threads > 0) core::set_threads(options.threads);
  const fs::path directory = fs::temp_directory_path() / ("gopd_bench_train_" + std::to_string(getpid()));
  fs::remove_all(directory);
  fs::create_directories(directory);
  struct Cleanup {
    fs::path path;
    ~Cleanup() {
      std::error_code error;
      fs::remove_all(path, error);
    }
  } cleanup{directory};
  std::string student = options.student;
  std::string teacher = options.teacher;
  std::string data = options.data;
  if (student.empty() || teacher.empty() || data.empty()) {
    std::string built_student, built_teacher, built_data;
    const fs::path inputs = options.keep.empty() ? directory : fs::path(options.keep);
    fs::create_directories(inputs);
    build_inputs(inputs, options, built_student, built_teacher, built_data);
    if (student.empty()) student = built_student;
    if (teacher.empty()) teacher = built_teacher;
    if (data.empty()) data = built_data;
  }
  if (options.nproc > 0) {
    run_data_parallel_bench(directory, options, student, teacher, data);
    return;
  }
  const auto previous_level = spdlog::get_level();
  spdlog::set_level(spdlog::level::warn);  // the runs' step lines would interleave with the JSON
  std::map<double, std::map<std::string, double>> by_lambda;
  const std::vector<double> lambdas =
      options.shape == "tiny" ? std::vector<double>{1.25, 1.0} : std::vector<double>{1.25};
  for (const double lambda : lambdas) {
    by_lambda[lambda] = measure_steps(directory, options, student, teacher, data, lambda);
    const auto& perf = by_lambda[lambda];
    nlohmann::json line = {{"bench", "train_step"},
                           {"objective", "sampled_token"},
                           {"lambda", lambda},
                           {"reference_pass", lambda != 1.0},
                           {"sequences", options.batch_prompts * options.n},
                           {"steps", options.steps},
                           {"threads", core::current_threads()},
                           {"device", options.device},
                           {"shape", options.shape},
                           {"precision", options.precision},
                           {"activation_checkpointing", options.activation_checkpointing}};
    for (const auto& [key, value] : perf) {
      const std::string name = key.substr(key.find('/') + 1);
      if (name.size() > 2 && name.compare(name.size() - 2, 2, "_s") == 0 && name.find("per_s") == std::string::npos) {
        line[name.substr(0, name.size() - 2) + "_ms"] = round2(value * 1000.0);  // per step
      } else {
        line[name] = round2(value);
      }
    }
    if (options.device != "cpu") {
      // Model FLOPs utilisation of the update: 6 FLOPs per parameter per trained token plus
      // causal attention (6 · layers · heads · head_dim · context per token, forward and
      // backward), recomputation not counted; over the GPU's dense bf16 peak.
      const model::ModelConfig config = shape_config(options.shape, 512, options);
      const double context = perf.count("rollout/response_length_mean")
                                 ? perf.at("rollout/response_length_mean")
                                 : double(options.max_new_tokens);
      const double flops_per_token =
          6.0 * double(parameter_count(config)) +
          6.0 * double(config.num_hidden_layers * config.num_attention_heads * config.head_dim) *
              context;
      const double tokens_per_s = perf.count("perf/update_tokens_per_s") ? perf.at("perf/update_tokens_per_s") : 0;
      line["parameters"] = parameter_count(config);
      line["update_mfu"] = round2(100.0 * flops_per_token * tokens_per_s / (options.peak_tflops * 1e12)) / 100.0;
      line["peak_tflops"] = options.peak_tflops;
    }
    print(line);
  }
  if (options.shape != "tiny") {
    spdlog::set_level(previous_level);
    return;
  }
  // Where a step goes: the same λ = 1.25 job again with every operator timed (outermost calls
  // on the trainer's thread; gopd's fused kernels record themselves), the rest is gopd's own
  // C++ (batching, bookkeeping) and the per-call cost of LibTorch outside its kernels.
  {
    core::Config config = bench_config(directory, options, student, teacher, data, 1.25);
    config.run.name += "-ops";
    core::enable_op_profile();
    core::count_ops_on_this_thread();
    const train::TrainSummary summary = train::run_training(config);
    core::disable_op_profile();
    auto perf = average_perf(summary.run_directory, options);
    const double step = perf["perf/step_s"];
    const double ops = perf["perf/ops_matmul_s"] + perf["perf/ops_fused_s"] + perf["perf/ops_other_s"];
    print({{"bench", "train_step_ops"},
           {"objective", "sampled_token"},
           {"lambda", 1.25},
           {"threads", core::current_threads()},
           {"metric", "outside_ops_fraction"},
           {"value", std::round((1.0 - ops / std::max(step, 1e-9)) * 1000.0) / 1000.0},
           {"target", 0.10},
           {"step_ms", round2(step * 1000.0)},
           {"step_ms_unprofiled", round2(by_lambda[1.25]["perf/step_s"] * 1000.0)},
           {"matmul_ms", round2(perf["perf/ops_matmul_s"] * 1000.0)},
           {"fused_kernels_ms", round2(perf["perf/ops_fused_s"] * 1000.0)},
           {"other_ops_ms", round2(perf["perf/ops_other_s"] * 1000.0)},
           {"outside_ops_ms", round2((step - ops) * 1000.0)},
           {"op_calls_per_step", std::round(perf["perf/ops_calls"])},
           {"rollout_ms", round2(perf["perf/rollout_s"] * 1000.0)},
           {"scoring_ms", round2(perf["perf/scoring_s"] * 1000.0)},
           {"update_ms", round2(perf["perf/update_s"] * 1000.0)}});
  }
  const double with_reference = by_lambda[1.25]["perf/scoring_s"];
  const double skipped = by_lambda[1.0]["perf/scoring_s"];
  print({{"bench", "reference_pass_skip"},
         {"metric", "scoring_ms_per_step"},
         {"value", round2(skipped * 1000.0)},
         {"baseline", round2(with_reference * 1000.0)},
         {"ratio", round2(with_reference / std::max(skipped, 1e-9))},
         {"step_ms", round2(by_lambda[1.0]["perf/step_s"] * 1000.0)},
         {"step_ms_baseline", round2(by_lambda[1.25]["perf/step_s"] * 1000.0)}});
  spdlog::set_level(previous_level);

  if (options.skip_objective) return;
  core::CpuMemoryTracker tracker;
  const ObjectiveMeasurement fused = measure_full_vocab(kernels::Impl::fused, options, tracker);
  const ObjectiveMeasurement reference = measure_full_vocab(kernels::Impl::reference, options, tracker);
  for (const auto& [metric, value, baseline] :
       {std::tuple<const char*, double, double>{"time_ms", fused.milliseconds, reference.milliseconds},
        std::tuple<const char*, double, double>{"peak_extra_mb", fused.peak_extra_mb, reference.peak_extra_mb}}) {
    print({{"bench", "full_vocab_objective"},
           {"rows", options.rows},
           {"vocab", options.vocab},
           {"lambda", 1.25},
           {"metric", metric},
           {"value", round2(value)},
           {"baseline", round2(baseline)},
           {"ratio", round2(baseline / std::max(value, 1e-9))}});
  }
}

}  // namespace

BenchSubcommand add_bench_train(CLI::App* bench) {
  CLI::App* app = bench->add_subcommand(
      "train", "G-OPD training steps by phase (λ = 1.25 vs 1: the reference pass) and the "
               "full-vocab objective's time and peak memory, fused vs reference");
  auto options = std::make_shared<TrainBenchOptions>();
  app->add_option("--student", options->student, "student model directory (default: a built tiny model)");
  app->add_option("--teacher", options->teacher, "teacher model directory (default: a built tiny model)");
  app->add_option("--data", options->data, "training JSONL (default: built arith data)");
  app->add_option("--hidden", options->hidden, "hidden size of the built models")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--layers", options->layers, "layers of the built models")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--steps", options->steps, "measured steps per configuration")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--batch-prompts", options->batch_prompts, "prompts per step")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--n", options->n, "samples per prompt")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--max-new-tokens", options->max_new_tokens, "response length cap")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--threads", options->threads, "LibTorch threads (0 = as set)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app->add_option("--rows", options->rows, "full-vocab objective: positions (multiple of 4)")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--vocab", options->vocab, "full-vocab objective: vocabulary size")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--repeats", options->repeats, "full-vocab objective: timed repetitions")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--device", options->device, "run.device of the runs (cpu, cuda, cuda:N)")->capture_default_str();
  app->add_option("--shape", options->shape, "built models: tiny (--hidden/--layers) or a Qwen3 shape (vocab 151,936; ExOPD step only)")
      ->capture_default_str()
      ->check(CLI::IsMember({"tiny", "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b"}));
  app->add_option("--precision", options->precision, "train.precision")->capture_default_str()->check(CLI::IsMember({"auto", "bf16", "fp32"}));
  app->add_option("--warmup", options->warmup, "steps before the measured ones")->capture_default_str()->check(CLI::NonNegativeNumber);
  app->add_option("--micro-batch-tokens", options->micro_batch_tokens, "optim.micro_batch_tokens (0 = one micro-batch)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--activation-checkpointing", options->activation_checkpointing, "train.activation_checkpointing");
  app->add_option("--peak-tflops", options->peak_tflops, "the GPU's dense bf16 peak, for the update MFU")->capture_default_str();
  app->add_option("--keep", options->keep, "build the models and data in this directory and keep them");
  app->add_flag("--skip-objective", options->skip_objective, "skip the full-vocab objective measurement");
  app->add_flag("--memory", options->memory_only,
                "only the update's peak memory and time: activation checkpointing and a chunked lm_head "
                "against the plain update (a --hidden/--layers/--vocab model, --rows tokens)");
  app->add_option("--nproc", options->nproc,
                  "only data parallel: the job by 1 rank and by this many (gopd launch), ZeRO-1 off "
                  "and on; --threads per rank (default 1)")
      ->check(CLI::PositiveNumber);
  app->add_option("--attention", options->attention, "kernels.attention of the runs")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "sdpa", "explicit"}));
  return {app, [options] { run_train_bench(*options); }};
}

}  // namespace gopd::cli
