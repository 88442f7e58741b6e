// The code verifier and its bubblewrap sandbox: correct, wrong and hostile programs (infinite
// loop, fork bomb, memory bomb, output flood, writes and reads outside the sandbox, network,
// detached subprocesses, hunting for the expected answer). Each hostile program gets reward 0
// with the right outcome, and no process of the sandbox survives the run. Limits are short
// (2 s wall, 1 s CPU) so the suite stays fast; skipped when bubblewrap is absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gopd/core/error.h"
#include "gopd/reward/code_verifier.h"
#include "sandbox_test_util.h"

namespace gopd::reward {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

core::CodeRewardConfig fast_config() {
  core::CodeRewardConfig config;
  config.timeout_s = 2.0;
  config.cpu_seconds = 1;
  config.memory_mb = 256;
  config.max_output_kb = 64;
  config.max_processes = 16;
  config.all_or_nothing = true;
  return config;
}

using test::processes_with;

CodeTests call_tests(const json& args, const json& expected) {
  return parse_code_tests({{"kind", "call"},
                           {"entry_point", "f"},
                           {"cases", {{{"args", args}, {"expected", expected}}}}});
}

class CodeSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!bubblewrap_available()) GTEST_SKIP() << "bubblewrap (bwrap) is not installed";
  }
  // One call case f(2) == 10 (the built-in task's linear family); returns the case outcome.
  CodeReport run_call(const std::string& program) {
    return verify_code_report("```python\n" + program + "\n```", call_tests({2}, 10),
                              fast_config());
  }
};

TEST(CodeVerifierTest, ExtractsLastPythonBlock) {
  EXPECT_EQ(extract_program("a\n```python\nx = 1\n```\nb\n```python\nx = 2\n```\n```\ntext\n```"),
            "x = 2\n");
  EXPECT_EQ(extract_program("```\nprint(3)\n```"), "print(3)\n");
  EXPECT_EQ(extract_program("def f(x):\n    return x"), "def f(x):\n    return x");
  EXPECT_EQ(extract_program("```py\ny = 1\n"), "y = 1\n");  // unclosed (truncated) fence
}

TEST(CodeVerifierTest, JsonEqualityTreatsIntAndFloatAlike) {
  EXPECT_TRUE(json_values_equal(json(6), json(6.0)));
  EXPECT_TRUE(json_values_equal(json::parse("[1, [2.0, 3]]"), json::parse("[1.0, [2, 3]]")));
  EXPECT_FALSE(json_values_equal(json(6), json(7)));
  EXPECT_FALSE(json_values_equal(json(1), json(true)));
  EXPECT_FALSE(json_values_equal(json::parse("[1, 2]"), json::parse("[1, 2, 3]")));
  EXPECT_TRUE(json_values_equal(json::parse(R"({"a": 1})"), json::parse(R"({"a": 1.0})")));
}

TEST(CodeVerifierTest, MalformedTestsAreBadInput) {
  const auto message = [](const json& tests) {
    try {
      parse_code_tests(tests);
    } catch (const core::Error& error) {
      EXPECT_EQ(error.exit_code(), 2);
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(json::parse(R"({"kind": "shell", "cases": []})")),
            "tests.kind: expected \"call\" or \"stdio\", got \"shell\"");
  EXPECT_EQ(message(json::parse(R"({"kind": "call", "cases": [{"args": [1], "expected": 1}]})")),
            "tests: missing \"entry_point\"");
  EXPECT_EQ(message(json::parse(
                R"({"kind": "call", "entry_point": "f", "cases": [{"args": 1, "expected": 1}]})")),
            "tests.cases[0].args: expected an array, got number");
  EXPECT_EQ(
      message(json::parse(R"({"kind": "call", "entry_point": "f", "cases": [{"args": [1]}]})")),
      "tests.cases[0]: missing \"expected\"");
  EXPECT_EQ(message(json::parse(R"({"kind": "stdio", "cases": []})")),
            "tests.cases: expected a non-empty array");
  EXPECT_EQ(
      message(json::parse(
          R"j({"kind": "call", "entry_point": "f()", "cases": [{"args": [], "expected": 1}]})j")),
      "tests.entry_point: expected a Python identifier, got \"f()\"");
}

TEST_F(CodeSandboxTest, CorrectSolutionPasses) {
  const CodeTests tests = parse_code_tests(json::parse(
      R"({"kind": "call", "entry_point": "f", "cases": [{"args": [0], "expected": 6},
          {"args": [2], "expected": 10}, {"args": [-3], "expected": 0.0}]})"));
  const Verdict verdict =
      verify_code("Here:\n```python\ndef f(x):\n    return 2 * x + 6\n```", tests, fast_config());
  EXPECT_EQ(verdict.reward, 1.0);
  EXPECT_EQ(verdict.detail, "3/3 passed");
}

TEST_F(CodeSandboxTest, StdioComparesLinesWithoutTrailingWhitespace) {
  const CodeTests tests = parse_code_tests(json::parse(
      R"({"kind": "stdio", "cases": [{"input": "3 4\n", "output": "7\n"},
          {"input": "1 1\n", "output": "2  \n\n"}]})"));
  const std::string program = "a, b = map(int, input().split())\nprint(a + b, ' ')";
  EXPECT_EQ(verify_code(program, tests, fast_config()).reward, 1.0);
  EXPECT_EQ(verify_code("print(0)", tests, fast_config()).detail,
            "0/2 passed; case 1 failed (wrong answer); later cases not run");
}

TEST_F(CodeSandboxTest, WrongSolutionFails) {
  const CodeReport report = run_call("def f(x):\n    return 2 * x");
  EXPECT_EQ(report.verdict.reward, 0.0);
  EXPECT_EQ(report.outcomes, std::vector<SandboxOutcome>{SandboxOutcome::kFailed});
  EXPECT_EQ(report.verdict.detail, "0/1 passed; case 1 failed (wrong answer)");
  // A Python error names the exception.
  EXPECT_EQ(run_call("def f(x):\n    return g(x)").verdict.detail,
            "0/1 passed; case 1 failed (NameError: name 'g' is not defined)");
}

TEST_F(CodeSandboxTest, FractionalRewardWhenNotAllOrNothing) {
  core::CodeRewardConfig config = fast_config();
  config.all_or_nothing = false;
  const CodeTests tests = parse_code_tests(json::parse(
      R"({"kind": "call", "entry_point": "f", "cases": [{"args": [1], "expected": 1},
          {"args": [2], "expected": 5}, {"args": [3], "expected": 3}]})"));
  const Verdict verdict = verify_code("def f(x):\n    return x", tests, config);
  EXPECT_NEAR(verdict.reward, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(verdict.detail, "2/3 passed; case 2 failed (wrong answer)");
}

TEST_F(CodeSandboxTest, InfiniteLoopTimesOut) {
  const CodeReport report = run_call("def f(x):\n    while True:\n        pass");
  EXPECT_EQ(report.verdict.reward, 0.0);
  EXPECT_EQ(report.outcomes, std::vector<SandboxOutcome>{SandboxOutcome::kTimeout});
}

TEST_F(CodeSandboxTest, SleepPastTheWallClockTimesOut) {
  const auto start = std::chrono::steady_clock::now();
  const CodeReport report = run_call("import time\ndef f(x):\n    time.sleep(30)\n    return 10");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(report.verdict.reward, 0.0);
  EXPECT_EQ(report.outcomes, std::vector<SandboxOutcome>{SandboxOutcome::kTimeout});
  EXPECT_LT(seconds, 4.0);
}

TEST_F(CodeSandboxTest, ForkBombIsContainedAndLeavesNoProcess) {
  const std::string marker = "gopd_forkbomb_marker_51f3";
  const CodeReport report = run_call("import os  # " + marker +
                                     "\ndef f(x):\n    while True:\n        try:\n"
                                     "            os.fork()\n        except OSError:\n"
                                     "            pass");
  EXPECT_EQ(report.verdict.reward, 0.0);
  EXPECT_NE(report.outcomes.at(0), SandboxOutcome::kPassed);
  EXPECT_EQ(processes_with(marker), 0);
}

TEST_F(CodeSandboxTest, MemoryBombCrashes) {
  const CodeReport report = run_call(
      "def f(x):\n    chunks = []\n    while True:\n        chunks.append(bytearray(10**7))");
  EXPECT_EQ(report.verdict.reward, 0.0);
  EXPECT_EQ(report.outcomes, std::vector<SandboxOutcome>{SandboxOutcome::kCrashed});
}

TEST_F(CodeSandboxTest, OutputFloodIsTruncatedQuickly) {
  SandboxOptions options = sandbox_options(fast_config());
  const SandboxResult run = run_python_sandboxed(
      "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\n", "", options);
  EXPECT_TRUE(run.truncated);
  EXPECT_EQ(run.outcome, SandboxOutcome::kFailed);
  EXPECT_EQ(run.stdout_text.size(), 64u * 1024u);
  EXPECT_LT(run.wall_seconds, 1.5);
  const CodeReport report =
      run_call("import sys\ndef f(x):\n    sys.stdout.write('1' * (100 << 20))\n    return 10");
  EXPECT_EQ(report.verdict.reward, 0.0);
}

TEST_F(CodeSandboxTest, WritesOutsideTmpFailAndLeaveNothingOnTheHost) {
  const SandboxOptions options = sandbox_options(fast_config());
  const fs::path here = fs::absolute(__FILE__).parent_path();
  for (const std::string& path :
       {std::string("/usr/gopd_escape"), (here / "gopd_escape").string(),
        std::string("/root/gopd_escape"), std::string("/etc/gopd_escape")}) {
    const SandboxResult run =
        run_python_sandboxed("open('" + path + "', 'w').write('x')\n", "", options);
    EXPECT_EQ(run.outcome, SandboxOutcome::kFailed) << path;
    EXPECT_FALSE(fs::exists(path)) << path;
  }
  // /tmp inside is a private tmpfs: the write succeeds there and never reaches the host's /tmp.
  const fs::path host_tmp = "/tmp/gopd_sandbox_private_tmp_check";
  fs::remove(host_tmp);
  const SandboxResult run =
      run_python_sandboxed("open('" + host_tmp.string() + "', 'w').write('x')\n", "", options);
  EXPECT_EQ(run.outcome, SandboxOutcome::kPassed);
  EXPECT_FALSE(fs::exists(host_tmp));
  EXPECT_EQ(run_call("def f(x):\n    open('/usr/gopd_escape', 'w')\n    return 10").verdict.reward,
            0.0);
}

TEST_F(CodeSandboxTest, HostFilesAreNotVisible) {
  const SandboxOptions options = sandbox_options(fast_config());
  for (const std::string& path : {fs::absolute(__FILE__).string(), std::string("/root/.bashrc"),
                                  std::string("/etc/passwd"), std::string("/work")}) {
    const SandboxResult run = run_python_sandboxed(
        "import os\nprint(os.path.exists('" + path + "'))\nprint(open('" + path + "').read())\n",
        "", options);
    EXPECT_EQ(run.outcome, SandboxOutcome::kFailed) << path;
    EXPECT_EQ(run.stdout_text, "False\n") << path;
  }
}

TEST_F(CodeSandboxTest, NetworkIsUnreachable) {
  const CodeReport report = run_call(
      "import socket\ndef f(x):\n    s = socket.create_connection(('1.1.1.1', 53), timeout=1)\n"
      "    return 10");
  EXPECT_EQ(report.verdict.reward, 0.0);
  EXPECT_EQ(report.outcomes, std::vector<SandboxOutcome>{SandboxOutcome::kFailed});
  EXPECT_NE(report.verdict.detail.find("OSError"), std::string::npos) << report.verdict.detail;
}

TEST_F(CodeSandboxTest, DetachedChildrenDoNotOutliveTheRun) {
  const std::string marker = "gopd_detached_marker_9c2e";
  const std::string program =
      "import os, subprocess, sys, time  # " + marker +
      "\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(5)  # " + marker +
      "'], start_new_session=True)\n"
      "if os.fork() == 0:\n    os.setsid()\n    time.sleep(5)\n    print('late')\n";
  const CodeTests tests = parse_code_tests(
      json::parse(R"({"kind": "stdio", "cases": [{"input": "", "output": "late"}]})"));
  const CodeReport report = verify_code_report(program, tests, fast_config());
  EXPECT_EQ(report.verdict.reward, 0.0);
  EXPECT_EQ(report.outcomes, std::vector<SandboxOutcome>{SandboxOutcome::kFailed});
  EXPECT_EQ(processes_with(marker), 0);
}

TEST_F(CodeSandboxTest, ExpectedValuesNeverEnterTheSandbox) {
  // Searches everything it can read (its own command line and environment, every process,
  // files under / other than /usr, /proc, /sys, /dev) for the expected string; its prefix is built
  // at run time so that the search does not find its own source. (/dev is skipped: reading a device
  // can block.)
  const std::string program = R"(import os
def find(needle):
    places = []
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            places += ['/proc/%s/cmdline' % pid, '/proc/%s/environ' % pid]
    for root, dirs, files in os.walk('/'):
        if root.startswith(('/usr', '/proc', '/sys', '/dev')):
            dirs[:] = []
            continue
        places += [os.path.join(root, name) for name in files]
    for place in places:
        try:
            data = open(place, 'rb').read(1 << 20).decode('latin-1')
        except Exception:
            continue
        at = data.find(needle)
        if at >= 0:
            return data[at:at + 22]
    return 'not found'
def f(x):
    return find('gopd' + '-secret-')
)";
  const CodeReport report =
      verify_code_report(program, call_tests({2}, "gopd-secret-7f3a9c1b2d"), fast_config());
  EXPECT_EQ(report.verdict.reward, 0.0);
  EXPECT_EQ(report.outcomes, std::vector<SandboxOutcome>{SandboxOutcome::kFailed});
}

TEST_F(CodeSandboxTest, BatchKeepsJobOrder) {
  std::vector<CodeJob> jobs;
  for (int i = 0; i < 6; ++i) {
    jobs.push_back({i % 2 == 0 ? "def f(x):\n    return 2 * x + 6" : "def f(x):\n    return 0",
                    call_tests({2}, 10)});
  }
  int64_t done = 0;
  const std::vector<Verdict> verdicts =
      verify_code_batch(jobs, fast_config(), 2, [&done] { ++done; });
  ASSERT_EQ(verdicts.size(), 6u);
  for (size_t i = 0; i < verdicts.size(); ++i)
    EXPECT_EQ(verdicts[i].reward, i % 2 == 0 ? 1.0 : 0.0);
  EXPECT_EQ(done, 6);
}

TEST(CodeSandboxRefusalTest, NoInterpreterIsRefused) {
  SandboxOptions options;
  options.python = "/nonexistent/python3";
  EXPECT_EQ(run_python_sandboxed("print(1)", "", options).outcome, SandboxOutcome::kRefused);
  EXPECT_EQ(resolve_python("python3"), "/usr/bin/python3");
}

}  // namespace
}  // namespace gopd::reward
