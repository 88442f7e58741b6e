// Entry point of the `gopd` executable: global options (--log-level, --threads, --version),
// subcommand dispatch, and the mapping of every failure to one clear line on stderr and
// the exit codes of DESIGN.md (0 success, 1 runtime failure, 2 bad usage/config/input).
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>

#include "cli/commands.h"
#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/core/logging.h"
#include "gopd/core/runtime.h"

namespace {

void print_version() {
  std::cout << "gopd " << GOPD_VERSION << "\n"
            << gopd::core::build_and_device_report()
            << "threads " << gopd::core::current_threads() << "\n";
}

int run(int argc, char** argv) {
  CLI::App app{"gopd: on-policy training of language models (G-OPD/ExOPD distillation, GRPO, LENS)",
               "gopd"};
  app.fallthrough();  // global options are accepted after the subcommand too
  app.require_subcommand(0, 1);
  std::string log_level = "info";
  int64_t threads = 0;
  bool version = false;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_option("--threads", threads, "LibTorch intra-op threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--version", version, "print versions, CUDA availability and thread count");

  std::vector<gopd::cli::Command> commands = gopd::cli::add_config_commands(app);
  commands.push_back(gopd::cli::add_data_command(app));
  commands.push_back(gopd::cli::add_reward_command(app));
  commands.push_back(gopd::cli::add_init_model_command(app));
  commands.push_back(gopd::cli::add_logprobs_command(app));
  commands.push_back(gopd::cli::add_tokenize_command(app));
  commands.push_back(gopd::cli::add_tokenizer_command(app));
  commands.push_back(gopd::cli::add_generate_command(app));
  commands.push_back(gopd::cli::add_eval_command(app));
  commands.push_back(gopd::cli::add_bench_command(app));
  commands.push_back(gopd::cli::add_train_command(app));
  commands.push_back(gopd::cli::add_launch_command(app));
  commands.push_back(gopd::cli::add_serve_command(app));
  // @@register-commands@@

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForAllHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    app.exit(error);  // prints CLI11's message and the usage hint
    return static_cast<int>(gopd::core::ExitCode::kBadInput);
  }

  gopd::core::init_logging(log_level);
  gopd::core::set_threads(threads);
  if (version) {
    print_version();
    return 0;
  }
  for (const auto& command : commands) {
    if (command.app->parsed()) {
      command.run();
      return 0;
    }
  }
  std::cerr << app.help() << "error: choose a subcommand\n";
  return static_cast<int>(gopd::core::ExitCode::kBadInput);
}

// "<path>: cannot <operation>: <reason>" from libstdc++'s
// "filesystem error: cannot <operation>: <reason> [<path>] [<path2>]".
std::string describe_filesystem_error(const std::filesystem::filesystem_error& error) {
  std::string operation = error.what();
  const std::string prefix = "filesystem error: ";
  if (operation.rfind(prefix, 0) == 0) operation.erase(0, prefix.size());
  const std::string reason = error.code().message();
  const size_t cut = operation.find(": " + reason);
  if (cut != std::string::npos) operation.erase(cut);
  std::string paths = error.path1().string();
  if (!error.path2().empty()) paths += " -> " + error.path2().string();
  std::string text = (paths.empty() ? "" : paths + ": ") + operation + ": " + reason;
  if (gopd::core::is_path_error(error.code())) {
    text += " (check the path and its permissions)";
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const gopd::core::Error& error) {
    std::cerr << "error: " << error.what() << "\n";
    return error.exit_code();
  } catch (const std::filesystem::filesystem_error& error) {
    // A file operation the commands did not wrap themselves: say which path and why, in the
    // user's terms, instead of the library's "filesystem error: …" text.
    std::cerr << "error: " << describe_filesystem_error(error) << "\n";
    return static_cast<int>(gopd::core::is_path_error(error.code()) ? gopd::core::ExitCode::kBadInput
                                                                    : gopd::core::ExitCode::kRuntimeFailure);
  } catch (const std::exception& error) {
    const std::string torch_message = gopd::core::describe_torch_error(error);
    if (!torch_message.empty()) {
      std::cerr << "error: " << torch_message << "\n";
      return static_cast<int>(gopd::core::ExitCode::kRuntimeFailure);
    }
    std::cerr << "error: internal failure: " << error.what() << "\n";
    return static_cast<int>(gopd::core::ExitCode::kRuntimeFailure);
  }
}
