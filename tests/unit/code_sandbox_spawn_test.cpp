// The sandbox's process start: vfork (the fast path, no copy of the caller's page tables)
// against fork (the reference path) on the same programs — correct, failing and hostile — with
// the same outcome, exit status, signal and output; and vfork from several threads at once.
// Short limits (2 s wall, 1 s CPU); skipped when bubblewrap is absent.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "gopd/reward/code_sandbox.h"

namespace gopd::reward {
namespace {

SandboxOptions options_with(bool fork) {
  SandboxOptions options;
  options.wall_seconds = 2.0;
  options.cpu_seconds = 1;
  options.memory_mb = 256;
  options.max_output_bytes = 64 * 1024;
  options.max_processes = 16;
  options.spawn_with_fork = fork;
  return options;
}

class SandboxSpawnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!bubblewrap_available()) GTEST_SKIP() << "bubblewrap (bwrap) is not installed";
  }
};

TEST_F(SandboxSpawnTest, VforkMatchesForkOnEveryKindOfProgram) {
  struct Case {
    const char* name;
    std::string program;
    std::string stdin_text;
    SandboxOutcome expected;
  };
  const std::vector<Case> cases = {
      {"echo", "print(input()[::-1])", "abc\n", SandboxOutcome::kPassed},
      {"exit 3", "import sys\nsys.exit(3)", "", SandboxOutcome::kFailed},
      {"busy loop", "while True:\n    pass", "", SandboxOutcome::kTimeout},
      {"sleep", "import time\ntime.sleep(30)", "", SandboxOutcome::kTimeout},
      {"memory bomb", "a = [bytearray(10**7) for _ in range(1000)]", "", SandboxOutcome::kCrashed},
      {"segfault", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", "",
       SandboxOutcome::kCrashed},
      {"flood", "import sys\nsys.stdout.write('x' * (8 << 20))", "", SandboxOutcome::kFailed},
      {"no network", "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)", "",
       SandboxOutcome::kFailed},
      {"uid", "import os\nprint(os.getuid() != 0 or 'root')", "", SandboxOutcome::kPassed},
  };
  for (const Case& c : cases) {
    const SandboxResult forked = run_python_sandboxed(c.program, c.stdin_text, options_with(true));
    const SandboxResult vforked = run_python_sandboxed(c.program, c.stdin_text, options_with(false));
    EXPECT_EQ(vforked.outcome, c.expected) << c.name << ": " << vforked.message;
    EXPECT_EQ(vforked.outcome, forked.outcome) << c.name;
    EXPECT_EQ(vforked.exit_code, forked.exit_code) << c.name;
    EXPECT_EQ(vforked.signal, forked.signal) << c.name;
    EXPECT_EQ(vforked.stdout_text, forked.stdout_text) << c.name;
    EXPECT_EQ(vforked.truncated, forked.truncated) << c.name;
  }
}

TEST_F(SandboxSpawnTest, VforkFromManyThreadsAtOnce) {
  std::vector<SandboxResult> results(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&results, i] {
      results[i] = run_python_sandboxed("print(" + std::to_string(i) + " * 2)", "",
                                        options_with(false));
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].outcome, SandboxOutcome::kPassed) << i << ": " << results[i].message;
    EXPECT_EQ(results[i].stdout_text, std::to_string(i * 2) + "\n");
  }
}

}  // namespace
}  // namespace gopd::reward
