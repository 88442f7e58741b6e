// `gopd train CONFIG [--set key.path=value]...`: runs the job of a YAML config (algorithm opd,
// gopd or sft) into run.output_dir/run.name and prints the final model directory.
#include <iostream>

#include "cli/commands.h"
#include "gopd/core/config_loader.h"
#include "gopd/train/trainer.h"

namespace gopd::cli {
namespace {

struct TrainOptions {
  std::string path;
  std::vector<std::string> overrides;
};

}  // namespace

Command add_train_command(CLI::App& parent) {
  CLI::App* train = parent.add_subcommand("train", "run a training job (opd, gopd, sft) from a YAML config");
  auto options = std::make_shared<TrainOptions>();
  train->add_option("CONFIG", options->path, "YAML job config")->required();
  train->add_option("--set", options->overrides, "override: key.path=value (repeatable)");
  return Command{train, [options] {
                   const core::Config config = core::load_config(options->path, options->overrides);
                   const train::TrainSummary summary = train::run_training(config);
                   std::cout << summary.final_model << std::endl;
                 }};
}

}  // namespace gopd::cli
