// Implements the synthetic-task checkers of task_verifier.h. Integers are compared as digit
// strings, so gold answers of any length work without overflow.
#include "gopd/reward/task_verifier.h"

#include <optional>
#include <string>

#include "gopd/core/error.h"
#include "gopd/reward/math_verifier.h"

namespace gopd::reward {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Canonical digits of an integer written with optional sign, spaces around it and thousands
// separators ("+1,234" -> "1234", "-007" -> "-7", "-0" -> "0"); nullopt for anything else.
std::optional<std::string> parse_exact_integer(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  bool negative = false;
  constexpr std::string_view kUnicodeMinus = "\xE2\x88\x92";
  if (text.substr(0, kUnicodeMinus.size()) == kUnicodeMinus) {
    negative = true;
    text.remove_prefix(kUnicodeMinus.size());
  } else if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  std::string digits;
  size_t i = 0;
  while (i < text.size() && is_digit(text[i])) digits.push_back(text[i++]);
  if (digits.empty()) return std::nullopt;
  bool has_separators = i < text.size();
  if (has_separators && digits.size() > 3) return std::nullopt;
  while (i < text.size()) {
    // A separator is "," or "{,}", and every group after it has exactly three digits.
    if (text.substr(i, 3) == "{,}") {
      i += 3;
    } else if (text[i] == ',') {
      i += 1;
    } else {
      return std::nullopt;
    }
    size_t group_start = i;
    while (i < text.size() && is_digit(text[i])) digits.push_back(text[i++]);
    if (i - group_start != 3) return std::nullopt;
  }
  size_t first_nonzero = digits.find_first_not_of('0');
  if (first_nonzero == std::string::npos) return std::string("0");
  return (negative ? "-" : "") + digits.substr(first_nonzero);
}

Verdict verify_arith(std::string_view response, std::string_view gold) {
  std::optional<std::string> gold_integer = parse_exact_integer(gold);
  if (!gold_integer) {
    core::throw_bad_input(
        "task \"arith\": gold answer \"" + std::string(gold) +
        "\" is not an integer; regenerate the data with `gopd data --task arith`");
  }
  std::optional<std::string> answer = extract_final_answer(response);
  if (!answer) return Verdict{0.0, "no answer found"};
  std::optional<std::string> predicted = parse_exact_integer(*answer);
  double reward = (predicted && *predicted == *gold_integer) ? 1.0 : 0.0;
  return Verdict{reward, std::move(*answer)};
}

}  // namespace

Verdict verify_task(std::string_view task, std::string_view response, std::string_view gold) {
  if (task == "arith") return verify_arith(response, gold);
  std::string message = "unknown task \"" + std::string(task) + "\" (known: arith)";
  if (task == "code") {
    message +=
        "; code tasks are scored by the code verifier (`gopd reward --type code`), not by the "
        "task verifier";
  }
  core::throw_bad_input(message);
}

}  // namespace gopd::reward
