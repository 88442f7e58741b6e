// `gopd train CONFIG [--set key.path=value]... [--resume auto|DIR]`: runs the job of a YAML
// config (algorithm opd, gopd or sft) into run.output_dir/run.name and prints the final
// checkpoint's model directory.
#include <iostream>

#include "cli/commands.h"
#include "gopd/core/config_loader.h"
#include "gopd/train/trainer.h"

namespace gopd::cli {
namespace {

struct TrainOptions {
  std::string path;
  std::vector<std::string> overrides;
  std::string resume;
};

}  // namespace

Command add_train_command(CLI::App& parent) {
  CLI::App* train = parent.add_subcommand("train", "run a training job (opd, gopd, sft) from a YAML config");
  auto options = std::make_shared<TrainOptions>();
  train->add_option("CONFIG", options->path, "YAML job config")->required();
  train->add_option("--set", options->overrides, "override: key.path=value (repeatable)");
  train->add_option("--resume", options->resume,
                    "auto (the newest complete checkpoint of the run directory, if any) or a "
                    "checkpoint directory (run/checkpoints/step_N)");
  return Command{train, [options] {
                   const core::Config config = core::load_config(options->path, options->overrides);
                   train::TrainOptions train_options;
                   train_options.resume = options->resume;
                   const train::TrainSummary summary = train::run_training(config, train_options);
                   std::cout << summary.final_model << std::endl;
                 }};
}

}  // namespace gopd::cli
