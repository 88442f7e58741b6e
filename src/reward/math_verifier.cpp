// Implements the math verifier (math_verifier.h): answer extraction, normalisation to a
// canonical string, and the equivalence test (structures first, then numeric evaluation with
// \pi kept symbolic). All of it is hand-written single-pass string code rather than
// std::regex: responses are hostile input (megabytes, thousands of unclosed braces), so every
// pass is linear, recursion is capped, and over-long answers are only compared verbatim.
#include "gopd/reward/math_verifier.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace gopd::reward {
namespace {

constexpr double kRelativeTolerance = 1e-6;
constexpr double kAbsoluteTolerance = 1e-9;
// An integer literal equals a computed value only when that value is this close to an integer.
constexpr double kIntegerSnapTolerance = 1e-9;
constexpr double kPi = 3.14159265358979323846;
// \pi is a symbol: every expression is evaluated at \pi and again at this value, and two
// answers are equal only if they agree at both, so 3.14159265 never equals \pi.
constexpr double kAlternativePi = 3.7;
constexpr double kPercentScale = 0.01;
constexpr int64_t kMaxNestingDepth = 64;       // expression / structure / group recursion
constexpr int64_t kMaxUnorderedElements = 64;  // larger sets are compared in written order
constexpr size_t kMaxAnswerBytes = 4096;       // longer "answers" are compared verbatim only
constexpr size_t kNpos = std::string_view::npos;

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::string to_lower_copy(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = to_lower(c);
  return out;
}

bool starts_with_at(std::string_view text, size_t pos, std::string_view prefix) {
  return pos <= text.size() && text.size() - pos >= prefix.size() &&
         text.compare(pos, prefix.size(), prefix) == 0;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// True when the LaTeX command `name` (backslash included) starts at `pos` and is not the
// prefix of a longer command: \left matches in "\left(" but not in "\leftarrow".
bool command_at(std::string_view text, size_t pos, std::string_view name) {
  if (!starts_with_at(text, pos, name)) return false;
  size_t end = pos + name.size();
  return !is_letter(name.back()) || end >= text.size() || !is_letter(text[end]);
}

// Length of the escape or command starting with the backslash at `pos` ("\\", "\{", "\frac"),
// so that passes copy it as one unit and never read "\\," as the spacing command "\,".
size_t escape_length(std::string_view text, size_t pos) {
  if (pos + 1 >= text.size()) return 1;
  if (!is_letter(text[pos + 1])) return 2;
  size_t end = pos + 1;
  while (end < text.size() && is_letter(text[end])) ++end;
  return end - pos;
}

// Index one past the '}' that closes the group opening at text[open] == '{', scanning no
// further than `limit`; kNpos when it does not close. A backslash escapes the next character,
// so \{ and \} are not braces.
size_t find_group_end(std::string_view text, size_t open, size_t limit) {
  int64_t depth = 0;
  for (size_t i = open; i < limit; ++i) {
    char c = text[i];
    if (c == '\\') {
      ++i;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return kNpos;
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit = text.find(from); hit != kNpos; hit = text.find(from, pos)) {
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

// Replaces every command in `names` (whole commands only, see command_at) by `to`.
std::string replace_commands(std::string_view text, std::initializer_list<std::string_view> names,
                             std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '\\') {
      out.push_back(text[i++]);
      continue;
    }
    bool replaced = false;
    for (std::string_view name : names) {
      if (command_at(text, i, name)) {
        out.append(to);
        i += name.size();
        replaced = true;
        break;
      }
    }
    if (replaced) continue;
    size_t length = escape_length(text, i);
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Extraction

// Inner text of the last complete \boxed{...} / \fbox{...}, or the token after `\boxed `.
std::optional<std::string> extract_boxed(std::string_view response) {
  std::vector<size_t> starts;
  for (std::string_view name : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    for (size_t p = response.find(name); p != kNpos; p = response.find(name, p + 1)) {
      starts.push_back(p);
    }
  }
  std::sort(starts.rbegin(), starts.rend());
  // Once a box starting at `limit` is found unclosed, no earlier box can close after it (its
  // depth never returns to the level it opened at), so earlier scans stop there: linear time.
  size_t limit = response.size();
  for (size_t start : starts) {
    size_t name_end = start + (starts_with_at(response, start, "\\boxed") ? 6 : 5);
    if (name_end < response.size() && is_letter(response[name_end])) continue;  // \boxedfoo
    size_t open = name_end;
    while (open < response.size() && is_space(response[open])) ++open;
    if (open < response.size() && response[open] == '{') {
      size_t end = find_group_end(response, open, std::max(limit, open));
      if (end == kNpos) {
        limit = open;
        continue;
      }
      return std::string(response.substr(open + 1, end - open - 2));
    }
    if (open > name_end) {  // `\boxed 5`: one token, ended by a space or a closing $
      size_t end = open;
      while (end < response.size() && !is_space(response[end]) && response[end] != '$') ++end;
      std::string_view token = response.substr(open, end - open);
      while (!token.empty() && token.back() == '.') token.remove_suffix(1);
      if (!token.empty()) return std::string(token);
    }
  }
  return std::nullopt;
}

// Trims spaces, Markdown bold markers and a trailing sentence period from a phrase answer.
std::string_view clean_phrase_answer(std::string_view answer) {
  answer = trim(answer);
  while (!answer.empty() && (answer.front() == '*' || is_space(answer.front()))) {
    answer.remove_prefix(1);
  }
  while (!answer.empty() &&
         (answer.back() == '*' || answer.back() == '.' || is_space(answer.back()))) {
    answer.remove_suffix(1);
  }
  return answer;
}

std::optional<std::string> extract_after_answer_phrase(std::string_view response) {
  std::string lower = to_lower_copy(response);
  size_t answer_start = kNpos;
  for (std::string_view phrase :
       {std::string_view("the answer is"), std::string_view("the final answer is")}) {
    size_t p = lower.rfind(phrase);
    if (p != kNpos && (answer_start == kNpos || p + phrase.size() > answer_start)) {
      answer_start = p + phrase.size();
    }
  }
  if (answer_start == kNpos) return std::nullopt;
  size_t i = answer_start;
  while (i < response.size() && (is_space(response[i]) || response[i] == ':')) ++i;
  // The sentence ends at a newline or at a period followed by a space or the end of the text
  // (a decimal point is followed by a digit).
  size_t end = i;
  while (end < response.size() && response[end] != '\n' &&
         !(response[end] == '.' && (end + 1 == response.size() || is_space(response[end + 1])))) {
    ++end;
  }
  std::string_view answer = clean_phrase_answer(response.substr(i, end - i));
  if (answer.empty()) return std::nullopt;
  return std::string(answer);
}

std::optional<std::string> extract_after_hashes(std::string_view response) {
  size_t p = response.rfind("####");
  if (p == kNpos) return std::nullopt;
  size_t start = p + 4;
  size_t end = response.find('\n', start);
  if (end == kNpos) end = response.size();
  std::string_view answer = trim(response.substr(start, end - start));
  while (!answer.empty() && answer.back() == '.') answer.remove_suffix(1);
  answer = trim(answer);
  if (answer.empty()) return std::nullopt;
  return std::string(answer);
}

// ---------------------------------------------------------------------------------------
// Normalisation passes, in the order canonicalize() applies them.

std::string replace_unicode(std::string_view text) {
  std::string s(text);
  static constexpr std::pair<std::string_view, std::string_view> kReplacements[] = {
      {"\xE2\x88\x92", "-"},         // U+2212 minus sign
      {"\xC2\xB0", "^\\circ "},      // degree sign
      {"\xC2\xA0", " "},             // no-break space
      {"\xE2\x80\x89", " "},         // thin space
      {"\xE2\x80\xAF", " "},         // narrow no-break space
      {"\xCF\x80", "\\pi "},         // pi
      {"\xE2\x88\x9E", "\\infty "},  // infinity
      {"\xC3\x97", "\\times "},      // multiplication sign
      {"\xC2\xB7", "\\cdot "},       // middle dot
      {"\xE2\x8B\x85", "\\cdot "},   // dot operator
      {"\xE2\x88\x9A", "\\sqrt "},   // square root
      {"\xE2\x89\xA4", "\\le "},     // less-than or equal
      {"\xE2\x89\xA5", "\\ge "},     // greater-than or equal
  };
  for (const auto& [from, to] : kReplacements) {
    if (s.find(from) != std::string::npos) s = replace_all(s, from, to);
  }
  return s;
}

// Drops $ and \$ everywhere and \( \) or \[ \] around the whole answer.
std::string strip_math_delimiters(std::string_view text) {
  std::string s = replace_all(replace_all(text, "\\$", ""), "$", "");
  std::string_view view = trim(s);
  for (auto [open, close] : {std::pair<std::string_view, std::string_view>("\\(", "\\)"),
                             std::pair<std::string_view, std::string_view>("\\[", "\\]")}) {
    if (view.size() >= 4 && starts_with_at(view, 0, open) && ends_with(view, close)) {
      view = trim(view.substr(2, view.size() - 4));
    }
  }
  return std::string(view);
}

// Removes \left, \right and the \big family; \left. and \right. also lose their dot.
std::string remove_sizing_commands(std::string_view text) {
  static constexpr std::string_view kSizing[] = {
      "\\left", "\\right", "\\big",  "\\Big",   "\\bigg",  "\\Bigg",  "\\bigl",
      "\\bigr", "\\Bigl",  "\\Bigr", "\\biggl", "\\biggr", "\\Biggl", "\\Biggr"};
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '\\') {
      out.push_back(text[i++]);
      continue;
    }
    bool removed = false;
    for (std::string_view name : kSizing) {
      if (command_at(text, i, name)) {
        i += name.size();
        while (i < text.size() && is_space(text[i])) ++i;
        if (i < text.size() && text[i] == '.') ++i;
        removed = true;
        break;
      }
    }
    if (removed) continue;
    size_t length = escape_length(text, i);
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

// Removes degree marks: ^\circ, ^{\circ}, a bare \circ and \degree.
std::string remove_degrees(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '^') {
      size_t j = i + 1;
      while (j < text.size() && is_space(text[j])) ++j;
      bool braced = j < text.size() && text[j] == '{';
      if (braced) {
        ++j;
        while (j < text.size() && is_space(text[j])) ++j;
      }
      if (command_at(text, j, "\\circ")) {
        j += 5;
        while (braced && j < text.size() && is_space(text[j])) ++j;
        if (!braced || (j < text.size() && text[j] == '}')) {
          i = braced ? j + 1 : j;
          continue;
        }
      }
      out.push_back(text[i++]);
      continue;
    }
    if (command_at(text, i, "\\circ")) {
      i += 5;
      continue;
    }
    if (command_at(text, i, "\\degree")) {
      i += 7;
      continue;
    }
    if (text[i] == '\\') {
      size_t length = escape_length(text, i);
      out.append(text.substr(i, length));
      i += length;
      continue;
    }
    out.push_back(text[i++]);
  }
  return out;
}

bool is_connective(std::string_view word) {
  std::string lower = to_lower_copy(word);
  for (std::string_view connective : {"and", "or", "to", "through", "plus", "minus", "times",
                                      "over", "by", "of", "is", "are", "not", "none"}) {
    if (lower == connective) return true;
  }
  return false;
}

// A unit-like word: letters with optional '.', '/' and a trailing exponent (cm, km/h, m/s^2,
// sq.). Digits are only allowed in the exponent. A single letter is a unit only when it is a
// common one (m, g, s, l, h): "3 x" and 2\mathrm{i} keep their letter.
bool is_unit_word(std::string_view word, bool* names_percent) {
  size_t caret = word.find('^');
  if (caret != kNpos) {
    std::string_view exponent = word.substr(caret + 1);
    if (!exponent.empty() && exponent.front() == '{' && exponent.back() == '}') {
      exponent = exponent.substr(1, exponent.size() - 2);
    }
    if (exponent.empty()) return false;
    for (char c : exponent) {
      if (!is_digit(c)) return false;
    }
    word = word.substr(0, caret);
  }
  if (word.empty() || !is_letter(word.front())) return false;
  for (char c : word) {
    if (!is_letter(c) && c != '.' && c != '/') return false;
  }
  std::string lower = to_lower_copy(word);
  while (!lower.empty() && lower.back() == '.') lower.pop_back();
  if (lower.size() < 2 && lower != "m" && lower != "g" && lower != "s" && lower != "l" &&
      lower != "h") {
    return false;
  }
  if (is_connective(lower)) return false;
  if (lower == "percent") *names_percent = true;
  return true;
}

// True when `text` ends with something a unit can follow: a digit, a closing group, \pi.
bool follows_quantity(std::string_view text) {
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  if (text.empty()) return false;
  char last = text.back();
  return is_digit(last) || last == '}' || last == ')' || ends_with(text, "\\pi");
}

// Index after an exponent (^2, ^{2}) following a dropped unit, else `pos` unchanged.
size_t skip_unit_exponent(std::string_view text, size_t pos) {
  size_t i = pos;
  while (i < text.size() && is_space(text[i])) ++i;
  if (i >= text.size() || text[i] != '^') return pos;
  ++i;
  while (i < text.size() && is_space(text[i])) ++i;
  if (i < text.size() && text[i] == '{') {
    size_t end = find_group_end(text, i, text.size());
    return end == kNpos ? pos : end;
  }
  return (i < text.size() && is_digit(text[i])) ? i + 1 : pos;
}

// Content of \text{...} that names a unit: unit words only ("cm", " square units").
bool is_unit_text(std::string_view content, bool* names_percent) {
  std::string_view rest = trim(content);
  if (rest.empty()) return false;
  while (!rest.empty()) {
    size_t space = 0;
    while (space < rest.size() && !is_space(rest[space])) ++space;
    if (!is_unit_word(rest.substr(0, space), names_percent)) return false;
    rest = trim(rest.substr(space));
  }
  return true;
}

enum class GroupCommand { kNone, kUnwrap, kText };

GroupCommand classify_group_command(std::string_view name) {
  for (std::string_view unwrap :
       {"\\boxed", "\\fbox", "\\mathbf", "\\mathit", "\\mathsf", "\\boldsymbol", "\\bm"}) {
    if (name == unwrap) return GroupCommand::kUnwrap;
  }
  for (std::string_view text :
       {"\\text", "\\textrm", "\\textbf", "\\textit", "\\textsf", "\\texttt", "\\textnormal",
        "\\textup", "\\mbox", "\\mathrm", "\\operatorname"}) {
    if (name == text) return GroupCommand::kText;
  }
  return GroupCommand::kNone;
}

// Unwraps \boxed{X}, \mathbf{X}, \text{X}...; a \text-like group that holds only unit words
// and follows a quantity (5\text{ cm}) is dropped together with its exponent (\text{cm}^2).
std::string unwrap_group_commands(std::string_view text, bool* percent, int64_t depth) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '\\') {
      out.push_back(text[i++]);
      continue;
    }
    size_t length = escape_length(text, i);
    std::string_view name = text.substr(i, length);
    GroupCommand kind = classify_group_command(name);
    size_t open = i + length;
    while (open < text.size() && is_space(text[open])) ++open;
    size_t end = kNpos;
    if (kind != GroupCommand::kNone && open < text.size() && text[open] == '{') {
      end = find_group_end(text, open, text.size());
    }
    if (end == kNpos) {
      out.append(name);
      i += length;
      continue;
    }
    std::string_view content = text.substr(open + 1, end - open - 2);
    bool names_percent = false;
    if (kind == GroupCommand::kText && follows_quantity(out) &&
        is_unit_text(content, &names_percent)) {
      *percent = *percent || names_percent;
      out.push_back(' ');
      i = skip_unit_exponent(text, end);
      continue;
    }
    std::string inner = depth < kMaxNestingDepth
                            ? unwrap_group_commands(content, percent, depth + 1)
                            : std::string(content);
    // Spaces keep unwrapped words apart ("3\text{ and }4") for the unit-word pass.
    if (kind == GroupCommand::kText) out.push_back(' ');
    out += inner;
    if (kind == GroupCommand::kText) out.push_back(' ');
    i = end;
  }
  return out;
}

// Drops trailing plain unit words after a quantity: "12 apples", "5 square units", "3 km/h".
std::string strip_unit_words(std::string_view text, bool* percent) {
  std::string_view rest = trim(text);
  while (true) {
    size_t space = rest.size();
    while (space > 0 && !is_space(rest[space - 1])) --space;
    if (space == 0) break;
    std::string_view word = rest.substr(space);
    std::string_view prefix = trim(rest.substr(0, space));
    bool names_percent = false;
    if (!follows_quantity(prefix) || !is_unit_word(word, &names_percent)) break;
    *percent = *percent || names_percent;
    rest = prefix;
  }
  return std::string(rest);
}

// Removes whitespace, except one space between a command name and a following letter, which
// would otherwise merge into another command ("\pi r" must not become "\pir").
std::string remove_whitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (!is_space(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    while (i < text.size() && is_space(text[i])) ++i;
    if (i < text.size() && is_letter(text[i]) && !out.empty() && is_letter(out.back())) {
      size_t k = out.size();
      while (k > 0 && is_letter(out[k - 1])) --k;
      if (k > 0 && out[k - 1] == '\\') out.push_back(' ');
    }
  }
  return out;
}

std::string expand_shorthand_arguments(std::string_view text, int64_t depth);

// Appends one argument of \frac / \sqrt at `pos`, braced: {..} (expanded recursively), a
// single character (\frac12) or a command (\frac\pi2). Returns the index after it.
size_t append_braced_argument(std::string_view text, size_t pos, int64_t depth, std::string* out) {
  if (pos >= text.size()) return pos;
  char c = text[pos];
  if (c == '{') {
    size_t end = find_group_end(text, pos, text.size());
    if (end == kNpos || depth >= kMaxNestingDepth) return pos;
    out->push_back('{');
    out->append(expand_shorthand_arguments(text.substr(pos + 1, end - pos - 2), depth + 1));
    out->push_back('}');
    return end;
  }
  if (c == '\\' && pos + 1 < text.size() && is_letter(text[pos + 1])) {
    size_t length = escape_length(text, pos);
    out->push_back('{');
    out->append(text.substr(pos, length));
    out->push_back('}');
    return pos + length;
  }
  if (is_digit(c) || is_letter(c)) {
    out->push_back('{');
    out->push_back(c);
    out->push_back('}');
    return pos + 1;
  }
  return pos;
}

// \frac12 -> \frac{1}{2}, \frac1{2} -> \frac{1}{2}, \sqrt2 -> \sqrt{2}.
std::string expand_shorthand_arguments(std::string_view text, int64_t depth) {
  std::string out;
  out.reserve(text.size() + 8);
  size_t i = 0;
  while (i < text.size()) {
    if (command_at(text, i, "\\frac")) {
      out.append("\\frac");
      i = append_braced_argument(text, i + 5, depth, &out);
      i = append_braced_argument(text, i, depth, &out);
      continue;
    }
    if (command_at(text, i, "\\sqrt")) {
      out.append("\\sqrt");
      i += 5;
      if (i < text.size() && text[i] == '[') {
        size_t close = text.find(']', i);
        if (close == kNpos) continue;
        out.append(text.substr(i, close + 1 - i));
        i = close + 1;
      }
      i = append_braced_argument(text, i, depth, &out);
      continue;
    }
    if (text[i] == '\\') {
      size_t length = escape_length(text, i);
      out.append(text.substr(i, length));
      i += length;
      continue;
    }
    out.push_back(text[i++]);
  }
  return out;
}

// "x=3", "y_1=3", "\theta=3", "x\in[1,2]" -> the right-hand side. Only a single variable on
// the left and a single '=' overall, so "x+y=3" and "x=1,y=2" are left alone here.
std::string strip_assignment(std::string_view text) {
  size_t i = 0;
  if (!text.empty() && is_letter(text[0])) {
    i = 1;
  } else if (!text.empty() && text[0] == '\\') {
    size_t length = escape_length(text, 0);
    std::string_view name = text.substr(1, length - 1);
    bool greek = false;
    for (std::string_view letter :
         {"alpha",  "beta", "gamma", "delta", "epsilon", "varepsilon", "theta", "vartheta",
          "lambda", "mu",   "nu",    "xi",    "rho",     "sigma",      "tau",   "phi",
          "varphi", "chi",  "psi",   "omega", "Delta",   "Theta",      "Phi",   "Omega"}) {
      greek = greek || name == letter;
    }
    if (!greek) return std::string(text);
    i = length;
  } else {
    return std::string(text);
  }
  if (i < text.size() && text[i] == '_') {
    ++i;
    if (i < text.size() && text[i] == '{') {
      size_t end = find_group_end(text, i, text.size());
      if (end == kNpos) return std::string(text);
      i = end;
    } else if (i < text.size() && (is_letter(text[i]) || is_digit(text[i]))) {
      ++i;
    } else {
      return std::string(text);
    }
  }
  while (i < text.size() && text[i] == ' ') ++i;
  std::string_view rest;
  if (i < text.size() && text[i] == '=') {
    rest = text.substr(i + 1);
  } else if (command_at(text, i, "\\in")) {
    rest = text.substr(i + 3);
  } else {
    return std::string(text);
  }
  if (rest.find('=') != kNpos || trim(rest).empty()) return std::string(text);
  return std::string(trim(rest));
}

// "1,000" / "-12,345.5" -> digits only; any other comma (tuples, "1,2", "1,0000") stays.
std::string remove_thousands_separators(std::string_view text) {
  size_t i = (!text.empty() && (text[0] == '-' || text[0] == '+')) ? 1 : 0;
  size_t lead = i;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (i == lead || i - lead > 3) return std::string(text);
  int64_t groups = 0;
  while (i < text.size() && text[i] == ',') {
    size_t group_start = ++i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i - group_start != 3) return std::string(text);
    ++groups;
  }
  if (groups == 0) return std::string(text);
  if (i < text.size() && text[i] == '.') {
    size_t fraction_start = ++i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == fraction_start) return std::string(text);
  }
  if (i != text.size()) return std::string(text);
  return replace_all(text, ",", "");
}

// Decimal literals in canonical form: trailing fractional zeros dropped (2.50 -> 2.5,
// 52.0 -> 52), a leading zero added (.5 -> 0.5).
std::string canonicalize_numbers(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  size_t i = 0;
  while (i < text.size()) {
    bool bare_point = text[i] == '.' && i + 1 < text.size() && is_digit(text[i + 1]) &&
                      (i == 0 || !is_digit(text[i - 1]));
    if (!is_digit(text[i]) && !bare_point) {
      out.push_back(text[i++]);
      continue;
    }
    size_t integer_start = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    std::string_view integer_part = text.substr(integer_start, i - integer_start);
    out.append(integer_part.empty() ? std::string_view("0") : integer_part);
    if (i + 1 < text.size() && text[i] == '.' && is_digit(text[i + 1])) {
      size_t fraction_start = ++i;
      while (i < text.size() && is_digit(text[i])) ++i;
      std::string_view fraction = text.substr(fraction_start, i - fraction_start);
      while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
      if (!fraction.empty()) {
        out.push_back('.');
        out.append(fraction);
      }
    }
  }
  return out;
}

// "3/4" and "-3/4" -> \frac{3}{4}, -\frac{3}{4}, so that both spellings share one canonical form.
std::string slash_fraction_to_frac(std::string_view text) {
  size_t i = (!text.empty() && text[0] == '-') ? 1 : 0;
  size_t numerator_start = i;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (i == numerator_start || i >= text.size() || text[i] != '/') return std::string(text);
  size_t slash = i++;
  size_t denominator_start = i;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (i == denominator_start || i != text.size()) return std::string(text);
  return std::string(text.substr(0, numerator_start)) + "\\frac{" +
         std::string(text.substr(numerator_start, slash - numerator_start)) + "}{" +
         std::string(text.substr(denominator_start)) + "}";
}

// "2 1/2" -> 2\frac{1}{2}: removing the space would turn the mixed number into 21/2, so it gets
// the spelling that the evaluator refuses as ambiguous (it still matches itself as a string).
std::string mark_mixed_number(std::string_view text) {
  text = trim(text);
  size_t i = (!text.empty() && text[0] == '-') ? 1 : 0;
  size_t whole_start = i;
  while (i < text.size() && is_digit(text[i])) ++i;
  size_t whole_end = i;
  while (i < text.size() && is_space(text[i])) ++i;
  if (whole_end == whole_start || i == whole_end) return std::string(text);
  std::string fraction = slash_fraction_to_frac(text.substr(i));
  if (fraction.rfind("\\frac", 0) != 0) return std::string(text);
  return std::string(text.substr(0, whole_end)) + fraction;
}

std::string strip_trailing_periods(std::string_view text) {
  text = trim(text);
  while (!text.empty() && text.back() == '.') text.remove_suffix(1);
  return std::string(trim(text));
}

struct Canonical {
  std::string text;
  bool percent = false;   // the answer was written as a percentage (50\%, 50 percent)
  bool verbatim = false;  // too long to normalise: compared as written
};

Canonical canonicalize(std::string_view answer) {
  Canonical result;
  if (answer.size() > kMaxAnswerBytes) {
    result.text = std::string(trim(answer));
    result.verbatim = true;
    return result;
  }
  std::string s = replace_unicode(answer);
  s = strip_math_delimiters(s);
  s = remove_sizing_commands(s);
  s = replace_commands(s,
                       {"\\,", "\\;", "\\:", "\\ ", "\\quad", "\\qquad", "\\enspace", "\\thinspace",
                        "\\medspace", "\\thickspace"},
                       " ");
  s = replace_commands(s, {"\\!", "\\displaystyle", "\\textstyle", "\\limits"}, "");
  s = replace_all(s, "~", " ");
  s = replace_all(s, "{,}", ",");
  s = replace_commands(s, {"\\dfrac", "\\tfrac", "\\cfrac"}, "\\frac");
  s = replace_commands(s, {"\\leq", "\\leqslant"}, "\\le");
  s = replace_commands(s, {"\\geq", "\\geqslant"}, "\\ge");
  s = replace_commands(s, {"\\neq"}, "\\ne");
  s = remove_degrees(s);
  if (s.find('%') != std::string::npos) {
    result.percent = true;
    s = replace_all(replace_all(s, "\\%", ""), "%", "");
  }
  s = unwrap_group_commands(s, &result.percent, 0);
  s = strip_trailing_periods(s);
  s = strip_unit_words(s, &result.percent);
  s = mark_mixed_number(s);
  s = remove_whitespace(s);
  s = strip_trailing_periods(s);
  s = expand_shorthand_arguments(s, 0);
  s = strip_assignment(s);
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  s = remove_thousands_separators(s);
  s = canonicalize_numbers(s);
  s = slash_fraction_to_frac(s);
  result.text = std::move(s);
  return result;
}

// ---------------------------------------------------------------------------------------
// Numeric evaluation: + - * / ^, \cdot \times \div, \frac, \sqrt[n]{}, \pi, ( ), { } and
// implicit products (2\pi, 3\sqrt{2}, 2(x)). Anything else (variables, \infty) fails.

class Evaluator {
 public:
  Evaluator(std::string_view text, double pi_value) : text_(text), pi_value_(pi_value) {}

  std::optional<double> run() {
    double value = 0.0;
    if (!expression(&value)) return std::nullopt;
    skip_spaces();
    if (pos_ != text_.size() || !std::isfinite(value)) return std::nullopt;
    return value;
  }

 private:
  void skip_spaces() {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }

  bool consume_char(char c) {
    skip_spaces();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool consume_command(std::string_view name) {
    skip_spaces();
    if (!command_at(text_, pos_, name)) return false;
    pos_ += name.size();
    return true;
  }

  bool expression(double* out) {
    if (++depth_ > kMaxNestingDepth) return false;
    double value = 0.0;
    bool literal = false;
    if (!term(&value, &literal)) return false;
    while (true) {
      double sign = 0.0;
      if (consume_char('+')) {
        sign = 1.0;
      } else if (consume_char('-')) {
        sign = -1.0;
      } else {
        break;
      }
      double rhs = 0.0;
      if (!term(&rhs, &literal)) return false;
      value += sign * rhs;
    }
    --depth_;
    *out = value;
    return true;
  }

  // `literal` reports whether the term is a bare number, for the mixed-number rule.
  bool term(double* out, bool* literal) {
    double value = 0.0;
    if (!unary(&value, literal)) return false;
    while (true) {
      double rhs = 0.0;
      bool rhs_literal = false;
      if (consume_char('*') || consume_command("\\cdot") || consume_command("\\times")) {
        if (!unary(&rhs, &rhs_literal)) return false;
        value *= rhs;
      } else if (consume_char('/') || consume_command("\\div")) {
        if (!unary(&rhs, &rhs_literal)) return false;
        value /= rhs;
      } else if (starts_implicit_factor()) {
        // 2\frac{1}{2} reads as the mixed number 5/2 to some and as 1 to others: refuse.
        if (*literal && command_at(text_, pos_, "\\frac")) return false;
        if (!power(&rhs, &rhs_literal)) return false;
        value *= rhs;
      } else {
        break;
      }
      *literal = false;
    }
    *out = value;
    return true;
  }

  bool starts_implicit_factor() {
    skip_spaces();
    if (pos_ >= text_.size()) return false;
    return text_[pos_] == '(' || command_at(text_, pos_, "\\pi") ||
           command_at(text_, pos_, "\\sqrt") || command_at(text_, pos_, "\\frac");
  }

  bool unary(double* out, bool* literal) {
    if (consume_char('-') || consume_char('+')) {
      bool negative = text_[pos_ - 1] == '-';
      if (++depth_ > kMaxNestingDepth) return false;
      double value = 0.0;
      if (!unary(&value, literal)) return false;
      --depth_;
      *out = negative ? -value : value;
      return true;
    }
    return power(out, literal);
  }

  bool power(double* out, bool* literal) {
    double base = 0.0;
    if (!atom(&base, literal)) return false;
    if (consume_char('^')) {
      double exponent = 0.0;
      bool exponent_literal = false;
      skip_spaces();
      if (pos_ < text_.size() && text_[pos_] == '{') {
        if (!group(&exponent)) return false;
      } else if (!unary(&exponent, &exponent_literal)) {
        return false;
      }
      base = std::pow(base, exponent);
      *literal = false;
    }
    *out = base;
    return true;
  }

  bool group(double* out) {
    if (!consume_char('{')) return false;
    if (!expression(out)) return false;
    return consume_char('}');
  }

  bool number(double* out) {
    size_t start = pos_;
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
    if (pos_ + 1 < text_.size() && text_[pos_] == '.' && is_digit(text_[pos_ + 1])) {
      ++pos_;
      while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
    }
    if (pos_ == start) return false;
    auto [end, error] = std::from_chars(text_.data() + start, text_.data() + pos_, *out);
    return error == std::errc() && end == text_.data() + pos_;
  }

  bool atom(double* out, bool* literal) {
    *literal = false;
    skip_spaces();
    if (pos_ >= text_.size()) return false;
    char c = text_[pos_];
    if (is_digit(c)) {
      *literal = true;
      return number(out);
    }
    if (c == '(') {
      ++pos_;
      return expression(out) && consume_char(')');
    }
    if (c == '{') return group(out);
    if (consume_command("\\pi")) {
      *out = pi_value_;
      return true;
    }
    if (consume_command("\\frac")) {
      double numerator = 0.0;
      double denominator = 0.0;
      if (!group(&numerator) || !group(&denominator)) return false;
      *out = numerator / denominator;
      return true;
    }
    if (consume_command("\\sqrt")) {
      double degree = 2.0;
      if (consume_char('[')) {
        if (!expression(&degree) || !consume_char(']')) return false;
      }
      double radicand = 0.0;
      if (!group(&radicand)) return false;
      if (degree == 2.0) {
        *out = std::sqrt(radicand);
      } else if (radicand < 0 && std::fmod(degree, 2.0) == 1.0) {
        *out = -std::pow(-radicand, 1.0 / degree);  // odd roots of negatives are real
      } else {
        *out = std::pow(radicand, 1.0 / degree);
      }
      return true;
    }
    return false;
  }

  std::string_view text_;
  double pi_value_;
  size_t pos_ = 0;
  int64_t depth_ = 0;
};

std::optional<double> evaluate(std::string_view text, double pi_value) {
  return Evaluator(text, pi_value).run();
}

// ---------------------------------------------------------------------------------------
// Equivalence

// Canonical digits of an integer literal ("-007" -> "-7", "-0" -> "0"), else nullopt.
std::optional<std::string> integer_literal(std::string_view text) {
  bool negative = !text.empty() && text[0] == '-';
  std::string_view digits = text.substr(negative ? 1 : 0);
  if (digits.empty()) return std::nullopt;
  for (char c : digits) {
    if (!is_digit(c)) return std::nullopt;
  }
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  if (digits == "0") negative = false;
  return (negative ? "-" : "") + std::string(digits);
}

bool values_close(double x, double y) {
  double difference = std::fabs(x - y);
  return difference <= kAbsoluteTolerance ||
         difference <= kRelativeTolerance * std::max(std::fabs(x), std::fabs(y));
}

// An integer literal equals only an exact integer: 1000001 and 10^6 are within 1e-6 but differ.
bool values_equal(double x, bool x_is_integer_literal, double y, bool y_is_integer_literal) {
  if (x_is_integer_literal || y_is_integer_literal) {
    double other = x_is_integer_literal ? y : x;
    double literal = x_is_integer_literal ? x : y;
    double rounded = std::round(other);
    if (std::fabs(other - rounded) <= kIntegerSnapTolerance * std::max(1.0, std::fabs(other))) {
      return rounded == literal;
    }
  }
  return values_close(x, y);
}

bool scalars_equivalent(std::string_view a, bool a_percent, std::string_view b, bool b_percent) {
  if (a == b) return true;
  std::optional<std::string> a_integer = integer_literal(a);
  std::optional<std::string> b_integer = integer_literal(b);
  if (a_integer && b_integer && *a_integer == *b_integer) return true;
  std::optional<double> a_value = evaluate(a, kPi);
  std::optional<double> b_value = evaluate(b, kPi);
  if (!a_value || !b_value) return false;
  bool uses_pi = a.find("\\pi") != kNpos || b.find("\\pi") != kNpos;
  std::optional<double> a_alternative = uses_pi ? evaluate(a, kAlternativePi) : a_value;
  std::optional<double> b_alternative = uses_pi ? evaluate(b, kAlternativePi) : b_value;
  if (!a_alternative || !b_alternative) return false;
  auto agree = [&](double a_scale, double b_scale) {
    bool a_literal = a_integer.has_value() && a_scale == 1.0;
    bool b_literal = b_integer.has_value() && b_scale == 1.0;
    return values_equal(*a_value * a_scale, a_literal, *b_value * b_scale, b_literal) &&
           values_equal(*a_alternative * a_scale, a_literal, *b_alternative * b_scale, b_literal);
  };
  // A percentage also equals its fraction (50\% = 0.5), but only when the sign was written.
  return agree(1.0, 1.0) || (a_percent && agree(kPercentScale, 1.0)) ||
         (b_percent && agree(1.0, kPercentScale));
}

enum class StructureKind { kScalar, kUnion, kSet, kBracketed, kList };

struct Structure {
  StructureKind kind = StructureKind::kScalar;
  char open = 0;  // bracket kinds of a tuple or interval: ( [ and ) ]
  char close = 0;
  std::vector<std::string_view> elements;
};

int bracket_delta(char c) {
  if (c == '(' || c == '[' || c == '{') return 1;
  if (c == ')' || c == ']' || c == '}') return -1;
  return 0;
}

// Splits `text` at separators outside every bracket. Intervals mix ( and ], so all bracket
// kinds count towards one depth.
std::vector<std::string_view> split_top_level(std::string_view text, std::string_view separator) {
  std::vector<std::string_view> parts;
  int64_t depth = 0;
  size_t start = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (depth == 0 && command_at(text, i, separator)) {
      parts.push_back(text.substr(start, i - start));
      i += separator.size();
      start = i;
      continue;
    }
    depth += bracket_delta(text[i]);
    ++i;
  }
  parts.push_back(text.substr(start));
  return parts;
}

// True when the bracket at `open` closes exactly at the last character of `text`.
bool bracket_spans_to_end(std::string_view text, size_t open) {
  int64_t depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    depth += bracket_delta(text[i]);
    if (depth == 0) return i + 1 == text.size();
  }
  return false;
}

Structure split_structure(std::string_view text) {
  Structure structure;
  std::vector<std::string_view> parts = split_top_level(text, "\\cup");
  if (parts.size() >= 2) {
    structure.kind = StructureKind::kUnion;
    structure.elements = std::move(parts);
    return structure;
  }
  if (text.size() >= 4 && starts_with_at(text, 0, "\\{") && ends_with(text, "\\}") &&
      bracket_spans_to_end(text, 1)) {
    structure.kind = StructureKind::kSet;
    std::string_view inner = text.substr(2, text.size() - 4);
    if (!inner.empty()) structure.elements = split_top_level(inner, ",");
    return structure;
  }
  if (text.size() >= 2 && (text.front() == '(' || text.front() == '[') &&
      (text.back() == ')' || text.back() == ']') && bracket_spans_to_end(text, 0)) {
    parts = split_top_level(text.substr(1, text.size() - 2), ",");
    if (parts.size() >= 2) {
      structure.kind = StructureKind::kBracketed;
      structure.open = text.front();
      structure.close = text.back();
      structure.elements = std::move(parts);
      return structure;
    }
  }
  parts = split_top_level(text, ",");
  if (parts.size() >= 2) {
    structure.kind = StructureKind::kList;
    structure.elements = std::move(parts);
  }
  return structure;
}

// An element of a tuple or list gets the per-answer clean-ups again: "x=1, y=2" -> 1, 2.
std::string canonical_element(std::string_view element) {
  std::string text = strip_assignment(trim(element));
  if (!text.empty() && text[0] == '+') text.erase(0, 1);
  return slash_fraction_to_frac(text);
}

bool canonical_equivalent(std::string_view a, bool a_percent, std::string_view b, bool b_percent,
                          int64_t depth) {
  if (a.empty() || b.empty()) return false;
  if (a == b) return true;
  if (depth > kMaxNestingDepth) return false;
  Structure a_structure = split_structure(a);
  Structure b_structure = split_structure(b);
  if (a_structure.kind == StructureKind::kScalar && b_structure.kind == StructureKind::kScalar) {
    return scalars_equivalent(a, a_percent, b, b_percent);
  }
  if (a_structure.kind != b_structure.kind ||
      a_structure.elements.size() != b_structure.elements.size()) {
    return false;
  }
  if (a_structure.open != b_structure.open || a_structure.close != b_structure.close) {
    return false;  // (1,2] is not (1,2)
  }
  auto elements_equal = [&](std::string_view x, std::string_view y) {
    return canonical_equivalent(canonical_element(x), a_percent, canonical_element(y), b_percent,
                                depth + 1);
  };
  const std::vector<std::string_view>& a_elements = a_structure.elements;
  const std::vector<std::string_view>& b_elements = b_structure.elements;
  bool ordered = a_structure.kind == StructureKind::kBracketed ||
                 static_cast<int64_t>(a_elements.size()) > kMaxUnorderedElements;
  if (ordered) {
    for (size_t i = 0; i < a_elements.size(); ++i) {
      if (!elements_equal(a_elements[i], b_elements[i])) return false;
    }
    return true;
  }
  // Sets, unions and bare answer lists are unordered: match each element to an unused one.
  std::vector<bool> used(b_elements.size(), false);
  for (std::string_view a_element : a_elements) {
    bool matched = false;
    for (size_t j = 0; j < b_elements.size() && !matched; ++j) {
      if (!used[j] && elements_equal(a_element, b_elements[j])) {
        used[j] = true;
        matched = true;
      }
    }
    if (!matched) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> extract_final_answer(std::string_view response) {
  if (std::optional<std::string> boxed = extract_boxed(response)) return boxed;
  if (std::optional<std::string> phrase = extract_after_answer_phrase(response)) return phrase;
  return extract_after_hashes(response);
}

std::string normalize_answer(std::string_view answer) { return canonicalize(answer).text; }

bool answers_equivalent(std::string_view predicted, std::string_view gold) {
  Canonical a = canonicalize(predicted);
  Canonical b = canonicalize(gold);
  if (a.text.empty() || b.text.empty()) return false;
  if (a.verbatim || b.verbatim) return a.text == b.text;
  return canonical_equivalent(a.text, a.percent, b.text, b.percent, 0);
}

Verdict verify_math(std::string_view response, std::string_view gold) {
  std::optional<std::string> answer = extract_final_answer(response);
  if (!answer) return Verdict{0.0, "no answer found"};
  double reward = answers_equivalent(*answer, gold) ? 1.0 : 0.0;
  return Verdict{reward, std::move(*answer)};
}

}  // namespace gopd::reward
