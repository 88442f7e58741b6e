// Sandbox start cost against the caller's size: the code verifier runs inside the training
// process, which holds gigabytes during a GRPO step, and starts one sandbox per test case.
// For each resident size (the process touches every page of a buffer that big) it runs the
// same trivial program in the sandbox N times started with vfork (gopd's path) and with fork
// (the reference), and prints one JSON line: ms per sandbox for each and ratio = fork / vfork.
//
// Usage: sandbox_bench [--runs N] [--sizes-mb 0,1024,4096]
#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gopd/reward/code_sandbox.h"

namespace {

double ms_per_run(bool fork, int runs) {
  gopd::reward::SandboxOptions options;
  options.spawn_with_fork = fork;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) {
    const auto result = gopd::reward::run_python_sandboxed("pass", "", options);
    if (result.outcome != gopd::reward::SandboxOutcome::kPassed) {
      throw std::runtime_error("sandbox run failed: " + result.message);
    }
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
         runs;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 20;
  std::vector<int64_t> sizes = {0, 1024, 4096};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--runs") runs = std::stoi(argv[i + 1]);
    if (flag == "--sizes-mb") {
      sizes.clear();
      std::stringstream list(argv[i + 1]);
      for (std::string item; std::getline(list, item, ',');) sizes.push_back(std::stoll(item));
    }
  }
  if (!gopd::reward::bubblewrap_available()) {
    std::cout << nlohmann::json{{"bench", "sandbox_spawn"}, {"skipped", "no bubblewrap"}}.dump()
              << std::endl;
    return 0;
  }
  // All of a response's cases in one sandbox against one sandbox per case (the reference path):
  // `cases` trivial programs, ms per case.
  {
    gopd::reward::SandboxOptions options;
    const int cases = 16;
    std::vector<gopd::reward::SandboxCase> batch(cases, {"print(input())", "1\n"});
    const auto time_ms = [&](const auto& run) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < 3; ++i) run();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                 .count() / (3.0 * cases);
    };
    const double batched = time_ms([&] {
      for (const auto& result : gopd::reward::run_python_cases_sandboxed(batch, options)) {
        if (result.outcome != gopd::reward::SandboxOutcome::kPassed) {
          throw std::runtime_error("batched case failed: " + result.message);
        }
      }
    });
    const double one_by_one = time_ms([&] {
      for (const auto& one : batch) {
        const auto result = gopd::reward::run_python_sandboxed(one.program, one.stdin_text, options);
        if (result.outcome != gopd::reward::SandboxOutcome::kPassed) {
          throw std::runtime_error("case failed: " + result.message);
        }
      }
    });
    std::cout << nlohmann::json{{"bench", "sandbox_cases"},
                                {"cases", cases},
                                {"metric", "ms per test case (print(input()))"},
                                {"value", batched},
                                {"baseline", one_by_one},
                                {"baseline_name", "one sandbox per case (reference path)"},
                                {"ratio", one_by_one / batched}}
                     .dump()
              << std::endl;
  }
  std::vector<char> held;
  for (const int64_t mb : sizes) {
    held.assign(static_cast<size_t>(mb) << 20, 0);
    for (size_t at = 0; at < held.size(); at += 4096) held[at] = 1;  // resident, not just reserved
    ms_per_run(false, 2);                                           // warm-up
    const double vfork_ms = ms_per_run(false, runs);
    const double fork_ms = ms_per_run(true, runs);
    std::cout << nlohmann::json{{"bench", "sandbox_spawn"},
                                {"resident_mb", mb},
                                {"runs", runs},
                                {"metric", "ms per sandbox (python3 -c pass)"},
                                {"value", vfork_ms},
                                {"baseline", fork_ms},
                                {"baseline_name", "fork (reference path)"},
                                {"ratio", fork_ms / vfork_ms}}
                     .dump()
              << std::endl;
  }
  return 0;
}
