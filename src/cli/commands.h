// The subcommands of the `gopd` executable. Each add_* function declares its options on a
// CLI11 subcommand and returns the action to run when that subcommand was chosen; main()
// parses, runs the chosen action and maps errors to exit codes.
#pragma once

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace gopd::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<void()> run;
};

std::vector<Command> add_config_commands(CLI::App& parent);  // config check, config show
Command add_data_command(CLI::App& parent);
Command add_reward_command(CLI::App& parent);
// Registration lines for later subcommands go below, one per line.
Command add_init_model_command(CLI::App& parent);
Command add_logprobs_command(CLI::App& parent);
Command add_tokenize_command(CLI::App& parent);
Command add_tokenizer_command(CLI::App& parent);  // tokenizer train
Command add_generate_command(CLI::App& parent);
Command add_eval_command(CLI::App& parent);
Command add_bench_command(CLI::App& parent);  // bench kernels
Command add_train_command(CLI::App& parent);
Command add_launch_command(CLI::App& parent);  // multi-process jobs
Command add_serve_command(CLI::App& parent);  // OpenAI/vLLM completions server
// @@register-declarations@@

}  // namespace gopd::cli
