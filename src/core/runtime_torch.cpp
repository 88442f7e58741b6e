// Implements threads, seeding and version facts on LibTorch.
#include "gopd/core/runtime.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <ATen/detail/CUDAHooksInterface.h>

#include <cstdlib>
#include <regex>
#include <sstream>
#include <thread>

#if GOPD_TORCH_CUDA
#include "gopd/kernels/cuda_launchers.h"
#endif

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

std::string build_and_device_report() {
  std::ostringstream out;
  const auto& hooks = at::detail::getCUDAHooks();
  out << "libtorch " << TORCH_VERSION;
  if (hooks.hasCUDART()) {
    const long runtime = hooks.versionCUDART();
    out << " with CUDA " << runtime / 1000 << "." << runtime % 1000 / 10;
  } else {
    out << " without CUDA";
  }
  out << "\n";
#if GOPD_TORCH_CUDA
  out << "cuda kernels compiled for sm_" << std::regex_replace(GOPD_CUDA_ARCHS, std::regex(","), ", sm_")
      << " (nvcc " << GOPD_NVCC_VERSION << "), dispatched from the fused ops\n";
#else
  out << "cuda kernels not compiled in (needs nvcc and a LibTorch with CUDA)\n";
#endif
  const int64_t devices = cuda_available() ? int64_t(torch::cuda::device_count()) : 0;
  out << "devices cpu";
  for (int64_t i = 0; i < devices; ++i) {
    out << ", cuda:" << i;
#if GOPD_TORCH_CUDA
    char name[256];
    int major = 0, minor = 0;
    if (gopd::kernels::cuda::device_properties(int(i), name, int(sizeof(name)), &major, &minor) == 0) {
      out << " " << name << " (sm_" << major << minor << ")";
    }
#endif
  }
  out << "\ncuda " << (devices > 0 ? "available" : "not available") << "\n";
  return out.str();
}

}  // namespace gopd::core
