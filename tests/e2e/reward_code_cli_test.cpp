// `gopd reward --type code` end to end: the built-in code task's reference solutions all pass in
// the sandbox, a wrong program and a hostile one score 0 with their outcome in "detail", and a
// malformed "tests" field exits 2 naming file:line and writes no output.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"

namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::temp_directory_path() / ("gopd_reward_code_" + std::to_string(getpid()));

int run(const std::string& args, std::string* err_text = nullptr) { return gopd::test::run_cli(args, kDir, err_text); }

using gopd::test::read_jsonl;

TEST(RewardCodeCli, SolutionsPassWrongAndHostileProgramsScoreZero) {
  if (std::system("command -v bwrap > /dev/null 2>&1") != 0) GTEST_SKIP() << "bubblewrap is not installed";
  fs::remove_all(kDir);
  fs::create_directories(kDir);
  const std::string d = kDir.string();
  ASSERT_EQ(run("data --task code --n 6 --difficulty 2 --out '" + d + "/code.jsonl'"), 0);
  std::string err;
  ASSERT_EQ(run("reward --type code --input '" + d + "/code.jsonl' --response-field solution --output '" + d +
                    "/scored.jsonl'",
                &err),
            0)
      << err;
  const auto scored = read_jsonl(kDir / "scored.jsonl");
  ASSERT_EQ(scored.size(), 6u);
  for (const auto& line : scored) EXPECT_EQ(line["reward"].get<double>(), 1.0) << line.dump();

  // The first record's tests with a wrong program and with an infinite loop.
  const nlohmann::json tests = scored[0]["tests"];
  std::ofstream(kDir / "bad.jsonl") << nlohmann::json{{"response", "def f(x):\n    return 12345"}, {"tests", tests}}.dump()
                                    << "\n"
                                    << nlohmann::json{{"response", "```python\ndef f(x):\n    while True:\n        pass\n```"},
                                                      {"tests", tests}}.dump()
                                    << "\n";
  ASSERT_EQ(run("reward --type code --input '" + d + "/bad.jsonl' --output '" + d + "/bad_scored.jsonl'", &err), 0) << err;
  const auto bad = read_jsonl(kDir / "bad_scored.jsonl");
  ASSERT_EQ(bad.size(), 2u);
  EXPECT_EQ(bad[0]["reward"].get<double>(), 0.0);
  EXPECT_NE(bad[0]["detail"].get<std::string>().find("failed"), std::string::npos) << bad[0].dump();
  EXPECT_EQ(bad[1]["reward"].get<double>(), 0.0);
  EXPECT_NE(bad[1]["detail"].get<std::string>().find("timeout"), std::string::npos) << bad[1].dump();

  // Malformed tests: exit 2 naming the line; no output file.
  std::ofstream(kDir / "malformed.jsonl") << nlohmann::json{{"response", "def f(x): return x"}, {"tests", tests}}.dump() << "\n"
                                          << R"({"response": "def f(x): return x", "tests": {"kind": "call", "entry_point": "f", "cases": [{"args": [1]}]}})"
                                          << "\n";
  EXPECT_EQ(run("reward --type code --input '" + d + "/malformed.jsonl' --output '" + d + "/malformed_scored.jsonl'", &err), 2);
  EXPECT_NE(err.find("malformed.jsonl:2"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(kDir / "malformed_scored.jsonl"));
  fs::remove_all(kDir);
}

}  // namespace
