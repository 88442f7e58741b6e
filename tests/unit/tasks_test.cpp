// Tests for the built-in synthetic tasks (include/gopd/data/tasks.h): determinism, the
// train/eval partition, dedupe and exclusion, the arithmetic of every arith record, the
// semantics of every code family's hidden tests, and the exact messages for bad options.
#include "gopd/data/tasks.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "gopd/core/error.h"
#include "gopd/core/rng.h"

namespace gopd::data {
namespace {

using nlohmann::json;

constexpr int64_t kStartMax[] = {20, 20, 50, 99, 999};    // arith start value by difficulty
constexpr int64_t kVisibleExamples[] = {3, 4, 5, 3, 4};  // code examples by difficulty

TaskOptions make_options(const std::string& task, int64_t count, uint64_t seed, int64_t difficulty,
                         const std::string& split = "train", double noise = 0.0) {
  TaskOptions options;
  options.task = task;
  options.count = count;
  options.seed = seed;
  options.difficulty = difficulty;
  options.split = split;
  options.noise = noise;
  return options;
}

std::string serialise(const std::vector<Record>& records) {
  std::string text;
  for (const Record& record : records) text += to_json(record).dump() + "\n";
  return text;
}

std::string clean_prompt(const Record& record) {
  return record.extra.contains("clean_prompt") ? record.extra["clean_prompt"].get<std::string>()
                                               : record.prompt.get<std::string>();
}

std::set<std::string> clean_prompts(const std::vector<Record>& records) {
  std::set<std::string> prompts;
  for (const Record& record : records) prompts.insert(clean_prompt(record));
  return prompts;
}

// Runs generate_task and returns the message of the core::Error it must throw (exit code 2).
std::string bad_input_message(const TaskOptions& options) {
  try {
    generate_task(options);
  } catch (const core::Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    return error.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

// ---------------------------------------------------------------------------------------
// Shared behaviour

TEST(TasksTest, TaskNames) { EXPECT_EQ(task_names(), (std::vector<std::string>{"arith", "code"})); }

TEST(TasksTest, SameOptionsGiveByteIdenticalRecords) {
  for (const std::string& task : task_names()) {
    const TaskOptions options = make_options(task, 100, 3, 3, "all", 0.2);
    const std::string first = serialise(generate_task(options));
    EXPECT_EQ(first, serialise(generate_task(options)));
    TaskOptions other = options;
    other.seed = 4;
    EXPECT_NE(first, serialise(generate_task(other)));
  }
}

TEST(TasksTest, GoldenRecordsPinTheGenerator) {
  // Pins the exact output, so a change of the draw order or of the Rng shows up here.
  const std::vector<Record> arith = generate_task(make_options("arith", 1, 1, 3));
  EXPECT_EQ(to_json(arith[0]).dump(),
            R"({"answer":"128","difficulty":3,"domain":"math","id":"arith-d3-9238fd7380ed5141",)"
            R"("prompt":"Begin with 8. Multiply the result by 6. Then divide by 3. Multiply by 8. )"
            R"(What is the result?","solution":"8 * 6 = 48. 48 / 3 = 16. 16 * 8 = 128. )"
            R"(The answer is \\boxed{128}.","split":"train","task":"arith"})");
  const std::vector<Record> code = generate_task(make_options("code", 1, 1, 4));
  EXPECT_EQ(to_json(code[0]).dump(),
            R"({"answer":"def f(x):\n    return [v for v in x if v % 2 == 0]","difficulty":4,)"
            R"("domain":"code","id":"code-d4-0db4aa0f4545dab5","prompt":"Write a Python function )"
            R"(f(x) such that f([-9, -6, 4]) = [-6, 4]; f([-1, 4]) = [4]; f([1, 7, 0, 3]) = [0].",)"
            R"("solution":"```python\ndef f(x):\n    return [v for v in x if v % 2 == 0]\n```",)"
            R"("split":"train","task":"code","tests":{"cases":[{"args":[[1,3]],"expected":[]},)"
            R"({"args":[[3]],"expected":[]},{"args":[[6,-9,7,-5,9,-1]],"expected":[6]},)"
            R"({"args":[[6,-5]],"expected":[6]},{"args":[[9,7,7,-1,4]],"expected":[4]}],)"
            R"("entry_point":"f","kind":"call"}})");
}

TEST(TasksTest, RecordLayout) {
  for (const std::string& task : task_names()) {
    for (const double noise : {0.0, 0.3}) {
      for (const Record& record : generate_task(make_options(task, 50, 8, 2, "all", noise))) {
        const std::string clean = clean_prompt(record);
        const uint64_t hash = core::stable_hash(clean.data(), static_cast<int64_t>(clean.size()));
        char hex[17];
        std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
        EXPECT_EQ(record.id, task + "-d2-" + hex);
        EXPECT_EQ(record.domain, task == "arith" ? "math" : "code");
        EXPECT_EQ(record.extra["task"], task);
        EXPECT_EQ(record.extra["difficulty"], 2);
        EXPECT_EQ(record.extra["split"], split_of(clean));
        EXPECT_TRUE(record.extra["solution"].is_string());
        EXPECT_EQ(record.extra.contains("clean_prompt"), noise > 0.0);
        EXPECT_EQ(record.tests.is_null(), task == "arith");
        EXPECT_EQ(record.line, 0);
      }
    }
  }
}

TEST(TasksTest, NoiseKeepsTheCleanProblemSequence) {
  // Same seed, with and without noise: the same problems in the same order (paired data).
  const std::vector<Record> clean = generate_task(make_options("arith", 200, 6, 3, "train"));
  const std::vector<Record> noisy = generate_task(make_options("arith", 200, 6, 3, "train", 0.25));
  int64_t changed = 0;
  for (size_t i = 0; i < clean.size(); ++i) {
    EXPECT_EQ(noisy[i].extra["clean_prompt"], clean[i].prompt);
    EXPECT_EQ(noisy[i].id, clean[i].id);
    EXPECT_EQ(noisy[i].answer, clean[i].answer);
    changed += noisy[i].prompt != clean[i].prompt ? 1 : 0;
  }
  EXPECT_EQ(changed, 200);  // arith prompts have >= 8 words, so 0.25 inserts >= 2
}

TEST(TasksTest, RecordsAreDistinct) {
  for (const std::string& task : task_names()) {
    for (int64_t difficulty = 1; difficulty <= 5; ++difficulty) {
      const std::vector<Record> records =
          generate_task(make_options(task, 150, 2, difficulty, "all"));
      EXPECT_EQ(records.size(), 150u);
      EXPECT_EQ(clean_prompts(records).size(), 150u) << task << " d" << difficulty;
    }
  }
}

TEST(TasksTest, TrainAndEvalFilesNeverShareAProblem) {
  for (const std::string& task : task_names()) {
    const std::vector<Record> train = generate_task(make_options(task, 400, 1, 2, "train"));
    const std::vector<Record> eval = generate_task(make_options(task, 100, 2, 2, "eval"));
    for (const Record& record : train) EXPECT_EQ(record.extra["split"], "train");
    for (const Record& record : eval) EXPECT_EQ(record.extra["split"], "eval");
    const std::set<std::string> train_prompts = clean_prompts(train);
    for (const Record& record : eval) EXPECT_EQ(train_prompts.count(clean_prompt(record)), 0u);
  }
}

TEST(TasksTest, SplitAllMixesAboutOneTenthEval) {
  const std::vector<Record> records = generate_task(make_options("code", 2000, 5, 3, "all"));
  int64_t eval = 0;
  for (const Record& record : records) {
    EXPECT_EQ(record.extra["split"], split_of(clean_prompt(record)));
    eval += record.extra["split"] == "eval" ? 1 : 0;
  }
  // Binomial(2000, 0.1): mean 200, sd 13.4; +-60 is over 4 sd.
  EXPECT_NEAR(static_cast<double>(eval), 200.0, 60.0);
}

TEST(TasksTest, ExcludeSkipsGivenPrompts) {
  const TaskOptions options = make_options("arith", 100, 9, 2);
  const std::vector<Record> first = generate_task(options);
  // Excluding the first half of the file: the same seed then yields the second half first.
  std::unordered_set<std::string> exclude;
  for (size_t i = 0; i < 50; ++i) exclude.insert(clean_prompt(first[i]));
  const std::vector<Record> rest = generate_task(make_options("arith", 50, 9, 2), exclude);
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ(rest[i].id, first[50 + i].id);
  // Excluding a whole file from another seed's file.
  std::unordered_set<std::string> all(exclude);
  for (const Record& record : first) all.insert(clean_prompt(record));
  for (const Record& record : generate_task(make_options("arith", 300, 10, 2), all)) {
    EXPECT_EQ(all.count(clean_prompt(record)), 0u);
  }
}

// ---------------------------------------------------------------------------------------
// arith

struct ArithStep {
  char op;
  int64_t operand;
};

// Reads the operations back from the words of the prompt.
std::vector<ArithStep> parse_arith_prompt(const std::string& prompt, int64_t& start) {
  static const std::regex start_pattern(R"(^(Start|Begin) with (\d+)\.)");
  static const std::regex step_pattern(
      R"( (Add|Then add|Subtract|Then subtract|Take away|Multiply|Then multiply|Divide|Then divide)( the result)?( by)? (\d+)( to it)?\.)");
  static const std::regex question_pattern(R"( What is the (final number|result)\?$)");
  std::smatch match;
  EXPECT_TRUE(std::regex_search(prompt, match, start_pattern)) << prompt;
  start = std::stoll(match[2]);
  EXPECT_TRUE(std::regex_search(prompt, question_pattern)) << prompt;
  std::vector<ArithStep> steps;
  for (std::sregex_iterator it(prompt.begin(), prompt.end(), step_pattern), end; it != end; ++it) {
    const std::string verb = (*it)[1];
    const char op = verb.find("dd") != std::string::npos        ? '+'
                    : verb.find("ultiply") != std::string::npos ? '*'
                    : verb.find("ivide") != std::string::npos   ? '/'
                                                                : '-';
    steps.push_back({op, std::stoll((*it)[4])});
  }
  return steps;
}

TEST(ArithTaskTest, SolutionAndAnswerFollowTheWords) {
  static const std::regex solution_step(R"((-?\d+) ([-+*/]) (\d+) = (-?\d+)\. )");
  for (int64_t difficulty = 1; difficulty <= 5; ++difficulty) {
    int64_t negatives = 0;
    for (const Record& record : generate_task(make_options("arith", 150, 21, difficulty, "all"))) {
      const std::string prompt = record.prompt.get<std::string>();
      int64_t value = 0;
      const std::vector<ArithStep> steps = parse_arith_prompt(prompt, value);
      ASSERT_EQ(static_cast<int64_t>(steps.size()), difficulty) << prompt;
      EXPECT_LE(value, kStartMax[difficulty - 1]);

      // Evaluate the words, then compare with the worked solution step by step.
      const std::string solution = record.extra["solution"];
      std::sregex_iterator it(solution.begin(), solution.end(), solution_step), end;
      for (const ArithStep& step : steps) {
        ASSERT_NE(it, end) << solution;
        EXPECT_EQ(std::stoll((*it)[1]), value);
        EXPECT_EQ(std::string((*it)[2]), std::string(1, step.op));
        EXPECT_EQ(std::stoll((*it)[3]), step.operand);
        if (step.op == '/') {
          EXPECT_EQ(value % step.operand, 0) << "inexact division";
        }
        value = step.op == '+'   ? value + step.operand
                : step.op == '-' ? value - step.operand
                : step.op == '*' ? value * step.operand
                                 : value / step.operand;
        EXPECT_EQ(std::stoll((*it)[4]), value);
        negatives += value < 0 ? 1 : 0;
        ++it;
      }
      EXPECT_EQ(it, end);
      EXPECT_EQ(record.answer, std::to_string(value));
      const std::string tail = "The answer is \\boxed{" + record.answer + "}.";
      ASSERT_GE(solution.size(), tail.size());
      EXPECT_EQ(solution.substr(solution.size() - tail.size()), tail);
    }
    // Negative values only from difficulty 3 on (a documented choice), and then they occur.
    if (difficulty <= 2) {
      EXPECT_EQ(negatives, 0);
    } else {
      EXPECT_GT(negatives, 0);
    }
  }
}

TEST(ArithTaskTest, DifficultyOneSpaceHas714Problems) {
  // start 1..20 with one of: + 1..20 (400), - 1..start (210), * 2..5 within 99 (79),
  // exact / 2..5 (25). Enough that a first `gopd data --task arith --n 200` works.
  const std::vector<Record> all = generate_task(make_options("arith", 714, 4, 1, "all"));
  EXPECT_EQ(clean_prompts(all).size(), 714u);
  int64_t eval = 0;
  for (const Record& record : all) eval += record.extra["split"] == "eval" ? 1 : 0;
  EXPECT_EQ(bad_input_message(make_options("arith", 715, 4, 1, "all")),
            "--n: asked for 715 distinct arith problems at difficulty 1 (split all), but found "
            "only 714; lower --n, raise --difficulty or use another split");
  EXPECT_NO_THROW(generate_task(make_options("arith", 200, 4, 1, "train")));
  EXPECT_EQ(bad_input_message(make_options("arith", 700, 4, 1, "eval")),
            "--n: asked for 700 distinct arith problems at difficulty 1 (split eval), but found "
            "only " +
                std::to_string(eval) + "; lower --n, raise --difficulty or use another split");
}

// ---------------------------------------------------------------------------------------
// code

// The visible examples of a code prompt as (argument, result) pairs.
std::vector<std::pair<json, json>> parse_examples(const std::string& prompt) {
  static const std::regex example(R"(f\((-?\d+|\[[-\d, ]*\])\) = (-?\d+|\[[-\d, ]*\]))");
  std::vector<std::pair<json, json>> examples;
  for (std::sregex_iterator it(prompt.begin(), prompt.end(), example), end; it != end; ++it) {
    examples.emplace_back(json::parse(std::string((*it)[1])), json::parse(std::string((*it)[2])));
  }
  return examples;
}

int64_t python_mod(int64_t a, int64_t m) { return ((a % m) + m) % m; }  // m > 0
int64_t python_floor_div(int64_t a, int64_t m) { return (a - python_mod(a, m)) / m; }

// Recomputes f for the families the test knows by their exact text; nullopt otherwise.
std::optional<json> reference(const std::string& program, const json& x) {
  std::smatch m;
  const std::string body = program.substr(std::string("def f(x):\n    ").size());
  static const std::regex linear(R"(^return (?:(-?\d+) \* x|(-?)x)(?: ([-+]) (\d+))?$)");
  static const std::regex mod(
      R"(^return (?:\((\d+) \* x ([-+]) (\d+)\)|\(x ([-+]) (\d+)\)|x) % (\d+)$)");
  static const std::regex floor_div(R"(^return x // (\d+)(?: ([-+]) (\d+))?$)");
  if (std::regex_match(body, m, linear)) {
    const int64_t a = m[1].matched ? std::stoll(m[1]) : (m[2] == "-" ? -1 : 1);
    const int64_t b = m[3].matched ? (m[3] == "-" ? -1 : 1) * std::stoll(m[4]) : 0;
    return a * x.get<int64_t>() + b;
  }
  if (std::regex_match(body, m, mod)) {
    int64_t a = 1, c = 0;
    if (m[1].matched) a = std::stoll(m[1]), c = (m[2] == "-" ? -1 : 1) * std::stoll(m[3]);
    if (m[4].matched) c = (m[4] == "-" ? -1 : 1) * std::stoll(m[5]);
    return python_mod(a * x.get<int64_t>() + c, std::stoll(m[6]));
  }
  if (std::regex_match(body, m, floor_div)) {
    const int64_t b = m[2].matched ? (m[2] == "-" ? -1 : 1) * std::stoll(m[3]) : 0;
    return python_floor_div(x.get<int64_t>(), std::stoll(m[1])) + b;
  }
  if (body == "return sum(x)") {
    int64_t total = 0;
    for (const json& v : x) total += v.get<int64_t>();
    return total;
  }
  if (body == "return len(x)") return static_cast<int64_t>(x.size());
  if (body == "return x[::-1]") return json(std::vector<json>(x.rbegin(), x.rend()));
  if (body == "return [v for v in x if v % 2 == 0]") {
    json out = json::array();
    for (const json& v : x) {
      if (python_mod(v.get<int64_t>(), 2) == 0) out.push_back(v);
    }
    return out;
  }
  if (body == "return sum(v * v for v in x if v % 2 == 0)") {
    int64_t total = 0;
    for (const json& v : x) {
      if (python_mod(v.get<int64_t>(), 2) == 0) total += v.get<int64_t>() * v.get<int64_t>();
    }
    return total;
  }
  return std::nullopt;
}

TEST(CodeTaskTest, TestsAreHiddenAndFollowTheFamily) {
  int64_t recomputed = 0;
  int64_t negative_mod_cases = 0;  // cases where C++'s % would give a different answer
  for (int64_t difficulty = 1; difficulty <= 5; ++difficulty) {
    std::set<std::string> programs;
    for (const Record& record : generate_task(make_options("code", 200, 31, difficulty, "all"))) {
      const std::string prompt = record.prompt.get<std::string>();
      const std::vector<std::pair<json, json>> examples = parse_examples(prompt);
      ASSERT_EQ(static_cast<int64_t>(examples.size()), kVisibleExamples[difficulty - 1]) << prompt;
      ASSERT_EQ(record.tests["kind"], "call");
      ASSERT_EQ(record.tests["entry_point"], "f");
      const json& cases = record.tests["cases"];
      ASSERT_EQ(cases.size(), 5u);
      EXPECT_EQ(record.answer.rfind("def f(x):\n    ", 0), 0u);
      EXPECT_EQ(record.extra["solution"], "```python\n" + record.answer + "\n```");
      programs.insert(record.answer);

      bool outputs_vary = false;
      for (const auto& [argument, result] : examples) {
        outputs_vary = outputs_vary || result != examples[0].second;
        if (const auto expected = reference(record.answer, argument)) {
          EXPECT_EQ(*expected, result) << record.answer << " at " << argument;
        }
      }
      EXPECT_TRUE(outputs_vary) << prompt;
      std::set<json> hidden_arguments;
      for (const json& test_case : cases) {
        ASSERT_EQ(test_case["args"].size(), 1u);
        const json& argument = test_case["args"][0];
        EXPECT_EQ(argument.is_array(), difficulty >= 4);
        hidden_arguments.insert(argument);
        for (const auto& example : examples) EXPECT_NE(argument, example.first) << prompt;
        if (const auto expected = reference(record.answer, argument)) {
          EXPECT_EQ(*expected, test_case["expected"]) << record.answer << " at " << argument;
          ++recomputed;
          if (record.answer.find(" % ") != std::string::npos && !argument.is_array() &&
              *expected != json(argument.get<int64_t>() % 2) && argument.get<int64_t>() < 0) {
            ++negative_mod_cases;
          }
        }
      }
      EXPECT_EQ(hidden_arguments.size(), 5u);
    }
    EXPECT_GT(programs.size(), 10u) << "d" << difficulty;
  }
  EXPECT_GT(recomputed, 1500);
  EXPECT_GT(negative_mod_cases, 20);
}

TEST(CodeTaskTest, PythonFloorSemanticsForNegatives) {
  // Hand-checked against CPython: -7 % 3 == 2, (-7 + 1) % 4 == 2, -7 // 2 == -4.
  bool saw_mod = false, saw_floor_div = false;
  for (const Record& record : generate_task(make_options("code", 400, 13, 2, "all"))) {
    for (const json& test_case : record.tests["cases"]) {
      const int64_t x = test_case["args"][0];
      const int64_t expected = test_case["expected"];
      std::smatch m;
      static const std::regex plain_mod(R"(^def f\(x\):\n    return x % (\d+)$)");
      static const std::regex plain_div(R"(^def f\(x\):\n    return x // (\d+)$)");
      if (std::regex_match(record.answer, m, plain_mod) && x < 0 && x % std::stoll(m[1]) != 0) {
        EXPECT_EQ(expected, x % std::stoll(m[1]) + std::stoll(m[1])) << record.answer << " " << x;
        EXPECT_GE(expected, 0);
        saw_mod = true;
      }
      if (std::regex_match(record.answer, m, plain_div) && x < 0 && x % std::stoll(m[1]) != 0) {
        EXPECT_EQ(expected, x / std::stoll(m[1]) - 1) << record.answer << " " << x;
        saw_floor_div = true;
      }
    }
  }
  EXPECT_TRUE(saw_mod);
  EXPECT_TRUE(saw_floor_div);
}

// ---------------------------------------------------------------------------------------
// Bad options

TEST(TasksTest, BadOptionsNameTheOption) {
  EXPECT_EQ(bad_input_message(make_options("sort", 10, 1, 1)),
            "--task: expected one of arith, code, got 'sort'");
  EXPECT_EQ(bad_input_message(make_options("arith", 0, 1, 1)),
            "--n: expected an integer >= 1, got 0");
  EXPECT_EQ(bad_input_message(make_options("arith", 10, 1, 7)),
            "--difficulty: expected an integer in [1, 5], got 7");
  EXPECT_EQ(bad_input_message(make_options("code", 10, 1, 0)),
            "--difficulty: expected an integer in [1, 5], got 0");
  EXPECT_EQ(bad_input_message(make_options("arith", 10, 1, 1, "train", 1.0)),
            "--noise: expected a number in [0, 1), got 1");
  EXPECT_EQ(bad_input_message(make_options("arith", 10, 1, 1, "train", -0.5)),
            "--noise: expected a number in [0, 1), got -0.5");
  EXPECT_EQ(bad_input_message(make_options("arith", 10, 1, 1, "test")),
            "--split: expected one of train, eval, all, got 'test'");
}

}  // namespace
}  // namespace gopd::data
