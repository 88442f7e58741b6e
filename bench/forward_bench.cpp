// Forward throughput of a tiny model (no gradient): tokens/s at batch 1 and batch 32 on
// 128-token sequences. The batch-1 number is the baseline for the batch-32 line, measured
// in the same run; each configuration reports the best of several timed repetitions.
#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "gopd/model/transformer.h"

namespace {

double tokens_per_second(gopd::model::Transformer& model, int64_t batch, int64_t steps,
                         int64_t repetitions) {
  torch::NoGradGuard no_grad;
  const torch::Tensor ids =
      torch::randint(model->config().vocab_size, {batch, steps}, torch::kLong);
  model->forward(ids);  // warm-up
  double best = 0.0;
  for (int64_t r = 0; r < repetitions; ++r) {
    const auto start = std::chrono::steady_clock::now();
    const torch::Tensor logits = model->forward(ids);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(batch * steps) / seconds);
    (void)logits;
  }
  return best;
}

}  // namespace

int main() {
  const int64_t threads = std::max<int64_t>(1, std::thread::hardware_concurrency());
  at::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(0);
  const gopd::model::ModelConfig config = gopd::model::model_config_for("qwen3", 4096, 256, 4, 4, 2, 768);
  gopd::model::Transformer model(config);
  gopd::model::initialize_weights(model);
  model->eval();
  const int64_t steps = 128;
  const double batch1 = tokens_per_second(model, 1, steps, 20);
  const double batch32 = tokens_per_second(model, 32, steps, 5);
  const std::string name = "qwen3 4x256 vocab 4096";
  std::cout
      << nlohmann::json{{"bench", "model_forward"}, {"model", name},      {"batch", 1},
                        {"seq_len", steps},         {"threads", threads}, {"metric", "tokens/s"},
                        {"value", batch1}}
             .dump()
      << "\n";
  std::cout << nlohmann::json{{"bench", "model_forward"},
                              {"model", name},
                              {"batch", 32},
                              {"seq_len", steps},
                              {"threads", threads},
                              {"metric", "tokens/s"},
                              {"value", batch32},
                              {"baseline", batch1},
                              {"baseline_name", "batch 1"},
                              {"ratio", batch32 / batch1}}
                   .dump()
            << "\n";
  return 0;
}
