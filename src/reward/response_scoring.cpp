// Implements per-line scoring for `gopd reward` on top of the math, task and code verifiers.
#include "gopd/reward/response_scoring.h"

#include "gopd/core/error.h"
#include "gopd/reward/code_verifier.h"
#include "gopd/reward/math_verifier.h"
#include "gopd/reward/task_verifier.h"

namespace gopd::reward {
namespace {

std::string required_string(const nlohmann::json& line, const char* key, const std::string& source,
                            bool allow_number) {
  const auto found = line.find(key);
  if (found == line.end()) core::throw_bad_input(source + ": missing field \"" + key + "\"");
  if (found->is_string()) return found->get<std::string>();
  if (allow_number && found->is_number()) return found->dump();
  core::throw_bad_input(source + ": field \"" + key + "\": expected a string" +
                        (allow_number ? " or a number" : "") + ", got " + found->type_name());
}

CodeJob code_job(const nlohmann::json& line, const std::string& source,
                 const std::string& response_field) {
  CodeJob job;
  job.response = required_string(line, response_field.c_str(), source, false);
  const auto tests = line.find("tests");
  if (tests == line.end()) core::throw_bad_input(source + ": missing field \"tests\"");
  try {
    job.tests = parse_code_tests(*tests);
  } catch (const core::Error& error) {
    throw core::Error(error.code(), source + ": " + error.what());
  }
  return job;
}

nlohmann::json with_verdict(const nlohmann::json& line, const Verdict& verdict) {
  nlohmann::json scored = line;
  scored["reward"] = verdict.reward;
  scored["detail"] = verdict.detail;
  return scored;
}

}  // namespace

nlohmann::json score_line(const std::string& type, const nlohmann::json& line,
                          const std::string& source, const std::string& response_field) {
  if (type == "code") {
    const CodeJob job = code_job(line, source, response_field);
    return with_verdict(line, verify_code(job.response, job.tests, core::CodeRewardConfig{}));
  }
  const std::string response = required_string(line, response_field.c_str(), source, false);
  const std::string answer = required_string(line, "answer", source, true);
  if (answer.find_first_not_of(" \t\r\n") == std::string::npos) {
    core::throw_bad_input(source + ": field \"answer\" is empty: nothing to compare against");
  }
  Verdict verdict;
  if (type == "math") {
    verdict = verify_math(response, answer);
  } else if (type == "task") {
    const std::string task = required_string(line, "task", source, false);
    try {
      verdict = verify_task(task, response, answer);
    } catch (const core::Error& error) {
      throw core::Error(error.code(), source + ": " + error.what());
    }
  } else {
    core::throw_bad_input("--type: expected math, task or code, got \"" + type + "\"");
  }
  return with_verdict(line, verdict);
}

std::vector<nlohmann::json> score_lines(const std::string& type,
                                        const std::vector<nlohmann::json>& lines,
                                        const std::vector<std::string>& sources,
                                        const std::string& response_field,
                                        const core::CodeRewardConfig& code, int64_t workers,
                                        const std::function<void()>& on_done) {
  std::vector<nlohmann::json> scored;
  if (type != "code") {
    for (size_t i = 0; i < lines.size(); ++i) {
      scored.push_back(score_line(type, lines[i], sources[i], response_field));
      if (on_done) on_done();
    }
    return scored;
  }
  std::vector<CodeJob> jobs;
  for (size_t i = 0; i < lines.size(); ++i) {
    jobs.push_back(code_job(lines[i], sources[i], response_field));
  }
  const std::vector<Verdict> verdicts = verify_code_batch(jobs, code, workers, on_done);
  for (size_t i = 0; i < lines.size(); ++i) scored.push_back(with_verdict(lines[i], verdicts[i]));
  return scored;
}

}  // namespace gopd::reward
