// `gopd bench train` (see bench_train.cpp), registered under `gopd bench`.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace gopd::cli {

struct BenchSubcommand {
  CLI::App* app;              // parsed() when chosen
  std::function<void()> run;  // runs it
};

BenchSubcommand add_bench_train(CLI::App* bench);

}  // namespace gopd::cli
