// Counts the bytes LibTorch holds in CPU tensors, by wrapping the CPU allocator: current and
// peak, so that benchmarks can report the peak *extra* memory of an op (peak during the op
// minus what was allocated before it). One tracker at a time; it restores the previous
// allocator when destroyed.
#pragma once

#include <cstdint>
#include <memory>

namespace gopd::core {

class CpuMemoryTracker {
 public:
  CpuMemoryTracker();
  ~CpuMemoryTracker();
  CpuMemoryTracker(const CpuMemoryTracker&) = delete;
  CpuMemoryTracker& operator=(const CpuMemoryTracker&) = delete;

  int64_t current_bytes() const;
  int64_t peak_bytes() const;
  void reset_peak();  // peak := current

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace gopd::core
