// Implements per-line scoring for `gopd reward` on top of the math and task verifiers.
#include "gopd/reward/response_scoring.h"

#include "gopd/core/error.h"
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

}  // namespace

nlohmann::json score_line(const std::string& type, const nlohmann::json& line,
                          const std::string& source, const std::string& response_field) {
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
    core::throw_bad_input("--type: expected math or task, got \"" + type + "\"" +
                          (type == "code" ? " (the code sandbox verifier is not built yet)" : ""));
  }
  nlohmann::json scored = line;
  scored["reward"] = verdict.reward;
  scored["detail"] = verdict.detail;
  return scored;
}

}  // namespace gopd::reward
