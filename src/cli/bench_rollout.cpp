// `gopd bench rollout`: generation throughput of the rollout engine. For each batch size it
// prints one JSON line: generated tokens/s with the KV cache and, measured in the same run,
// the recompute-everything baseline (a full forward over the whole sequence per new token),
// the peak resident memory of each, and where the rate sits against the machine's limit:
// the model's FLOPs (prefill + decode, attention included) per second divided by the matmul
// rate this run measures first (a large square GEMM in the model's dtype, same threads).
//
// Each configuration runs in a fresh child process (this binary re-executed with --one-batch)
// so that its peak memory is its own. Without --model it builds the tiny Qwen3-style model
// the other benchmarks use (vocab 1024, hidden 256, 4 layers) with random weights; prompts are
// random token ids and no stop token ends a response early, so every row runs to the limit.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "cli/bench_train.h"
#include "gopd/core/error.h"
#include "gopd/core/runtime.h"
#include "gopd/model/model_io.h"
#include "gopd/model/transformer.h"
#include "gopd/rollout/rollout_engine.h"

namespace gopd::cli {
namespace {

namespace fs = std::filesystem;

struct RolloutBenchOptions {
  std::string model;  // model directory; "" = the built tiny model
  std::vector<int64_t> batches = {1, 8, 64};
  int64_t prompt_tokens = 32;
  int64_t new_tokens = 256;
  int64_t threads = 0;  // 0 = all cores
  int64_t baseline_max_batch = 64;
  int64_t matmul_size = 1024;
  std::string device = "cpu";
  std::string dtype = "fp32";
  uint64_t seed = 1;
  int64_t repeats = 3;  // timed rollouts per KV-cache configuration; the median is reported
  // child mode: one configuration, one JSON object on stdout
  int64_t one_batch = 0;
  std::string one_mode = "cache";
};

torch::Dtype parse_dtype(const std::string& name) {
  return name == "bf16" ? torch::kBFloat16 : torch::kFloat;
}

model::ModelConfig tiny_config() {
  return model::model_config_for("qwen3", 1024, 256, 4, 4, 2, 768);
}

model::Transformer build_model(const RolloutBenchOptions& options, const std::string& device) {
  if (!options.model.empty()) {
    return model::load_model(options.model, parse_dtype(options.dtype), torch::Device(device));
  }
  torch::manual_seed(0);
  model::Transformer built(tiny_config());
  model::initialize_weights(built);
  built->to(torch::Device(device), parse_dtype(options.dtype));
  return built;
}

model::ModelConfig bench_model_config(const RolloutBenchOptions& options) {
  if (options.model.empty()) return tiny_config();
  return model::read_model_config(options.model);
}

// Multiply-adds × 2 of one forward of `tokens` new positions that attend to `context`
// positions on average: every projection and the output head, plus q·k and p·v.
double forward_flops(const model::ModelConfig& c, double tokens, double context) {
  const double head_dim = static_cast<double>(c.head_dim);
  const double attention_projections =
      static_cast<double>(c.hidden_size) * head_dim *
      static_cast<double>(2 * c.num_attention_heads + 2 * c.num_key_value_heads);
  const double mlp = 3.0 * static_cast<double>(c.hidden_size * c.intermediate_size);
  const double head = static_cast<double>(c.vocab_size * c.hidden_size);
  const double weights = static_cast<double>(c.num_hidden_layers) * (attention_projections + mlp) + head;
  const double attention_scores =
      2.0 * static_cast<double>(c.num_hidden_layers * c.num_attention_heads) * head_dim * context;
  return tokens * (2.0 * weights + 2.0 * attention_scores);
}

// FLOPs of a cached rollout: one prefill of the prompts, then one decode position per new
// token attending to everything before it.
double rollout_flops(const model::ModelConfig& c, int64_t batch, int64_t prompt, int64_t new_tokens) {
  const double prefill = forward_flops(c, static_cast<double>(prompt), (prompt + 1) / 2.0);
  const double decode = forward_flops(c, static_cast<double>(new_tokens - 1),
                                      prompt + new_tokens / 2.0);
  return static_cast<double>(batch) * (prefill + decode);
}

void synchronize(const std::string& device) {
  if (device.rfind("cuda", 0) == 0) torch::cuda::synchronize();
}

// The machine's matmul rate in GFLOP/s: an n × n × n GEMM repeated for at least half a second.
double measure_matmul_gflops(const RolloutBenchOptions& options, const std::string& device) {
  const int64_t n = options.matmul_size;
  const auto tensor_options = torch::TensorOptions().dtype(parse_dtype(options.dtype)).device(device);
  const torch::Tensor a = torch::randn({n, n}, tensor_options);
  const torch::Tensor b = torch::randn({n, n}, tensor_options);
  torch::Tensor out = torch::mm(a, b);  // warm-up
  synchronize(device);
  int64_t repeats = 0;
  const auto start = std::chrono::steady_clock::now();
  double seconds = 0.0;
  while (seconds < 0.5) {
    out = torch::mm(a, b);
    synchronize(device);
    ++repeats;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return 2.0 * static_cast<double>(n * n * n) * static_cast<double>(repeats) / seconds / 1e9;
}

nlohmann::json run_one(const RolloutBenchOptions& options, const std::string& device) {
  model::Transformer model = build_model(options, device);
  model->eval();
  model->set_fused_decode(options.one_mode != "cache-reference");
  const int64_t vocab = model->config().vocab_size;
  torch::manual_seed(static_cast<int64_t>(options.seed));
  const torch::Tensor ids = torch::randint(vocab, {options.one_batch, options.prompt_tokens}, torch::kLong);
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t i = 0; i < options.one_batch; ++i) {
    const int64_t* row = ids[i].data_ptr<int64_t>();
    prompts.emplace_back(row, row + options.prompt_tokens);
  }
  rollout::GenerationParams params;
  params.sampling.temperature = 1.0;
  params.max_new_tokens = options.new_tokens;  // no stop ids: every row runs to the limit
  params.seed = options.seed;
  // warm-up: LibTorch's first calls (thread pool, allocator, kernels) are not the rate
  rollout::GenerationParams warm_up = params;
  warm_up.max_new_tokens = std::min<int64_t>(4, options.new_tokens);
  const bool cached = options.one_mode != "recompute";
  if (cached) {
    (void)rollout::generate(model, prompts, warm_up);
  } else {
    (void)rollout::generate_without_cache(model, prompts, warm_up);
  }
  synchronize(device);
  core::reset_peak_gpu_memory(device);
  // The median of `repeats` timed rollouts (one for recompute, the slow baseline): single runs
  // of a few hundred milliseconds vary by ±20% on a shared 2-core machine.
  std::vector<double> times;
  rollout::RolloutBatch result;
  for (int64_t repeat = 0; repeat < (cached ? std::max<int64_t>(1, options.repeats) : 1); ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    result = cached ? rollout::generate(model, prompts, params)
                    : rollout::generate_without_cache(model, prompts, params);
    synchronize(device);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  const double seconds = times[times.size() / 2];
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return {{"tokens", result.generated_tokens},
          {"seconds", seconds},
          {"peak_rss_mb", static_cast<double>(usage.ru_maxrss) / 1024.0},
          {"peak_gpu_mb", static_cast<double>(core::peak_gpu_memory_bytes(device)) / (1024.0 * 1024.0)},
          {"threads", core::current_threads()}};
}

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

nlohmann::json run_child(const RolloutBenchOptions& options, int64_t batch, const std::string& mode) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::string command = quoted(self) + " bench rollout --one-batch " + std::to_string(batch) +
                        " --one-mode " + mode + " --prompt-tokens " + std::to_string(options.prompt_tokens) +
                        " --new-tokens " + std::to_string(options.new_tokens) + " --threads " +
                        std::to_string(options.threads) + " --device " + quoted(options.device) +
                        " --dtype " + options.dtype + " --seed " + std::to_string(options.seed) +
                        " --repeats " + std::to_string(options.repeats);
  if (!options.model.empty()) command += " --model " + quoted(options.model);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) core::throw_runtime_failure("bench rollout: cannot run " + command);
  std::string output;
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  if (pclose(pipe) != 0) {
    core::throw_runtime_failure("bench rollout: the batch " + std::to_string(batch) + " " + mode +
                                " run failed: " + output);
  }
  return nlohmann::json::parse(output);
}

double round2(double value) { return std::round(value * 100.0) / 100.0; }

void run_rollout_bench(const RolloutBenchOptions& options) {
  const std::string device = core::resolve_device(options.device, "--device");
  core::set_threads(options.threads);
  if (options.one_batch > 0) {
    std::cout << run_one(options, device).dump() << std::endl;
    return;
  }
  if (!options.model.empty() && !fs::exists(fs::path(options.model) / "config.json")) {
    core::throw_bad_input("bench rollout --model " + options.model + ": no config.json there");
  }
  const model::ModelConfig config = bench_model_config(options);
  const double matmul_gflops = measure_matmul_gflops(options, device);
  std::cout << nlohmann::json{{"bench", "matmul"},
                              {"n", options.matmul_size},
                              {"dtype", options.dtype},
                              {"device", device},
                              {"threads", core::current_threads()},
                              {"metric", "GFLOP/s"},
                              {"value", round2(matmul_gflops)}}
                   .dump()
            << std::endl;
  for (const int64_t batch : options.batches) {
    const nlohmann::json cached = run_child(options, batch, "cache");
    const double seconds = cached["seconds"].get<double>();
    const double tokens_per_s = cached["tokens"].get<double>() / seconds;
    const double flops = rollout_flops(config, batch, options.prompt_tokens, options.new_tokens);
    const double achieved_gflops = flops / seconds / 1e9;
    nlohmann::json line = {
        {"bench", "rollout"},
        {"model", options.model.empty() ? "built tiny qwen3 (h256 L4 vocab 1024)" : options.model},
        {"device", device},
        {"dtype", options.dtype},
        {"batch", batch},
        {"prompt_tokens", options.prompt_tokens},
        {"new_tokens", options.new_tokens},
        {"threads", cached["threads"]},
        {"metric", "tokens/s"},
        {"value", round2(tokens_per_s)},
        {"peak_rss_mb", round2(cached["peak_rss_mb"].get<double>())},
        {"model_mflop_per_token", round2(flops / cached["tokens"].get<double>() / 1e6)},
        {"achieved_gflops", round2(achieved_gflops)},
        {"matmul_gflops", round2(matmul_gflops)},
        {"roofline_fraction", std::round(achieved_gflops / matmul_gflops * 1000.0) / 1000.0}};
    if (device != "cpu") line["peak_gpu_mb"] = round2(cached["peak_gpu_mb"].get<double>());
    if (device == "cpu" && options.dtype == "fp32") {
      // the fused decode step (kernels/decode_ops.h) against the model's plain LibTorch path
      const nlohmann::json plain = run_child(options, batch, "cache-reference");
      const double plain_rate = plain["tokens"].get<double>() / plain["seconds"].get<double>();
      line["reference_decode_tokens_per_s"] = round2(plain_rate);
      line["fused_decode_ratio"] = round2(tokens_per_s / plain_rate);
    }
    if (batch <= options.baseline_max_batch) {
      const nlohmann::json recomputed = run_child(options, batch, "recompute");
      const double baseline = recomputed["tokens"].get<double>() / recomputed["seconds"].get<double>();
      line["baseline"] = round2(baseline);
      line["baseline_name"] = "recompute (no KV cache)";
      line["baseline_peak_rss_mb"] = round2(recomputed["peak_rss_mb"].get<double>());
      line["ratio"] = round2(tokens_per_s / baseline);
    }
    std::cout << line.dump() << std::endl;
  }
}

}  // namespace

BenchSubcommand add_bench_rollout(CLI::App* bench) {
  CLI::App* app = bench->add_subcommand(
      "rollout", "generation tokens/s with the KV cache vs recompute, peak RSS, fraction of the matmul roofline");
  auto options = std::make_shared<RolloutBenchOptions>();
  app->add_option("--model", options->model, "model directory (default: a built tiny Qwen3-style model)");
  app->add_option("--batch", options->batches, "batch sizes")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--prompt-tokens", options->prompt_tokens, "prompt length")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--new-tokens", options->new_tokens, "generated tokens per row")->capture_default_str()->check(CLI::PositiveNumber);
  app->add_option("--threads", options->threads, "LibTorch threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app->add_option("--baseline-max-batch", options->baseline_max_batch,
                  "run the recompute baseline only up to this batch size (0 = never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--matmul-size", options->matmul_size, "n of the n×n×n GEMM that measures the roofline")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--device", options->device, "cpu, cuda or cuda:N")->capture_default_str();
  app->add_option("--dtype", options->dtype, "weights and activations")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app->add_option("--seed", options->seed, "prompts and sampling")->capture_default_str();
  app->add_option("--repeats", options->repeats, "timed rollouts per KV-cache run (median reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--one-batch", options->one_batch, "(internal) run one configuration")->group("");
  app->add_option("--one-mode", options->one_mode, "(internal) cache | cache-reference | recompute")
      ->group("")
      ->check(CLI::IsMember({"cache", "cache-reference", "recompute"}));
  return BenchSubcommand{app, [options] { run_rollout_bench(*options); }};
}

}  // namespace gopd::cli
