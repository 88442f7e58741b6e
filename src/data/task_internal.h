// Internal interface between the task dispatcher (tasks.cpp) and the per-task generators
// (arith_task.cpp, code_task.cpp). Not installed; tests use the public tasks.h.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "gopd/core/rng.h"

namespace gopd::data::internal {

// One generated problem before it becomes a Record.
struct Problem {
  std::string prompt;    // clean prompt text (the dedupe and split key)
  std::string answer;    // gold answer: the final number, or the reference program
  std::string solution;  // worked solution: the SFT target response
  nlohmann::json tests;  // hidden tests (code), null otherwise
};

// Each draws one random problem of the given difficulty (1..5, already validated) from `rng`.
Problem make_arith_problem(int64_t difficulty, core::Rng& rng);
Problem make_code_problem(int64_t difficulty, core::Rng& rng);

// A 64-bit finaliser (MurmurHash3's fmix64): FNV-1a's low bits are weak, so hashes are
// mixed before being reduced to a partition or used as a seed.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

inline uint64_t hash_text(const std::string& text) {
  return core::stable_hash(text.data(), static_cast<int64_t>(text.size()));
}

}  // namespace gopd::data::internal
