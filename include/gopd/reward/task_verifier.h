// Exact checkers for gopd's built-in synthetic tasks (DESIGN.md, "Built-in synthetic tasks"):
// the generator knows the one right answer, so these checkers are strict where the math
// verifier is generous. Code tasks are not scored here but by the code verifier.
//
// "arith": the final answer is extracted like a math answer (last \boxed{}, "the answer is",
// "####") and must equal the gold integer as an integer. Tolerated: surrounding spaces, a
// leading '+', leading zeros, a Unicode minus, and thousands separators in groups of three
// ("1,234" or "1{,}234"). Not tolerated: decimals ("52.0"), units, LaTeX, "$": the task
// teaches an exact output format, and rewarding near-formats would blur that signal.
#pragma once

#include <string_view>

#include "gopd/reward/verdict.h"

namespace gopd::reward {

// Scores `response` for the synthetic task named `task` against the record's gold answer.
// Throws gopd::core::Error (exit code 2) for an unknown task name, and for an "arith" record
// whose gold answer is not an integer (a broken dataset, not a wrong response).
Verdict verify_task(std::string_view task, std::string_view response, std::string_view gold);

}  // namespace gopd::reward
