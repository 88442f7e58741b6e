// Implements threads, seeding and version facts on LibTorch.
#include "gopd/core/runtime.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <ATen/detail/CUDAHooksInterface.h>

#include <cstdlib>
#include <regex>
#include <sstream>
#include <thread>

#include "gopd/core/error.h"

#if GOPD_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>

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

int64_t cuda_device_count() { return cuda_available() ? int64_t(torch::cuda::device_count()) : 0; }

std::string resolve_device(const std::string& name, const std::string& key) {
  const int64_t devices = cuda_device_count();
  if (name == "auto") return devices > 0 ? "cuda:0" : "cpu";
  if (name == "cpu") return name;
  const int64_t index = name == "cuda" ? 0 : std::stoll(name.substr(5));
  if (devices == 0) {
    throw_bad_input(key + ": " + name + ", but no CUDA device is visible to this process" +
                    (at::detail::getCUDAHooks().hasCUDART() ? "" : " (this LibTorch has no CUDA)") +
                    "; use cpu (or auto)");
  }
  if (index >= devices) {
    throw_bad_input(key + ": " + name + ", but this process sees " + std::to_string(devices) +
                    " CUDA device" + (devices == 1 ? "" : "s") + " (cuda:0" +
                    (devices > 1 ? "..cuda:" + std::to_string(devices - 1) : "") + ")");
  }
  return "cuda:" + std::to_string(index);
}

int64_t peak_gpu_memory_bytes(const std::string& device) {
#if GOPD_TORCH_CUDA
  if (device.rfind("cuda", 0) == 0) {
    const auto index = static_cast<c10::DeviceIndex>(torch::Device(device).index());
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    return stats.allocated_bytes[size_t(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  }
#endif
  (void)device;
  return 0;
}

void reset_peak_gpu_memory(const std::string& device) {
#if GOPD_TORCH_CUDA
  if (device.rfind("cuda", 0) == 0) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(
        static_cast<c10::DeviceIndex>(torch::Device(device).index()));
  }
#endif
  (void)device;
}

std::string describe_torch_error(const std::exception& error) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&error);
  if (torch_error == nullptr) return "";
  std::string cause = torch_error->what_without_backtrace();
  if (const size_t newline = cause.find('\n'); newline != std::string::npos) cause.erase(newline);
  if (dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr) {
    return "out of memory: " + cause +
           "; use smaller batches (training: optim.micro_batch_size, rollout.batch_prompts, "
           "rollout.max_new_tokens, or train.activation_checkpointing: true; gopd serve: "
           "--max-batch-tokens)";
  }
  return "internal failure in LibTorch: " + cause;
}

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
