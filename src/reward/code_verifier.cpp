// Implements the code verifier of code_verifier.h: program extraction, the call harness, output
// comparison and the thread pool of verify_code_batch.
#include "gopd/reward/code_verifier.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <thread>

#include "gopd/core/error.h"

namespace gopd::reward {
namespace {

using nlohmann::json;

// A Python string literal holding `text` (a JSON string literal is one; raw UTF-8 is kept,
// invalid bytes become U+FFFD).
std::string python_literal(const std::string& text) {
  return json(text).dump(-1, ' ', false, json::error_handler_t::replace);
}

// The call harness: defines the program under a name other than "__main__" (so a
// `if __name__ == "__main__":` block does not run), calls the entry point, and prints the
// result as the last line. It holds the arguments, never the expected value.
std::string call_harness(const std::string& program, const std::string& entry_point,
                         const json& args) {
  return "import json as _gopd_json, sys as _gopd_sys\n"
         "_gopd_args = _gopd_json.loads(" +
         python_literal(args.dump(-1, ' ', false, json::error_handler_t::replace)) +
         ")\n"
         "_gopd_namespace = {'__name__': '__gopd_solution__'}\n"
         "exec(compile(" +
         python_literal(program) +
         ", '<solution>', 'exec'), _gopd_namespace)\n"
         "_gopd_result = _gopd_namespace[" +
         python_literal(entry_point) +
         "](*_gopd_args)\n"
         "_gopd_sys.stdout.write('\\n' + _gopd_json.dumps(_gopd_result) + '\\n')\n"
         "_gopd_sys.stdout.flush()\n";
}

std::string normalized_output(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    line.erase(line.find_last_not_of(" \t\r\f\v") + 1);
    lines.push_back(line);
    start = end + 1;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string joined;
  for (const std::string& line : lines) joined += line + "\n";
  return joined;
}

std::string last_nonempty_line(const std::string& text) {
  const std::string normalized = normalized_output(text);
  if (normalized.empty()) return "";
  const size_t end = normalized.size() - 1;  // the final '\n'
  const size_t begin = normalized.rfind('\n', end - 1);
  return normalized.substr(begin == std::string::npos ? 0 : begin + 1,
                           end - (begin == std::string::npos ? 0 : begin + 1));
}

const json& required(const json& object, const char* key, const std::string& where) {
  const auto found = object.find(key);
  if (found == object.end()) core::throw_bad_input(where + ": missing \"" + key + "\"");
  return *found;
}

std::string required_string(const json& object, const char* key, const std::string& where) {
  const json& value = required(object, key, where);
  if (!value.is_string()) {
    core::throw_bad_input(where + "." + key + ": expected a string, got " + value.type_name());
  }
  return value.get<std::string>();
}

std::string short_reason(const SandboxResult& run) {
  std::string reason = run.message;
  // The last stderr line names a Python exception ("NameError: name 'g' is not defined").
  const std::string last = last_nonempty_line(run.stderr_text);
  if (run.outcome == SandboxOutcome::kFailed && !run.truncated && !last.empty()) reason = last;
  if (reason.size() > 120) reason = reason.substr(0, 117) + "...";
  return reason;
}

}  // namespace

CodeTests parse_code_tests(const json& tests) {
  if (!tests.is_object()) {
    core::throw_bad_input(std::string("tests: expected an object, got ") + tests.type_name());
  }
  CodeTests parsed;
  const std::string kind = required_string(tests, "kind", "tests");
  if (kind == "call") {
    parsed.kind = CodeTests::Kind::kCall;
    parsed.entry_point = required_string(tests, "entry_point", "tests");
    const auto& name = parsed.entry_point;
    const bool identifier = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                            std::all_of(name.begin(), name.end(), [](char c) {
                              return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                            });
    if (!identifier) {
      core::throw_bad_input("tests.entry_point: expected a Python identifier, got \"" + name +
                            "\"");
    }
  } else if (kind == "stdio") {
    parsed.kind = CodeTests::Kind::kStdio;
  } else {
    core::throw_bad_input("tests.kind: expected \"call\" or \"stdio\", got \"" + kind + "\"");
  }
  const json& cases = required(tests, "cases", "tests");
  if (!cases.is_array() || cases.empty()) {
    core::throw_bad_input("tests.cases: expected a non-empty array");
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string where = "tests.cases[" + std::to_string(i) + "]";
    const json& item = cases[i];
    if (!item.is_object()) core::throw_bad_input(where + ": expected an object");
    CodeCase one;
    if (parsed.kind == CodeTests::Kind::kCall) {
      one.args = required(item, "args", where);
      if (!one.args.is_array()) {
        core::throw_bad_input(where + ".args: expected an array, got " + one.args.type_name());
      }
      one.expected = required(item, "expected", where);
    } else {
      one.input = required_string(item, "input", where);
      one.output = required_string(item, "output", where);
    }
    parsed.cases.push_back(std::move(one));
  }
  return parsed;
}

std::string extract_program(std::string_view response) {
  std::string last_python, last_any;
  bool found_python = false, found_any = false;
  size_t position = 0;
  while (true) {
    const size_t open = response.find("```", position);
    if (open == std::string_view::npos) break;
    const size_t line_end = response.find('\n', open);
    if (line_end == std::string_view::npos) break;
    std::string language(response.substr(open + 3, line_end - open - 3));
    language.erase(0, language.find_first_not_of(" \t"));
    language.erase(language.find_last_not_of(" \t\r") + 1);
    std::transform(language.begin(), language.end(), language.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const size_t close = response.find("```", line_end + 1);
    // An unclosed fence (a truncated response) runs to the end of the text.
    const size_t body_end = close == std::string_view::npos ? response.size() : close;
    std::string body(response.substr(line_end + 1, body_end - line_end - 1));
    if (language == "python" || language == "py" || language == "python3") {
      last_python = body;
      found_python = true;
    }
    last_any = body;
    found_any = true;
    if (close == std::string_view::npos) break;
    position = close + 3;
  }
  if (found_python) return last_python;
  if (found_any) return last_any;
  return std::string(response);
}

bool json_values_equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_float() || b.is_number_float()) return a.get<double>() == b.get<double>();
    if (a.is_number_unsigned() != b.is_number_unsigned()) {
      const json& signed_value = a.is_number_unsigned() ? b : a;
      const json& unsigned_value = a.is_number_unsigned() ? a : b;
      return signed_value.get<int64_t>() >= 0 &&
             static_cast<uint64_t>(signed_value.get<int64_t>()) == unsigned_value.get<uint64_t>();
    }
    return a == b;
  }
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!json_values_equal(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      const auto other = b.find(it.key());
      if (other == b.end() || !json_values_equal(it.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

SandboxOptions sandbox_options(const core::CodeRewardConfig& config) {
  SandboxOptions options;
  options.python = config.python;
  options.wall_seconds = config.timeout_s;
  options.cpu_seconds = config.cpu_seconds;
  options.memory_mb = config.memory_mb;
  options.file_size_mb = config.file_size_mb;
  options.max_output_bytes = config.max_output_kb * 1024;
  options.max_processes = config.max_processes;
  options.allow_unsandboxed = config.allow_unsandboxed;
  options.spawn_with_fork = config.spawn == "fork";
  return options;
}

CodeReport verify_code_report(std::string_view response, const CodeTests& tests,
                              const core::CodeRewardConfig& config) {
  const std::string program = extract_program(response);
  const SandboxOptions options = sandbox_options(config);
  CodeReport report;
  int64_t passed = 0;
  std::string first_failure;
  const auto case_of = [&](const CodeCase& one) {
    return tests.kind == CodeTests::Kind::kCall
               ? SandboxCase{call_harness(program, tests.entry_point, one.args), ""}
               : SandboxCase{program, one.input};
  };
  // Judges case i from its run; false = no later case is needed (all_or_nothing failed).
  const auto judge = [&](size_t i, const SandboxResult& run) {
    const CodeCase& one = tests.cases[i];
    SandboxOutcome outcome = run.outcome;
    std::string reason = outcome == SandboxOutcome::kPassed ? "" : short_reason(run);
    if (outcome == SandboxOutcome::kPassed) {
      bool matches = false;
      if (tests.kind == CodeTests::Kind::kCall) {
        const json result = json::parse(last_nonempty_line(run.stdout_text), nullptr, false);
        matches = !result.is_discarded() && json_values_equal(result, one.expected);
      } else {
        matches = normalized_output(run.stdout_text) == normalized_output(one.output);
      }
      if (!matches) {
        outcome = SandboxOutcome::kFailed;
        reason = "wrong answer";
      }
    }
    report.outcomes.push_back(outcome);
    if (outcome == SandboxOutcome::kPassed) {
      ++passed;
      return true;
    }
    if (first_failure.empty()) {
      first_failure = "case " + std::to_string(i + 1) + " " + outcome_name(outcome) +
                      (reason.empty() ? "" : " (" + reason + ")");
    }
    if (config.all_or_nothing) {
      if (i + 1 < tests.cases.size()) first_failure += "; later cases not run";
      return false;
    }
    return true;
  };
  if (config.batch_cases && tests.cases.size() > 1) {
    // one sandbox for all cases, each judged as its report arrives (the expected outputs never
    // enter the sandbox), so all_or_nothing stops the sandbox at the first failure
    std::vector<SandboxCase> cases;
    for (const CodeCase& one : tests.cases) cases.push_back(case_of(one));
    (void)run_python_cases_sandboxed(cases, options, judge);
  } else {
    for (size_t i = 0; i < tests.cases.size(); ++i) {
      const SandboxCase sandbox_case = case_of(tests.cases[i]);
      if (!judge(i, run_python_sandboxed(sandbox_case.program, sandbox_case.stdin_text, options))) {
        break;
      }
    }
  }
  const auto total = static_cast<int64_t>(tests.cases.size());
  report.verdict.reward = config.all_or_nothing
                              ? (passed == total ? 1.0 : 0.0)
                              : static_cast<double>(passed) / static_cast<double>(total);
  report.verdict.detail = std::to_string(passed) + "/" + std::to_string(total) + " passed" +
                          (first_failure.empty() ? "" : "; " + first_failure);
  return report;
}

Verdict verify_code(std::string_view response, const CodeTests& tests,
                    const core::CodeRewardConfig& config) {
  return verify_code_report(response, tests, config).verdict;
}

std::vector<Verdict> verify_code_batch(const std::vector<CodeJob>& jobs,
                                       const core::CodeRewardConfig& config, int64_t workers,
                                       const std::function<void()>& on_done) {
  std::vector<Verdict> verdicts(jobs.size());
  if (workers <= 0) workers = std::max<int64_t>(1, std::thread::hardware_concurrency());
  workers = std::min<int64_t>(workers, static_cast<int64_t>(jobs.size()));
  std::atomic<size_t> next{0};
  std::mutex done_mutex;
  auto work = [&] {
    for (size_t i = next++; i < jobs.size(); i = next++) {
      verdicts[i] = verify_code(jobs[i].response, jobs[i].tests, config);
      if (on_done) {
        std::lock_guard<std::mutex> lock(done_mutex);
        on_done();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int64_t t = 1; t < workers; ++t) threads.emplace_back(work);
  work();
  for (std::thread& thread : threads) thread.join();
  return verdicts;
}

}  // namespace gopd::reward
