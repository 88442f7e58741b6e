// Built-in synthetic tasks (DESIGN.md, "Built-in synthetic tasks"): generators for a
// math-like domain ("arith": multi-step integer arithmetic in words, with a worked solution)
// and a code-like domain ("code": infer a small Python function from input/output examples,
// checked by hidden tests), each with difficulty levels 1..5. Real checkpoints and data sets
// cannot be downloaded, so these are what the engine trains its own tiny models on.
//
// Generation is deterministic: all randomness comes from core::Rng, so the same options give
// byte-identical records on every compiler and standard library. Problems are deduplicated by
// their clean prompt text, and a content hash fixes which partition ("train" or "eval") a
// problem belongs to, so files generated with different seeds never leak eval problems into
// training.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "gopd/data/record.h"

namespace gopd::data {

struct TaskOptions {
  std::string task;   // "arith" | "code"
  int64_t count = 0;  // number of records, >= 1 (CLI: --n)
  uint64_t seed = 0;
  int64_t difficulty = 1;       // 1..5
  double noise = 0.0;           // fraction of prompt positions that get a distractor, [0, 1)
  std::string split = "train";  // "train" | "eval" | "all"
};

// The built-in task names, in the order help text lists them: {"arith", "code"}.
std::vector<std::string> task_names();

// Generates `count` distinct records (distinct by clean prompt text). Bad options throw
// core::Error with exit code 2 naming the option ("--difficulty: expected an integer in
// [1, 5], got 7"). When the problem space at this difficulty and split cannot supply `count`
// distinct problems, throws (exit code 2) saying how many it found. Problems whose clean
// prompt text is in `exclude` are skipped.
//
// Each record: id "<task>-d<difficulty>-<16 hex digits of the clean prompt's hash>", prompt
// (noisy when options.noise > 0), answer, domain ("math" or "code"), tests (code only), and
// extra {"task", "difficulty", "solution" (the SFT target response), "split", and
// "clean_prompt" when options.noise > 0}.
std::vector<Record> generate_task(const TaskOptions& options,
                                  const std::unordered_set<std::string>& exclude = {});

// The partition a problem belongs to, from a stable hash of its clean prompt text: about 10%
// of all problems are "eval", the rest "train".
std::string split_of(const std::string& clean_prompt_text);

}  // namespace gopd::data
