// The code verifier of DESIGN.md's "Verifiable rewards": pulls the program out of a model
// response and runs it against hidden tests in the sandbox of code_sandbox.h, one sandboxed
// process per test case.
//
// Test formats (the "tests" field of a record):
//  - {"kind": "call", "entry_point": "f", "cases": [{"args": [..], "expected": ..}, ..]}: a
//    harness defines the program, calls entry_point(*args) and prints json.dumps(result) as
//    its last line; C++ compares that with "expected" as JSON (6 equals 6.0). The expected
//    values never enter the sandbox, so hostile code cannot print them back.
//  - {"kind": "stdio", "cases": [{"input": "..", "output": ".."}, ..]}: the program reads
//    input on stdin; its stdout must equal output line by line, ignoring trailing whitespace
//    on each line and trailing blank lines.
// Reward: the fraction of cases passed, or 1/0 when all_or_nothing (which stops at the first
// failing case). Cases are numbered from 1 in the detail ("3/5 passed; case 4 timeout").
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gopd/core/config.h"
#include "gopd/reward/code_sandbox.h"
#include "gopd/reward/verdict.h"

namespace gopd::reward {

struct CodeCase {
  nlohmann::json args;      // call: positional arguments (an array)
  nlohmann::json expected;  // call: the expected return value
  std::string input;        // stdio
  std::string output;       // stdio
};

struct CodeTests {
  enum class Kind { kCall, kStdio };
  Kind kind = Kind::kCall;
  std::string entry_point;  // call only
  std::vector<CodeCase> cases;
};

// Validates and converts a "tests" value; throws a bad-input error (exit 2) naming the
// problem, e.g. "tests.cases[2]: missing \"expected\"".
CodeTests parse_code_tests(const nlohmann::json& tests);

// The program in a response: the last ```python fenced block, else the last fenced block of
// any language, else the whole response.
std::string extract_program(std::string_view response);

// JSON equality where numbers compare by value (6 == 6.0), arrays by position, objects by key.
bool json_values_equal(const nlohmann::json& a, const nlohmann::json& b);

struct CodeReport {
  Verdict verdict;
  std::vector<SandboxOutcome> outcomes;  // per case run (passed = ran and output matched)
};

SandboxOptions sandbox_options(const core::CodeRewardConfig& config);

CodeReport verify_code_report(std::string_view response, const CodeTests& tests,
                              const core::CodeRewardConfig& config);
Verdict verify_code(std::string_view response, const CodeTests& tests,
                    const core::CodeRewardConfig& config);

struct CodeJob {
  std::string response;
  CodeTests tests;
};

// Scores every job on `workers` threads (0 = hardware threads); verdicts in job order.
// `on_done` (optional) is called once per finished job, from one thread at a time.
std::vector<Verdict> verify_code_batch(const std::vector<CodeJob>& jobs,
                                       const core::CodeRewardConfig& config, int64_t workers,
                                       const std::function<void()>& on_done = {});

}  // namespace gopd::reward
