// `gopd config check CONFIG [--set k=v]...` and `gopd config show CONFIG [--set k=v]...`.
#include <iostream>

#include "cli/commands.h"
#include "gopd/core/config_loader.h"

namespace gopd::cli {

std::vector<Command> add_config_commands(CLI::App& parent) {
  CLI::App* config = parent.add_subcommand("config", "check or show a job config");
  config->require_subcommand(1);

  struct Options {
    std::string path;
    std::vector<std::string> overrides;
  };
  auto check_options = std::make_shared<Options>();
  auto show_options = std::make_shared<Options>();

  CLI::App* check = config->add_subcommand(
      "check", "validate a config (exit 0 if valid, 2 with the file:line:column otherwise)");
  check->add_option("CONFIG", check_options->path, "YAML job config")->required();
  check->add_option("--set", check_options->overrides, "override: key.path=value (repeatable)");

  CLI::App* show =
      config->add_subcommand("show", "print the resolved config (defaults filled in) as YAML");
  show->add_option("CONFIG", show_options->path, "YAML job config")->required();
  show->add_option("--set", show_options->overrides, "override: key.path=value (repeatable)");

  Command check_command{check, [check_options] {
                          const core::Config config =
                              core::load_config(check_options->path, check_options->overrides);
                          std::cout << check_options->path << ": ok (algorithm " << config.algorithm
                                    << ")\n";
                        }};
  Command show_command{show, [show_options] {
                         std::cout << core::config_to_yaml(
                             core::load_config(show_options->path, show_options->overrides));
                       }};
  return {check_command, show_command};
}

}  // namespace gopd::cli
