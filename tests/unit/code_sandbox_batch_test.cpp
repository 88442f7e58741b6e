// The batched sandbox (all of a response's cases in one bubblewrap) against the one-sandbox-
// per-case reference path: the same outcome for every case and the same reward, on correct,
// wrong and hostile programs whose misbehaviour depends on the case (so a later case must not
// inherit an earlier one's fate); plus what only the batch has to guarantee: a case sees nothing
// an earlier case left (files in /tmp and /dev/shm, processes, SysV IPC), cannot reach the
// runner's reports or memory, and killing the runner costs only its own cases. Short limits
// (2 s wall, 1 s CPU); skipped when bubblewrap is absent.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gopd/reward/code_verifier.h"
#include "sandbox_test_util.h"

namespace gopd::reward {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

core::CodeRewardConfig config_for(bool batch, bool all_or_nothing) {
  core::CodeRewardConfig config;
  config.timeout_s = 2.0;
  config.cpu_seconds = 1;
  config.memory_mb = 256;
  config.max_output_kb = 64;
  config.max_processes = 16;
  config.all_or_nothing = all_or_nothing;
  config.batch_cases = batch;
  return config;
}

// stdio: the program reads k and must print 2k, for k = 1, 2, 3
CodeTests doubling_tests() {
  return parse_code_tests(json::parse(R"({"kind": "stdio", "cases": [
      {"input": "1\n", "output": "2"}, {"input": "2\n", "output": "4"},
      {"input": "3\n", "output": "6"}]})"));
}

using test::processes_with;

class CodeSandboxBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!bubblewrap_available()) GTEST_SKIP() << "bubblewrap (bwrap) is not installed";
  }
};

struct Program {
  std::string name;
  std::string text;
  std::vector<SandboxOutcome> expected;  // per case, with all_or_nothing off
};

TEST_F(CodeSandboxBatchTest, SameOutcomesAsOneSandboxPerCase) {
  using O = SandboxOutcome;
  const std::string read = "import os, signal, sys, time\nk = int(input())\n";
  const std::vector<Program> programs = {
      {"correct", read + "print(2 * k)", {O::kPassed, O::kPassed, O::kPassed}},
      {"wrong on 2", read + "print(0 if k == 2 else 2 * k)", {O::kPassed, O::kFailed, O::kPassed}},
      {"exit 1 on 3", read + "print(2 * k)\nsys.exit(1 if k == 3 else 0)",
       {O::kPassed, O::kPassed, O::kFailed}},
      {"busy loop on 2", read + "while k == 2:\n    pass\nprint(2 * k)",
       {O::kPassed, O::kTimeout, O::kPassed}},
      {"sleep on 1", read + "if k == 1:\n    time.sleep(30)\nprint(2 * k)",
       {O::kTimeout, O::kPassed, O::kPassed}},
      {"memory bomb on 1",
       read + "if k == 1:\n    a = [bytearray(10**7) for _ in range(1000)]\nprint(2 * k)",
       {O::kCrashed, O::kPassed, O::kPassed}},
      {"segfault on 2", read + "if k == 2:\n    os.kill(os.getpid(), signal.SIGSEGV)\nprint(2 * k)",
       {O::kPassed, O::kCrashed, O::kPassed}},
      {"flood on 3", read + "if k == 3:\n    sys.stdout.write('x' * (8 << 20))\nprint(2 * k)",
       {O::kPassed, O::kPassed, O::kFailed}},
      {"fork bomb on 1",
       read + "# gopd_batch_forkbomb_7d1\nwhile k == 1:\n    try:\n        os.fork()\n"
              "    except OSError:\n        pass\nprint(2 * k)",
       {O::kTimeout, O::kPassed, O::kPassed}},
      {"exit 139 on 1 (reads as SIGSEGV)", read + "print(2 * k)\nsys.exit(139 if k == 1 else 0)",
       {O::kCrashed, O::kPassed, O::kPassed}},
      {"answer from a child after the parent exits",
       read + "if os.fork():\n    sys.exit(0)\ntime.sleep(0.3)\nprint(2 * k)", {}},
      {"correct, leaves a process behind",
       read + "import subprocess\nsubprocess.Popen([sys.executable, '-c', 'import time; "
              "time.sleep(30)'], start_new_session=True)\nprint(2 * k)",
       {O::kPassed, O::kPassed, O::kPassed}},
      // not JSON-encodable: these cases take the one-case path inside the batch call
      {"not UTF-8", read + "print(2 * k)  # \xff\xfe", {}},
  };
  for (const Program& program : programs) {
    const CodeReport one_by_one =
        verify_code_report(program.text, doubling_tests(), config_for(false, false));
    const CodeReport batched =
        verify_code_report(program.text, doubling_tests(), config_for(true, false));
    EXPECT_EQ(batched.outcomes, one_by_one.outcomes) << program.name;
    EXPECT_EQ(batched.verdict.reward, one_by_one.verdict.reward) << program.name;
    // the fork bomb's case may end by the CPU limit (timeout) or by the process limit (its
    // parent exits non-zero); the others have one right answer
    if (program.expected.empty()) continue;  // parity only
    if (program.name.rfind("fork bomb", 0) != 0) {
      EXPECT_EQ(batched.outcomes, program.expected) << program.name;
    } else {
      EXPECT_NE(batched.outcomes.at(0), O::kPassed);
      EXPECT_EQ(batched.outcomes.at(1), O::kPassed);
    }
  }
  EXPECT_EQ(processes_with("gopd_batch_forkbomb_7d1"), 0);
}

TEST_F(CodeSandboxBatchTest, AllOrNothingStopsAtTheFirstFailedCase) {
  // a wrong answer that exits cleanly stops the batch too: gopd judges each report as it comes
  const std::string wrong = "k = int(input())\nprint(0)";
  const CodeReport batched_wrong = verify_code_report(wrong, doubling_tests(), config_for(true, true));
  EXPECT_EQ(batched_wrong.outcomes, std::vector<SandboxOutcome>{SandboxOutcome::kFailed});
  EXPECT_EQ(batched_wrong.verdict.detail,
            verify_code_report(wrong, doubling_tests(), config_for(false, true)).verdict.detail);
  const std::string program = "import time\nk = int(input())\ntime.sleep(30)\nprint(2 * k)";
  const auto start = std::chrono::steady_clock::now();
  const CodeReport batched = verify_code_report(program, doubling_tests(), config_for(true, true));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const CodeReport one_by_one =
      verify_code_report(program, doubling_tests(), config_for(false, true));
  EXPECT_EQ(batched.outcomes, std::vector<SandboxOutcome>{SandboxOutcome::kTimeout});
  EXPECT_EQ(batched.outcomes, one_by_one.outcomes);
  EXPECT_EQ(batched.verdict.detail, one_by_one.verdict.detail);
  EXPECT_LT(seconds, 4.0);  // one case's wall clock, not three
}

TEST_F(CodeSandboxBatchTest, ACaseSeesNothingAnEarlierCaseLeft) {
  // case 1 leaves files in /tmp and /dev/shm (in a directory it made unreadable), a SysV shared
  // memory segment, a detached process, and makes /tmp itself unwritable; writing to / fails in
  // both paths (read-only root). Case 2 prints 4 only if it sees none of that (the processes it
  // may see: the namespace's init, its parent and itself) and /tmp works.
  const std::string program = R"(import ctypes, os, subprocess, sys
k = int(input())
libc = ctypes.CDLL(None, use_errno=True)
if k == 1:
    os.makedirs('/tmp/d/e')
    open('/tmp/d/e/left', 'w').write('x')
    os.chmod('/tmp/d', 0)
    open('/dev/shm/left', 'w').write('x')
    libc.shmget(0x6f70, 4096, 0o1000 | 0o600)
    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)  # gopd_batch_left_3a9'],
                     start_new_session=True)
    try:
        open('/left_in_root', 'w').write('x')
    except OSError:
        pass
    try:
        open('/dev/left', 'w').write('x')
    except OSError:
        pass
    os.setxattr('/tmp', 'user.left', b'x')
    os.utime('/tmp', (1, 1))
    if os.uname().machine == 'x86_64':  # add_key(2) into the user keyring
        libc.syscall(248, b'user', b'gopd_left', b'x', 1, -4)
    os.chmod('/tmp', 0)
    print(2)
else:
    others = [p for p in os.listdir('/proc')
              if p.isdigit() and int(p) not in (1, os.getpid(), os.getppid())]
    left = {'tmp': os.listdir('/tmp'), 'shm': os.listdir('/dev/shm'), 'root': os.path.exists('/left_in_root'),
            'sysv': libc.shmget(0x6f70, 4096, 0o600) != -1, 'processes': others,
            'dev': os.path.exists('/dev/left'), 'xattr': os.listxattr('/tmp'),
            'mtime': os.stat('/tmp').st_mtime < 100,
            'key': os.uname().machine == 'x86_64' and  # keyctl(KEYCTL_SEARCH) in the user keyring
                   libc.syscall(250, 10, -4, b'user', b'gopd_left', 0) != -1}
    open('/tmp/works', 'w').write('x')
    clean = not any(left.values())
    print(2 * k if clean else 'left: %s' % left)
)";
  const CodeReport report = verify_code_report(program, doubling_tests(), config_for(true, false));
  EXPECT_EQ(report.verdict.reward, 1.0) << report.verdict.detail;
  EXPECT_EQ(processes_with("gopd_batch_left_3a9"), 0);
}

TEST_F(CodeSandboxBatchTest, ACaseCannotReachTheRunnersReportsOrMemory) {
  // Case 1 tries every way it has to the runner (its parent): list or open its fds (fd 4 carries
  // the reports), read its memory at a mapped address, reopen the namespace init's stdio. It prints
  // the right answer only if all of that failed; case 2 answers wrongly, so the reward must be
  // 1/3 whatever case 1 could have forged.
  const std::string program = R"(import os
k = int(input())
if k == 1:
    parent = os.getppid()
    reached = []
    try:
        os.listdir('/proc/%d/fd' % parent)
        reached.append('fd list')
    except OSError:
        pass
    for target, mode in (('/proc/%d/fd/4' % parent, 'w'), ('/proc/1/fd/1', 'rb'), ('/proc/1/fd/2', 'rb')):
        try:
            open(target, mode).close()
            reached.append(target)
        except OSError:
            pass
    try:
        start = int(open('/proc/%d/maps' % parent).readline().split('-')[0], 16)
        with open('/proc/%d/mem' % parent, 'rb') as memory:
            memory.seek(start)
            memory.read(16)
        reached.append('memory')
    except (OSError, ValueError):
        pass
    print('reached: %s' % reached if reached else 2)
else:
    print(0)
)";
  const CodeReport report = verify_code_report(program, doubling_tests(), config_for(true, false));
  EXPECT_NEAR(report.verdict.reward, 1.0 / 3.0, 1e-12) << report.verdict.detail;
  EXPECT_EQ(report.outcomes.at(0), SandboxOutcome::kPassed) << report.verdict.detail;
  EXPECT_EQ(report.outcomes.at(1), SandboxOutcome::kFailed);
}

// A case can stop the runner (same uid) to run past its wall clock, or change the runner's
// limits for the cases after it: the first is a timeout, the second ends the batch.
TEST_F(CodeSandboxBatchTest, StoppingOrChangingTheRunnerGainsNothing) {
  const std::string stop =
      "import os, signal, time\nk = int(input())\nos.kill(os.getppid(), signal.SIGSTOP)\n"
      "time.sleep(2.5)\nos.kill(os.getppid(), signal.SIGCONT)\nprint(2 * k)";
  const CodeReport stopped = verify_code_report(stop, doubling_tests(), config_for(true, false));
  EXPECT_EQ(stopped.outcomes.at(0), SandboxOutcome::kTimeout) << stopped.verdict.detail;
  const std::string change =
      "import os, resource\nk = int(input())\nif k == 1:\n"
      "    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
      "    resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (64, hard))\n"
      "print(2 * k if resource.getrlimit(resource.RLIMIT_NOFILE)[0] != 64 or k == 1 else 0)";
  const CodeReport changed = verify_code_report(change, doubling_tests(), config_for(true, false));
  // the runner finds its limits changed after case 1 and stops before reporting it
  EXPECT_EQ(changed.verdict.reward, 0.0) << changed.verdict.detail;
  EXPECT_NE(changed.outcomes.at(1), SandboxOutcome::kPassed) << changed.verdict.detail;
  EXPECT_NE(changed.outcomes.at(2), SandboxOutcome::kPassed) << changed.verdict.detail;
}

TEST_F(CodeSandboxBatchTest, KillingTheRunnerCostsOnlyItsOwnCases) {
  const std::string program =
      "import os, signal\nk = int(input())  # gopd_batch_killer_c42\n"
      "os.kill(os.getppid(), signal.SIGKILL)\nprint(2 * k)";
  const CodeReport report = verify_code_report(program, doubling_tests(), config_for(true, false));
  // whatever the first case's fate, no case after the runner died is counted as passed
  EXPECT_LT(report.verdict.reward, 1.0) << report.verdict.detail;
  EXPECT_EQ(report.outcomes.size(), 3u);
  EXPECT_NE(report.outcomes.at(2), SandboxOutcome::kPassed);
  EXPECT_EQ(processes_with("gopd_batch_killer_c42"), 0);
}

TEST_F(CodeSandboxBatchTest, CallHarnessCasesMatchTheReference) {
  const CodeTests tests = parse_code_tests(json::parse(R"({"kind": "call", "entry_point": "f",
      "cases": [{"args": [1], "expected": 8}, {"args": [2], "expected": 10},
                {"args": [3], "expected": 12}]})"));
  for (const std::string& program :
       {std::string("def f(x):\n    return 2 * x + 6"),
        std::string("def f(x):\n    return 10"),
        std::string("def f(x):\n    while x == 3:\n        pass\n    return 2 * x + 6")}) {
    const CodeReport batched = verify_code_report(program, tests, config_for(true, false));
    const CodeReport one_by_one = verify_code_report(program, tests, config_for(false, false));
    EXPECT_EQ(batched.outcomes, one_by_one.outcomes) << program;
    EXPECT_EQ(batched.verdict.reward, one_by_one.verdict.reward) << program;
  }
}

// Cases are forked from the runner's interpreter instead of starting one each: what a fresh
// `python3 -I -c` does on the way in and out must hold all the same (SystemExit's argument,
// tracebacks, syntax errors, atexit, threads still running at the end, stdin at EOF, UTF-8,
// __name__ and argv, flushing), with the same output, exit status and signal as the reference.
TEST_F(CodeSandboxBatchTest, ForkedCasesBehaveLikeAFreshInterpreter) {
  SandboxOptions options;
  options.wall_seconds = 2.0;
  options.cpu_seconds = 1;
  options.memory_mb = 256;
  const std::vector<SandboxCase> cases = {
      {"print(input())", "a b\n"},
      {"import sys\nsys.exit(3)", ""},
      {"import sys\nsys.exit('bye')", ""},
      {"import sys\nsys.exit(None)", ""},
      {"import sys\nsys.exit(256 + 7)", ""},
      {"def f(:\n    pass", ""},
      {"raise ValueError('x')", ""},
      {"import atexit\natexit.register(lambda: print('at exit'))\nprint('main')", ""},
      {"import threading, time\ndef f():\n    time.sleep(0.1)\n    print('thread')\n"
       "threading.Thread(target=f).start()\nprint('main')", ""},
      {"x = input()\ny = input()", "1\n"},
      {"import sys\nprint(sum(int(line) for line in sys.stdin))", "1\n2\n3\n"},
      {"print('\u00e9\u4e2d', end='')", ""},
      {"print(repr(input()), repr(input()))", "a\r\nb\r\n"},
      {"import sys\nsys.exit(2 ** 64)", ""},
      {"import sys\nprint(__name__, sys.argv, sys.flags.isolated, [k for k in globals() if k[0] != '_'])", ""},
      {"import sys\nsys.stdout.write('partial')\nimport os\nos._exit(0)", ""},
      {"import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", ""},
  };
  const std::vector<SandboxResult> batched = run_python_cases_sandboxed(cases, options);
  ASSERT_EQ(batched.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const SandboxResult one = run_python_sandboxed(cases[i].program, cases[i].stdin_text, options);
    EXPECT_EQ(batched[i].outcome, one.outcome) << cases[i].program;
    EXPECT_EQ(batched[i].exit_code, one.exit_code) << cases[i].program;
    EXPECT_EQ(batched[i].signal, one.signal) << cases[i].program;
    EXPECT_EQ(batched[i].stdout_text, one.stdout_text) << cases[i].program;
    EXPECT_EQ(batched[i].stderr_text.empty(), one.stderr_text.empty()) << cases[i].program;
  }
}

// run_python_cases_sandboxed called directly: results in case order with their fields filled
// (output, stderr, exit status), and a callback that stops the run leaves the rest not run.
TEST_F(CodeSandboxBatchTest, ResultsComeInCaseOrderWithTheirFields) {
  SandboxOptions options;
  options.wall_seconds = 2.0;
  options.cpu_seconds = 1;
  options.memory_mb = 256;
  std::vector<size_t> seen;
  const std::vector<SandboxResult> results = run_python_cases_sandboxed(
      {{"print(input())", "a\n"}, {"import sys\nsys.stderr.write('e')\nsys.exit(3)", ""},
       {"print('c')", ""}},
      options, [&](size_t index, const SandboxResult&) {
        seen.push_back(index);
        return true;
      });
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2}));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].outcome, SandboxOutcome::kPassed);
  EXPECT_EQ(results[0].stdout_text, "a\n");
  EXPECT_EQ(results[1].outcome, SandboxOutcome::kFailed);
  EXPECT_EQ(results[1].exit_code, 3);
  EXPECT_EQ(results[1].stderr_text, "e");
  EXPECT_EQ(results[2].stdout_text, "c\n");
  // stopping after case 0: cases 1 and 2 are not run
  const std::vector<SandboxResult> stopped = run_python_cases_sandboxed(
      {{"print(1)", ""}, {"print(2)", ""}, {"print(3)", ""}}, options,
      [](size_t, const SandboxResult&) { return false; });
  EXPECT_EQ(stopped[0].outcome, SandboxOutcome::kPassed);
  EXPECT_EQ(stopped[1].outcome, SandboxOutcome::kRefused);
  EXPECT_EQ(stopped[2].outcome, SandboxOutcome::kRefused);
}

}  // namespace
}  // namespace gopd::reward
