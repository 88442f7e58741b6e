// Rewards of sampled responses for the RLVR trainers: see rollout_rewards.h.
#include "gopd/reward/rollout_rewards.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "gopd/core/error.h"
#include "gopd/reward/code_sandbox.h"
#include "gopd/reward/math_verifier.h"
#include "gopd/reward/task_verifier.h"

namespace gopd::reward {

RewardSpec reward_spec(const std::string& type, const std::string& answer, const nlohmann::json& task,
                       const nlohmann::json& tests, const std::string& source) {
  if (type == "auto") return reward_spec(task.is_string() ? "task" : "math", answer, task, tests, source);
  RewardSpec spec;
  const auto code_spec = [&](const std::string& why) {
    if (tests.is_null()) core::throw_bad_input(source + ": " + why + " needs a \"tests\" field");
    try {
      spec.tests = std::make_shared<const CodeTests>(parse_code_tests(tests));
    } catch (const core::Error& error) {
      throw core::Error(error.code(), source + ": " + error.what());
    }
    spec.kind = RewardSpec::Kind::kCode;
    return spec;
  };
  if (type == "code") return code_spec("reward.type code");
  const bool blank = answer.find_first_not_of(" \t\r\n") == std::string::npos;
  if (type == "task") {
    if (!task.is_string()) {
      core::throw_bad_input(source + ": reward.type task needs a \"task\" field naming a built-in task");
    }
    spec.task = task.get<std::string>();
    if (spec.task == "code") return code_spec("a code task");
    if (blank) core::throw_bad_input(source + ": reward.type task needs an \"answer\"");
    spec.kind = RewardSpec::Kind::kTask;
    spec.answer = answer;
    // An unknown task name or a malformed gold answer is the dataset's fault: found now, by
    // checking a response that has an answer to compare (the gold is read only then).
    try {
      (void)verify_task(spec.task, "\\boxed{0}", spec.answer);
    } catch (const core::Error& error) {
      throw core::Error(error.code(), source + ": " + error.what());
    }
    return spec;
  }
  if (type != "math") core::throw_bad_input("reward.type: unknown type '" + type + "' (math, task, code)");
  if (blank) core::throw_bad_input(source + ": reward.type math needs an \"answer\"");
  spec.kind = RewardSpec::Kind::kMath;
  spec.answer = answer;
  return spec;
}

double format_score(const RewardSpec& spec, const std::string& response) {
  if (spec.kind == RewardSpec::Kind::kCode) return response.find("```") != std::string::npos ? 1.0 : 0.0;
  return extract_final_answer(response).has_value() ? 1.0 : 0.0;
}

void require_sandbox(const std::vector<RewardSpec>& specs, const std::string& source,
                     std::optional<bool> allow_unsandboxed) {
  const bool runs_code = std::any_of(specs.begin(), specs.end(),
                                     [](const RewardSpec& spec) { return spec.kind == RewardSpec::Kind::kCode; });
  if (!runs_code || bubblewrap_available()) return;
  if (!allow_unsandboxed.value_or(false)) {
    core::throw_bad_input(source + ": the records hold code to run and bubblewrap (bwrap) is not installed; install it "
                          "(make setup)" +
                          std::string(allow_unsandboxed ? " or, on a machine you can throw away, set "
                                                          "reward.code.allow_unsandboxed: true"
                                                        : ""));
  }
  spdlog::warn("!!! reward.code.allow_unsandboxed: model-written code will run WITHOUT a sandbox, "
               "with this process's rights (only rlimits and a wall-clock kill) !!!");
}

std::future<std::vector<RewardResult>> score_async(std::vector<RewardJob> jobs,
                                                   const core::RewardConfig& config) {
  return std::async(std::launch::async, [jobs = std::move(jobs), config]() {
    std::vector<RewardResult> results(jobs.size());
    std::vector<CodeJob> code_jobs;
    std::vector<size_t> code_rows;
    for (size_t i = 0; i < jobs.size(); ++i) {
      const RewardSpec& spec = *jobs[i].spec;
      Verdict verdict;
      if (spec.kind == RewardSpec::Kind::kCode) {
        code_jobs.push_back({jobs[i].response, *spec.tests});
        code_rows.push_back(i);
        continue;
      }
      verdict = spec.kind == RewardSpec::Kind::kTask ? verify_task(spec.task, jobs[i].response, spec.answer)
                                                     : verify_math(jobs[i].response, spec.answer);
      results[i].correct = verdict.reward;
      results[i].detail = std::move(verdict.detail);
    }
    if (!code_jobs.empty()) {
      const std::vector<Verdict> verdicts = verify_code_batch(code_jobs, config.code, config.workers);
      for (size_t k = 0; k < code_rows.size(); ++k) {
        results[code_rows[k]].correct = verdicts[k].reward;
        results[code_rows[k]].detail = verdicts[k].detail;
      }
    }
    for (size_t i = 0; i < jobs.size(); ++i) {
      results[i].format = format_score(*jobs[i].spec, jobs[i].response);
      results[i].reward = results[i].correct + config.format_weight * results[i].format;
    }
    return results;
  });
}

}  // namespace gopd::reward
