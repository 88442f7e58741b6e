// Regular expressions of tokenizer.json (Split pre-tokenizer, Replace normalizer/decoder) on
// PCRE2. HF compiles these patterns with Oniguruma (the onig crate's default syntax,
// ONIG_SYNTAX_ONIGURUMA, no options); PCRE2 (UTF + UCP) agrees with it on the constructs that
// real tokenizer.json files use — Unicode properties \p{L}, \p{N}, `\s` (White_Space; PCRE2 adds
// only U+180E), `\d`, classes, (?i:...) with simple Unicode case folding, lookaround, possessive
// and lazy quantifiers — and differs on others: `\h` is a hex digit in Oniguruma but horizontal
// space in PCRE2, `\w` has different Unicode definitions, `^`/`$` are always line anchors in
// Oniguruma, `\v`, `\u` and `{,n}` are spelt differently, and Oniguruma's caseless matching
// folds one character to several. The translator below rewrites the spellings and refuses the
// rest, naming the construct, so a pattern is either run with HF's meaning or not at all.
// Matches are JIT-compiled (PCRE2 JIT is ~10× its interpreter on these patterns); a JIT stack
// overflow falls back to the interpreter.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>

#include "gopd/core/error.h"
#include "tokenizer/hf_internal.h"

namespace gopd::tokenizer::hf {
namespace {

[[noreturn]] void refuse_construct(const Source& source, const std::string& key_path,
                                   const std::string& pattern, const std::string& construct) {
  throw_unsupported(source, key_path + " regex " + describe(Json(pattern)) + ": " + construct +
                                " (Oniguruma, which Hugging Face uses, and PCRE2 read it "
                                "differently)");
}

// Rewrites an Oniguruma pattern into PCRE2 syntax with the same meaning, or refuses it.
std::string translate_pattern(const std::string& pattern, const Source& source,
                              const std::string& key_path) {
  auto refuse = [&](const std::string& construct) {
    refuse_construct(source, key_path, pattern, construct);
  };
  std::string out;
  out.reserve(pattern.size() + 16);
  const size_t size = pattern.size();
  bool in_class = false;
  bool class_start = false;  // just after '[' or '[^': a ']' here is a literal
  // Oniguruma's caseless matching also folds one character to several ("ss" ~ "ß", "fi" ~ "ﬁ");
  // PCRE2's does not. From the first (?i on, literals that could take part in such a fold are
  // refused: non-ASCII ones, and the ASCII pairs ss, st, ff, fi, fl.
  bool caseless = false;
  char previous_letter = 0;
  size_t i = 0;
  while (i < size) {
    char c = pattern[i];
    if (caseless && static_cast<unsigned char>(c) >= 0x80) {
      refuse("a non-ASCII literal under (?i) (Oniguruma folds some to several characters)");
    }
    bool letter = !in_class && std::isalpha(static_cast<unsigned char>(c));
    if (caseless && letter && previous_letter != 0) {
      std::string pair{previous_letter, static_cast<char>(std::tolower(c))};
      if (pair == "ss" || pair == "st" || pair == "ff" || pair == "fi" || pair == "fl") {
        refuse("the letters \"" + pair + "\" under (?i) (Oniguruma also matches a ligature)");
      }
    }
    previous_letter = letter ? static_cast<char>(std::tolower(c)) : 0;
    if (c == '\\') {
      if (i + 1 >= size) refuse("a trailing backslash");
      char escaped = pattern[i + 1];
      class_start = false;
      previous_letter = 0;
      switch (escaped) {
        case 'p':
        case 'P': {
          size_t end = i + 2;
          if (end < size && pattern[end] == '{') {
            end = pattern.find('}', end);
            if (end == std::string::npos) refuse("an unterminated \\p{");
            ++end;
          } else {
            ++end;  // one-letter form, \pL
          }
          out.append(pattern, i, end - i);
          i = end;
          continue;
        }
        case 'u': {  // \uHHHH → \x{HHHH}
          if (i + 6 > size) refuse("a short \\u escape");
          std::string hex = pattern.substr(i + 2, 4);
          for (char h : hex) {
            if (!std::isxdigit(static_cast<unsigned char>(h))) refuse("a malformed \\u escape");
          }
          out += "\\x{" + hex + "}";
          i += 6;
          continue;
        }
        case 'v':  // vertical tab in Oniguruma, a class of vertical space in PCRE2
          out += "\\x{0B}";
          i += 2;
          continue;
        case 'x': {
          size_t end = i + 2;
          if (end < size && pattern[end] == '{') {
            end = pattern.find('}', end);
            if (end == std::string::npos) refuse("an unterminated \\x{");
            ++end;
          } else {
            while (end < size && end < i + 4 &&
                   std::isxdigit(static_cast<unsigned char>(pattern[end]))) {
              ++end;
            }
          }
          out.append(pattern, i, end - i);
          i = end;
          continue;
        }
        case 's':
        case 'S':
        case 'd':
        case 'D':
        case 'n':
        case 'r':
        case 't':
        case 'f':
        case 'e':
        case 'a':
          out.append(pattern, i, 2);
          i += 2;
          continue;
        default:
          if (static_cast<unsigned char>(escaped) < 0x80 &&
              std::ispunct(static_cast<unsigned char>(escaped))) {
            out.append(pattern, i, 2);  // an escaped literal: \. \- \' \# ...
            i += 2;
            continue;
          }
          refuse(std::string("the escape \\") + escaped);
      }
    }
    if (in_class) {
      if (c == '[') refuse("a nested character class or POSIX bracket");
      if (c == '&' && i + 1 < size && pattern[i + 1] == '&') refuse("class intersection &&");
      if (c == ']' && !class_start) in_class = false;
      class_start = class_start && c == '^';
      out.push_back(c);
      ++i;
      continue;
    }
    switch (c) {
      case '[':
        in_class = true;
        class_start = true;
        break;
      case '^':
      case '$':
        refuse_construct(source, key_path, pattern,
                         std::string("the anchor ") + c + " (always a line anchor in Oniguruma)");
      case '{':
        if (i + 1 < size && pattern[i + 1] == ',') refuse("the quantifier {,n}");
        break;
      case '(':
        if (i + 1 < size && pattern[i + 1] == '?') {
          char kind = i + 2 < size ? pattern[i + 2] : '\0';
          bool plain_group = kind == ':' || kind == '=' || kind == '!' || kind == '>' ||
                             (kind == '<' && i + 3 < size &&
                              (pattern[i + 3] == '=' || pattern[i + 3] == '!' ||
                               std::isalpha(static_cast<unsigned char>(pattern[i + 3]))));
          if (!plain_group) {
            // Option groups: only case-insensitivity means the same in both engines
            // (Oniguruma's (?m) is PCRE2's (?s); (?x), (?a), (?W)... differ or do not exist).
            size_t j = i + 2;
            while (j < size && (pattern[j] == 'i' || pattern[j] == '-')) ++j;
            if (j == i + 2 || j >= size || (pattern[j] != ':' && pattern[j] != ')')) {
              refuse("the group syntax " + pattern.substr(i, std::min<size_t>(4, size - i)));
            }
            caseless = true;  // conservatively, also for (?-i: the rest is checked as caseless
          }
        }
        break;
      default:
        break;
    }
    out.push_back(c);
    ++i;
  }
  if (in_class) refuse("an unterminated character class");
  return out;
}

// Per-thread match state: PCRE2 match data and JIT stacks must not be shared between threads
// that match at the same time; one set serves every pattern on its thread.
struct MatchScratch {
  MatchScratch() {
    data = pcre2_match_data_create(32, nullptr);
    context = pcre2_match_context_create(nullptr);
    constexpr size_t kJitStackStart = 64 * 1024;
    constexpr size_t kJitStackMax = 8 * 1024 * 1024;
    stack = pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr);
    if (data == nullptr || context == nullptr) {
      core::throw_runtime_failure("PCRE2: out of memory for match data");
    }
    if (stack != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchScratch() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    if (stack != nullptr) pcre2_jit_stack_free(stack);
  }
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;

  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
};

MatchScratch& match_scratch() {
  thread_local MatchScratch scratch;
  return scratch;
}

}  // namespace

Regex::Regex(const std::string& pattern, const Source& source, const std::string& key_path) {
  std::string translated = translate_pattern(pattern, source, key_path);
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);  // Oniguruma's only newline is \n
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                        PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &error_code, &error_offset,
                        context);
  pcre2_compile_context_free(context);
  if (code_ == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw_unsupported(source,
                      key_path + " regex " + describe(Json(pattern)) +
                          ": PCRE2 cannot compile it: " + reinterpret_cast<const char*>(message) +
                          " at offset " + std::to_string(error_offset));
  }
  // Without JIT support matching still works, through the interpreter.
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() { pcre2_code_free(code_); }

void Regex::find_all(std::string_view text, std::vector<Span>* matches) const {
  matches->clear();
  MatchScratch& scratch = match_scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t search_from = 0;
  bool have_previous = false;
  size_t previous_end = 0;
  while (search_from <= text.size()) {
    // Input was validated as UTF-8 once, at encode().
    int rc = pcre2_match(code_, subject, text.size(), search_from, PCRE2_NO_UTF_CHECK, scratch.data,
                         scratch.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code_, subject, text.size(), search_from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       scratch.data, scratch.context);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      core::throw_runtime_failure(std::string("PCRE2 matching failed on a text of ") +
                                  std::to_string(text.size()) +
                                  " bytes: " + reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
    size_t begin = ovector[0];
    size_t end = ovector[1];
    if (begin == end && have_previous && previous_end == end) {
      // The onig crate's rule: no empty match right after the previous match; step one char.
      if (search_from >= text.size()) break;
      search_from +=
          static_cast<size_t>(utf8_sequence_length(static_cast<unsigned char>(text[search_from])));
      continue;
    }
    matches->push_back(Span{begin, end});
    search_from = end;
    have_previous = true;
    previous_end = end;
  }
}

Pattern::Pattern(const Json& pattern, const Source& source, const std::string& key_path) {
  if (!pattern.is_object() || pattern.size() != 1) {
    throw_malformed(source, key_path, "{\"String\": ...} or {\"Regex\": ...}", pattern);
  }
  if (pattern.contains("String")) {
    literal_ = get_string(pattern, "String", source, key_path);
    if (literal_.empty()) throw_unsupported(source, key_path + ": an empty String pattern");
  } else if (pattern.contains("Regex")) {
    regex_ =
        std::make_shared<Regex>(get_string(pattern, "Regex", source, key_path), source, key_path);
  } else {
    throw_malformed(source, key_path, "{\"String\": ...} or {\"Regex\": ...}", pattern);
  }
}

void Pattern::find_all(std::string_view text, std::vector<Span>* matches) const {
  if (regex_) {
    regex_->find_all(text, matches);
    return;
  }
  matches->clear();
  size_t from = 0;
  while (true) {
    size_t at = text.find(literal_, from);
    if (at == std::string_view::npos) break;
    matches->push_back(Span{at, at + literal_.size()});
    from = at + literal_.size();
  }
}

void Pattern::find_matches(std::string_view text,
                           std::vector<std::pair<Span, bool>>* pieces) const {
  pieces->clear();
  if (text.empty()) {
    pieces->push_back({Span{0, 0}, false});
    return;
  }
  std::vector<Span> matches;
  find_all(text, &matches);
  size_t previous = 0;
  for (const Span& match : matches) {
    if (previous != match.begin) pieces->push_back({Span{previous, match.begin}, false});
    pieces->push_back({match, true});
    previous = match.end;
  }
  if (previous != text.size()) pieces->push_back({Span{previous, text.size()}, false});
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::vector<Span> matches;
  find_all(text, &matches);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t previous = 0;
  for (const Span& match : matches) {
    out.append(text.substr(previous, match.begin - previous));
    out.append(content);
    previous = match.end;
  }
  out.append(text.substr(previous));
  return out;
}

}  // namespace gopd::tokenizer::hf
