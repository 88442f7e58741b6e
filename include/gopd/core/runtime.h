// Process-wide runtime settings that touch LibTorch: intra-op threads, seeding, and the
// facts `gopd --version` reports. Declared without LibTorch types so that callers do not
// pay for its headers.
#pragma once

#include <cstdint>
#include <string>

namespace gopd::core {

// Sets LibTorch's intra-op thread count; 0 means all cores. Returns the count in use.
int64_t set_threads(int64_t threads);
int64_t current_threads();

// Seeds LibTorch's default generators (CPU, and CUDA when present) and the C library RNG.
// gopd's own std-independent generator is core::Rng, seeded explicitly where used.
void seed_everything(uint64_t seed);

std::string torch_version();
bool cuda_available();

// What `gopd --version` reports about the build and the machine, one fact per line:
// the LibTorch version and whether it has CUDA (and which CUDA runtime), whether gopd's CUDA
// kernels are compiled in and for which architectures, and the devices visible now.
std::string build_and_device_report();

}  // namespace gopd::core
