// Rollout throughput: a tiny model (4 layers, hidden 256, vocab 1024 — the size of the
// built-in tokenizers), 32-token prompts, 256 new tokens, batch sizes 1, 8 and 64. For each
// batch size it reports generated tokens/s with the KV cache and, measured in the same
// run, the recompute-everything baseline (a full forward over the whole sequence per
// token), plus the peak resident memory of each configuration. Every configuration runs in
// a fresh child process (this program re-executed with --one) so peak memory is its own.
//
// Usage: rollout_bench [--new-tokens N] [--baseline-max-batch B]
// The recompute baseline grows quadratically with length; by default it runs for every
// batch size (pass --baseline-max-batch 8 to skip it at 64 on slow machines).
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "gopd/model/transformer.h"
#include "gopd/rollout/rollout_engine.h"

namespace {

constexpr int64_t kPromptTokens = 32;

nlohmann::json run_one(int64_t batch, bool use_cache, int64_t new_tokens) {
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const gopd::model::ModelConfig config = gopd::model::model_config_for("qwen3", 1024, 256, 4, 4, 2, 768);
  torch::manual_seed(0);
  gopd::model::Transformer model(config);
  gopd::model::initialize_weights(model);
  model->eval();
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t i = 0; i < batch; ++i) {
    const torch::Tensor ids = torch::randint(config.vocab_size, {kPromptTokens}, torch::kLong);
    prompts.emplace_back(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + kPromptTokens);
  }
  gopd::rollout::GenerationParams params;
  params.sampling.temperature = 1.0;
  params.max_new_tokens = new_tokens;  // no stop tokens: every sequence runs to the limit
  params.seed = 1;
  const auto start = std::chrono::steady_clock::now();
  const gopd::rollout::RolloutBatch result =
      use_cache ? gopd::rollout::generate(model, prompts, params)
                : gopd::rollout::generate_without_cache(model, prompts, params);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return {{"tokens_per_s", static_cast<double>(result.generated_tokens) / seconds},
          {"seconds", seconds},
          {"peak_rss_mb", static_cast<double>(usage.ru_maxrss) / 1024.0},
          {"threads", at::get_num_threads()}};
}

nlohmann::json run_child(const std::string& self, int64_t batch, bool use_cache,
                         int64_t new_tokens) {
  const std::string command = "'" + self + "' --one " + std::to_string(batch) + " " +
                              (use_cache ? "cache" : "recompute") + " " +
                              std::to_string(new_tokens);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string output;
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  if (pclose(pipe) != 0) throw std::runtime_error(command + " failed: " + output);
  return nlohmann::json::parse(output);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--one") {
    std::cout
        << run_one(std::stoll(argv[2]), std::string(argv[3]) == "cache", std::stoll(argv[4])).dump()
        << "\n";
    return 0;
  }
  int64_t new_tokens = 256;
  int64_t baseline_max_batch = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--new-tokens") new_tokens = std::stoll(argv[i + 1]);
    if (flag == "--baseline-max-batch") baseline_max_batch = std::stoll(argv[i + 1]);
  }
  const std::string self = argv[0];
  double batch1_cache = 0.0;
  for (const int64_t batch : {1, 8, 64}) {
    const nlohmann::json cached = run_child(self, batch, true, new_tokens);
    if (batch == 1) batch1_cache = cached["tokens_per_s"].get<double>();
    nlohmann::json line = {{"bench", "rollout"},
                           {"batch", batch},
                           {"prompt_tokens", kPromptTokens},
                           {"new_tokens", new_tokens},
                           {"metric", "tokens/s"},
                           {"value", cached["tokens_per_s"]},
                           {"peak_rss_mb", cached["peak_rss_mb"]},
                           {"threads", cached["threads"]}};
    if (batch <= baseline_max_batch) {
      const nlohmann::json recomputed = run_child(self, batch, false, new_tokens);
      line["baseline"] = recomputed["tokens_per_s"];
      line["baseline_name"] = "recompute (no KV cache)";
      line["baseline_peak_rss_mb"] = recomputed["peak_rss_mb"];
      line["ratio"] =
          cached["tokens_per_s"].get<double>() / recomputed["tokens_per_s"].get<double>();
    }
    std::cout << line.dump() << "\n" << std::flush;
    if (batch > 1) {
      std::cout << nlohmann::json{{"bench", "rollout_batch_scaling"},
                                  {"batch", batch},
                                  {"metric", "tokens/s"},
                                  {"value", cached["tokens_per_s"]},
                                  {"baseline", batch1_cache},
                                  {"baseline_name", "batch 1 with KV cache"},
                                  {"ratio", cached["tokens_per_s"].get<double>() / batch1_cache}}
                       .dump()
                << "\n"
                << std::flush;
    }
  }
  return 0;
}
