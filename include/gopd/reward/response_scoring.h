// Scoring of existing responses, the engine behind `gopd reward` (DESIGN.md CLI contract):
// each input line {"response", "answer"} (plus "task" for --type task) comes back with
// "reward" and "detail" added. Model output is hostile input: a line of the wrong shape is
// an error naming `file:line`, never a silent zero.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace gopd::reward {

// Types `gopd reward --type` accepts now; "code" arrives with the sandbox.
inline const char* const kScorableTypes[] = {"math", "task"};

// Returns `line` with "reward" (number) and "detail" (string) added. The response is read
// from `response_field` ("response"; e.g. "solution" checks a dataset's reference solutions).
// `source` ("file:line") prefixes errors (exit code 2).
nlohmann::json score_line(const std::string& type, const nlohmann::json& line,
                          const std::string& source,
                          const std::string& response_field = "response");

}  // namespace gopd::reward
