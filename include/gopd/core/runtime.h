// Process-wide runtime settings that touch LibTorch: intra-op threads, seeding, and the
// facts `gopd --version` reports. Declared without LibTorch types so that callers do not
// pay for its headers.
#pragma once

#include <cstdint>
#include <exception>
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
int64_t cuda_device_count();

// The device a config names, checked against this machine: "auto" → "cuda:0" when a GPU is
// visible, else "cpu"; "cuda" → "cuda:0"; "cuda:N" must exist. Exit 2 naming `key` otherwise.
std::string resolve_device(const std::string& name, const std::string& key);

// Peak bytes the CUDA caching allocator handed out on `device` ("cuda:N") since the last
// reset; 0 for the CPU or without CUDA.
int64_t peak_gpu_memory_bytes(const std::string& device);
void reset_peak_gpu_memory(const std::string& device);

// The one-line message `main` prints for an exception that escaped from LibTorch, or "" if
// `error` is not one: out of memory becomes what to lower (exit 1, the machine's limit); any
// other c10::Error is an internal failure, reported by its first line without the C++
// backtrace LibTorch appends.
std::string describe_torch_error(const std::exception& error);

// What `gopd --version` reports about the build and the machine, one fact per line:
// the LibTorch version and whether it has CUDA (and which CUDA runtime), whether gopd's CUDA
// kernels are compiled in and for which architectures, and the devices visible now.
std::string build_and_device_report();

}  // namespace gopd::core
