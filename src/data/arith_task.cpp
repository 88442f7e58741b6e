// The "arith" task: multi-step integer arithmetic stated in words, e.g.
//   "Start with 12. Add 7. Multiply the result by 3. Subtract 5. What is the final number?"
// with a short worked solution that a tiny model can imitate step by step:
//   "12 + 7 = 19. 19 * 3 = 57. 57 - 5 = 52. The answer is \boxed{52}."
//
// Difficulty d means d operations, with operand ranges and the bound on every intermediate
// value growing with d (see kLevels). Choices the design notes leave open:
// - Operands are always positive; the start value is in [1, start_max].
// - Results stay >= 0 at d1-d2; from d3 on, subtraction may go below zero, so negative
//   intermediate values and answers appear only at the harder levels.
// - Division appears only when some divisor in [2, mul_max] divides the value exactly.
// - Every intermediate value stays within [-value_limit, value_limit]: an operation that
//   would leave it is not offered, so numbers stay short enough to read and to learn.
// - The phrasing (which of the synonyms is used for each sentence) is a function of the
//   numbers, not a separate random draw: one arithmetic problem has exactly one prompt text,
//   so deduplication and the train/eval split by prompt text are also by problem, and no
//   rephrased copy of an eval problem can land in a training file.
// The vocabulary is deliberately small and regular.
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "task_internal.h"

namespace gopd::data::internal {
namespace {

struct ArithLevel {
  int64_t start_max;    // start value in [1, start_max]
  int64_t add_max;      // addition/subtraction operand in [1, add_max]
  int64_t mul_max;      // multiplier/divisor in [2, mul_max]
  int64_t value_limit;  // every intermediate value in [-value_limit, value_limit]
  bool allow_negative;  // whether values may drop below zero
};

constexpr std::array<ArithLevel, 5> kLevels = {{
    {20, 20, 5, 99, false},  // ~700 distinct problems, so `--n 200` works at the default level
    {20, 20, 5, 999, false},
    {50, 50, 9, 999, true},
    {99, 99, 9, 9999, true},
    {999, 999, 12, 99999, true},
}};

enum class Op { kAdd, kSubtract, kMultiply, kDivide };

struct Step {
  Op op;
  int64_t operand;
};

const char* symbol(Op op) {
  switch (op) {
    case Op::kAdd:
      return "+";
    case Op::kSubtract:
      return "-";
    case Op::kMultiply:
      return "*";
    case Op::kDivide:
      return "/";
  }
  return "?";
}

int64_t apply(Op op, int64_t value, int64_t operand) {
  switch (op) {
    case Op::kAdd:
      return value + operand;
    case Op::kSubtract:
      return value - operand;
    case Op::kMultiply:
      return value * operand;
    case Op::kDivide:
      return value / operand;  // always exact here
  }
  return value;
}

int64_t abs64(int64_t x) { return x < 0 ? -x : x; }

// Draws one operation applicable to `value` under `level`'s bounds.
Step draw_step(const ArithLevel& level, int64_t value, core::Rng& rng) {
  const int64_t low_bound = level.allow_negative ? -level.value_limit : 0;
  std::vector<Op> feasible;
  const int64_t add_max = std::min(level.add_max, level.value_limit - value);
  if (add_max >= 1) feasible.push_back(Op::kAdd);
  const int64_t subtract_max = std::min(level.add_max, value - low_bound);
  if (subtract_max >= 1) feasible.push_back(Op::kSubtract);
  const int64_t multiply_max =
      value == 0 ? level.mul_max : std::min(level.mul_max, level.value_limit / abs64(value));
  if (multiply_max >= 2) feasible.push_back(Op::kMultiply);
  std::vector<int64_t> divisors;
  if (value != 0) {
    for (int64_t k = 2; k <= level.mul_max; ++k) {
      if (value % k == 0) divisors.push_back(k);
    }
  }
  if (!divisors.empty()) feasible.push_back(Op::kDivide);

  // Addition or subtraction is always feasible: value_limit > 0 and value is within bounds.
  const Op op = feasible[rng.uniform_int(0, static_cast<int64_t>(feasible.size()) - 1)];
  switch (op) {
    case Op::kAdd:
      return {op, rng.uniform_int(1, add_max)};
    case Op::kSubtract:
      return {op, rng.uniform_int(1, subtract_max)};
    case Op::kMultiply:
      return {op, rng.uniform_int(2, multiply_max)};
    case Op::kDivide:
      return {op, divisors[rng.uniform_int(0, static_cast<int64_t>(divisors.size()) - 1)]};
  }
  return {Op::kAdd, 1};
}

// Synonyms, three per operation. "{}" is replaced by the operand.
const std::array<std::array<const char*, 3>, 4> kStepPhrases = {{
    {"Add {}.", "Then add {}.", "Add {} to it."},
    {"Subtract {}.", "Then subtract {}.", "Take away {}."},
    {"Multiply by {}.", "Then multiply by {}.", "Multiply the result by {}."},
    {"Divide by {}.", "Then divide by {}.", "Divide the result by {}."},
}};
const std::array<const char*, 2> kStartPhrases = {"Start with {}.", "Begin with {}."};
const std::array<const char*, 2> kQuestions = {"What is the final number?", "What is the result?"};

std::string fill(const char* phrase, int64_t number) {
  std::string text(phrase);
  const size_t at = text.find("{}");
  return text.replace(at, 2, std::to_string(number));
}

template <size_t N>
const char* pick(const std::array<const char*, N>& phrases, core::Rng& rng) {
  return phrases[rng.uniform_int(0, static_cast<int64_t>(N) - 1)];
}

}  // namespace

Problem make_arith_problem(int64_t difficulty, core::Rng& rng) {
  const ArithLevel& level = kLevels[difficulty - 1];
  const int64_t start = rng.uniform_int(1, level.start_max);
  std::vector<Step> steps;
  int64_t value = start;
  for (int64_t i = 0; i < difficulty; ++i) {
    steps.push_back(draw_step(level, value, rng));
    value = apply(steps.back().op, value, steps.back().operand);
  }

  // The phrasing is drawn from a generator seeded by the problem itself (see header).
  std::string key = std::to_string(start);
  for (const Step& step : steps)
    key += std::string(";") + symbol(step.op) + std::to_string(step.operand);
  core::Rng phrasing(mix64(hash_text(key)));

  Problem problem;
  problem.prompt = fill(pick(kStartPhrases, phrasing), start);
  value = start;
  for (const Step& step : steps) {
    problem.prompt +=
        " " + fill(pick(kStepPhrases[static_cast<int>(step.op)], phrasing), step.operand);
    const int64_t next = apply(step.op, value, step.operand);
    problem.solution += std::to_string(value) + " " + symbol(step.op) + " " +
                        std::to_string(step.operand) + " = " + std::to_string(next) + ". ";
    value = next;
  }
  problem.prompt += std::string(" ") + pick(kQuestions, phrasing);
  problem.answer = std::to_string(value);
  problem.solution += "The answer is \\boxed{" + problem.answer + "}.";
  return problem;
}

}  // namespace gopd::data::internal
