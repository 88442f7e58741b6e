// `gopd bench train` (bench_train.cpp) and `gopd bench rollout` (bench_rollout.cpp), registered
// under `gopd bench`.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace gopd::cli {

struct BenchSubcommand {
  CLI::App* app;              // parsed() when chosen
  std::function<void()> run;  // runs it
};

BenchSubcommand add_bench_train(CLI::App* bench);
BenchSubcommand add_bench_rollout(CLI::App* bench);  // bench_rollout.cpp

}  // namespace gopd::cli
