// Implements threads, seeding and version facts on LibTorch.
#include "gopd/core/runtime.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cstdlib>
#include <thread>

namespace gopd::core {

int64_t set_threads(int64_t threads) {
  if (threads <= 0) threads = std::max<int64_t>(1, std::thread::hardware_concurrency());
  at::set_num_threads(static_cast<int>(threads));
  return at::get_num_threads();
}

int64_t current_threads() { return at::get_num_threads(); }

void seed_everything(uint64_t seed) {
  torch::manual_seed(seed);
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(seed);
  std::srand(static_cast<unsigned>(seed));
}

std::string torch_version() { return TORCH_VERSION; }

bool cuda_available() { return torch::cuda::is_available(); }

}  // namespace gopd::core
