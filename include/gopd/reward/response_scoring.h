// Scoring of existing responses, the engine behind `gopd reward` (DESIGN.md CLI contract):
// each input line {"response", "answer"} (plus "task" for --type task; {"response", "tests"}
// for --type code, see code_verifier.h) comes back with
// "reward" and "detail" added. Model output is hostile input: a line of the wrong shape is
// an error naming `file:line`, never a silent zero.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gopd/core/config.h"

namespace gopd::reward {

// Types `gopd reward --type` accepts.
inline const char* const kScorableTypes[] = {"math", "task", "code"};

// Returns `line` with "reward" (number) and "detail" (string) added. The response is read
// from `response_field` ("response"; e.g. "solution" checks a dataset's reference solutions).
// `source` ("file:line") prefixes errors (exit code 2).
nlohmann::json score_line(const std::string& type, const nlohmann::json& line,
                          const std::string& source,
                          const std::string& response_field = "response");

// score_line over many lines; `sources[i]` names lines[i]. Every line is validated before any
// code runs; code responses are verified on `workers` threads (0 = hardware threads) with
// the sandbox limits of `code`. `on_done` is called once per scored line.
std::vector<nlohmann::json> score_lines(const std::string& type,
                                        const std::vector<nlohmann::json>& lines,
                                        const std::vector<std::string>& sources,
                                        const std::string& response_field = "response",
                                        const core::CodeRewardConfig& code = {},
                                        int64_t workers = 0,
                                        const std::function<void()>& on_done = {});

}  // namespace gopd::reward
