// Implements the task dispatcher of include/gopd/data/tasks.h: option validation, the
// draw-dedupe-split loop shared by all tasks, noise injection and the Record layout. The
// per-task problem generators live in arith_task.cpp and code_task.cpp.
#include "gopd/data/tasks.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "gopd/core/error.h"
#include "gopd/core/rng.h"
#include "gopd/data/noise.h"
#include "task_internal.h"

namespace gopd::data {
namespace {

constexpr int64_t kMinDifficulty = 1;
constexpr int64_t kMaxDifficulty = 5;
// About 10% of the problem space is held out for evaluation.
constexpr uint64_t kEvalOneIn = 10;
// The search gives up after this many draws in a row yielded nothing new (duplicate, wrong
// partition or excluded). At a 10% partition acceptance rate, hitting it by chance while
// unseen problems remain common is impossible in practice (0.9^100000); it only fires once
// the space is essentially exhausted, which takes a fraction of a second.
constexpr int64_t kMaxConsecutiveMisses = 100000;
// Salt that separates the noise stream from the problem stream of the same seed.
constexpr uint64_t kNoiseSalt = 0x6e6f6973652d7631ULL;

std::string join_names(const std::vector<std::string>& names) {
  std::string joined;
  for (const std::string& name : names) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

void validate(const TaskOptions& options) {
  const std::vector<std::string> names = task_names();
  if (std::find(names.begin(), names.end(), options.task) == names.end()) {
    core::throw_bad_input("--task: expected one of " + join_names(names) + ", got '" +
                          options.task + "'");
  }
  if (options.count < 1) {
    core::throw_bad_input("--n: expected an integer >= 1, got " + std::to_string(options.count));
  }
  if (options.difficulty < kMinDifficulty || options.difficulty > kMaxDifficulty) {
    core::throw_bad_input("--difficulty: expected an integer in [1, 5], got " +
                          std::to_string(options.difficulty));
  }
  if (!(options.noise >= 0.0 && options.noise < 1.0)) {
    std::ostringstream message;
    message << "--noise: expected a number in [0, 1), got " << options.noise;
    core::throw_bad_input(message.str());
  }
  if (options.split != "train" && options.split != "eval" && options.split != "all") {
    core::throw_bad_input("--split: expected one of train, eval, all, got '" + options.split + "'");
  }
}

std::string hex16(uint64_t value) {
  char buffer[17];
  std::snprintf(buffer, sizeof(buffer), "%016llx", static_cast<unsigned long long>(value));
  return buffer;
}

Record make_record(const TaskOptions& options, internal::Problem problem,
                   const std::string& split) {
  const uint64_t content_hash = internal::hash_text(problem.prompt);
  Record record;
  record.id = options.task + "-d" + std::to_string(options.difficulty) + "-" + hex16(content_hash);
  record.answer = std::move(problem.answer);
  record.domain = options.task == "arith" ? "math" : "code";
  record.tests = std::move(problem.tests);
  record.extra = nlohmann::json::object();
  record.extra["task"] = options.task;
  record.extra["difficulty"] = options.difficulty;
  record.extra["solution"] = std::move(problem.solution);
  record.extra["split"] = split;
  if (options.noise > 0.0) {
    // One noise stream per problem, keyed by seed and content: the noisy prompt of a problem
    // does not depend on where it falls in the file, and the clean problem sequence of a
    // seed is the same at every noise rate (paired clean/noisy comparisons).
    core::Rng noise_rng(internal::mix64(options.seed ^ kNoiseSalt) ^ content_hash);
    record.prompt = inject_noise(problem.prompt, options.noise, noise_rng);
    record.extra["clean_prompt"] = problem.prompt;
  } else {
    record.prompt = problem.prompt;
  }
  return record;
}

}  // namespace

std::vector<std::string> task_names() { return {"arith", "code"}; }

std::string split_of(const std::string& clean_prompt_text) {
  return internal::mix64(internal::hash_text(clean_prompt_text)) % kEvalOneIn == 0 ? "eval"
                                                                                   : "train";
}

std::vector<Record> generate_task(const TaskOptions& options,
                                  const std::unordered_set<std::string>& exclude) {
  validate(options);
  const auto make_problem =
      options.task == "arith" ? internal::make_arith_problem : internal::make_code_problem;

  core::Rng rng(options.seed);
  std::unordered_set<std::string> seen;
  std::vector<Record> records;
  records.reserve(static_cast<size_t>(std::min<int64_t>(options.count, 1 << 20)));
  int64_t misses = 0;
  while (static_cast<int64_t>(records.size()) < options.count) {
    internal::Problem problem = make_problem(options.difficulty, rng);
    const std::string split = split_of(problem.prompt);
    const bool wanted = options.split == "all" || options.split == split;
    if (!wanted || exclude.count(problem.prompt) > 0 || !seen.insert(problem.prompt).second) {
      if (++misses >= kMaxConsecutiveMisses) {
        core::throw_bad_input("--n: asked for " + std::to_string(options.count) + " distinct " +
                              options.task + " problems at difficulty " +
                              std::to_string(options.difficulty) + " (split " + options.split +
                              "), but found only " + std::to_string(records.size()) +
                              "; lower --n, raise --difficulty or use another split");
      }
      continue;
    }
    misses = 0;
    records.push_back(make_record(options, std::move(problem), split));
  }
  return records;
}

}  // namespace gopd::data
