// The math verifier of DESIGN.md's "Verifiable rewards": pulls the final answer out of a
// model response and decides whether it is the same mathematical object as the gold answer.
// It is the reward of every math RLVR job, so it must be generous to notation (LaTeX
// spacing, \dfrac vs 1/2 vs 0.5, units, thousands separators) and strict about values: a
// near-miss (10 vs 100, -3 vs 3, 12 vs the tuple 1,2) must never earn reward.
//
// Decisions where the usual graders (Qwen math grader, math-verify) differ or are silent:
//  - Extraction: the last *complete* \boxed{...} / \fbox{...} wins; an unclosed box (a
//    truncated response) is ignored, so an earlier complete box can still count.
//  - Percent: "50\%" equals 50, and also 0.5 — but only when one side carries the percent
//    sign (or the word "percent"); bare 50 vs 0.5 does not match.
//  - Tolerance: relative 1e-6 or absolute 1e-9, except that an integer literal only equals
//    an exact integer value (1000001 != 10^6 although they are within 1e-6).
//  - \pi stays a symbol: expressions are evaluated at \pi and at a second value, and both
//    must agree, so 2\pi = \pi+\pi = \frac{4\pi}{2} but 6.2831853 != 2\pi.
//  - A digit followed directly by \frac (2\frac{1}{2}) or "2 1/2" is ambiguous between a mixed
//    number and a product, so it is never evaluated (it can still match by exact string).
//  - Tuples and intervals are ordered and their brackets must match; sets \{...\}, bare
//    comma lists (answers "1, 2") and unions of intervals are unordered.
//  - Unit words are dropped after a quantity: "5\text{ cm}", "5 cm", "12 apples" all equal 5
//    or 12; the connectives and/or/to and single letters other than m, g, s, l, h are never
//    taken as units ("3 x" != 3, 2\mathrm{i} != 2).
//  - Answers over 4096 bytes are compared verbatim only, so hostile input stays cheap.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gopd/reward/verdict.h"

namespace gopd::reward {

// Final answer of a model response: the inner text of the last complete \boxed{...} or
// \fbox{...} (balanced, nested braces; also `\boxed 5` without braces), else the text after
// the last "the answer is" / "the final answer is" (case-insensitive, up to the end of the
// sentence or line, trailing period stripped), else the text after the last "####" (to the end
// of the line). nullopt when none is found; an empty box yields "" (present but empty).
std::optional<std::string> extract_final_answer(std::string_view response);

// Canonical form used for exact comparison: LaTeX spacing, \left/\right, $, \text units,
// degrees, percent, a leading "x =", thousands separators, trailing zeros and whitespace
// removed; \dfrac/\tfrac -> \frac, \frac12 -> \frac{1}{2}, a/b -> \frac{a}{b}.
std::string normalize_answer(std::string_view answer);

// True when both answers are the same value after normalisation: equal canonical strings,
// numbers within tolerance (fractions, decimals, \sqrt, powers, \pi), percent variants, and
// tuples / intervals / sets compared element by element. An empty answer never matches.
bool answers_equivalent(std::string_view predicted, std::string_view gold);

// extract_final_answer + answers_equivalent: reward 1.0 or 0.0; detail is the extracted
// answer as written, or "no answer found". The caller rejects an empty gold answer.
Verdict verify_math(std::string_view response, std::string_view gold);

}  // namespace gopd::reward
