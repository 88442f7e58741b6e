// Rewards of sampled responses for the RLVR trainers (GRPO, LENS): every response is checked
// by its record's verifier — math, a built-in task's exact checker, or the sandboxed code
// verifier — on `reward.workers` threads started off the training thread, so the trainer can
// compute log-probs while code runs. Optional format reward: reward = correct + w · format,
// where format = 1 when the response has the shape the verifier reads (a final answer it can
// extract; for code, a fenced code block). "Success" (accuracy, LENS) is correct ≥ 1 only.
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gopd/core/config.h"
#include "gopd/reward/code_verifier.h"

namespace gopd::reward {

// How one record is verified, decided once per record when the job loads.
struct RewardSpec {
  enum class Kind { kMath, kTask, kCode };
  Kind kind = Kind::kMath;
  std::string task;                        // kTask: the task name
  std::string answer;                      // kMath / kTask: the gold answer
  std::shared_ptr<const CodeTests> tests;  // kCode
};

// The spec of a record for `reward.type` (math | task | code, or auto = task when the record
// has a "task" field, else math): math needs an answer; task needs a "task" field (a "code"
// task is verified by the sandbox with the record's tests); code needs "tests". Throws a bad-input error naming `source` when the record lacks them.
RewardSpec reward_spec(const std::string& type, const std::string& answer, const nlohmann::json& task,
                       const nlohmann::json& tests, const std::string& source);

struct RewardResult {
  double correct = 0;  // the verifier's reward (code: fraction passed or all-or-nothing)
  double format = 0;   // 1 when the response has the verifier's expected shape
  double reward = 0;   // correct + format_weight · format: what the advantages use
  std::string detail;
};

struct RewardJob {
  const RewardSpec* spec = nullptr;  // must outlive the scoring
  std::string response;
};

// Model-written code runs only inside the sandbox: when `specs` hold code to run and bubblewrap
// is not installed, stops with exit 2 naming `source` (the data file), unless
// `allow_unsandboxed` holds true (reward.code.allow_unsandboxed of a training job, for a machine
// you can throw away), which turns the stop into a loud warning; nullopt = no such option.
void require_sandbox(const std::vector<RewardSpec>& specs, const std::string& source,
                     std::optional<bool> allow_unsandboxed);

// 1 when the response has the shape the verifier of `spec` reads (see the header comment).
double format_score(const RewardSpec& spec, const std::string& response);

// Scores all jobs on a background thread (code on `config.workers` sandbox workers); the
// future's results are in job order. Errors of a broken record (e.g. an arith gold answer that
// is not an integer) come out of future.get().
std::future<std::vector<RewardResult>> score_async(std::vector<RewardJob> jobs,
                                                   const core::RewardConfig& config);

}  // namespace gopd::reward
