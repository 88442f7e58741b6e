// A small, portable pseudo-random generator (SplitMix64-seeded xoshiro256**). gopd uses it
// wherever output must be byte-identical across compilers and standard libraries (dataset
// generation, shuffling): std::uniform_int_distribution and friends are implementation-defined.
#pragma once

#include <cstdint>

namespace gopd::core {

class Rng {
 public:
  explicit Rng(uint64_t seed);

  uint64_t next_u64();
  // Uniform integer in [low, high], both inclusive; requires low <= high.
  int64_t uniform_int(int64_t low, int64_t high);
  // Uniform double in [0, 1).
  double uniform01();
  // True with probability p.
  bool bernoulli(double p) { return uniform01() < p; }

 private:
  uint64_t state_[4];
};

// Stable 64-bit FNV-1a hash of bytes, for content-based dedupe and splits.
uint64_t stable_hash(const void* data, int64_t size);

}  // namespace gopd::core
