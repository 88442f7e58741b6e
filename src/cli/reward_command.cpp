// `gopd reward --type math|task --input FILE.jsonl [--output FILE.jsonl]`: scores existing
// responses. Every line is read and scored before anything is written, so a bad line
// leaves no partial output.
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/commands.h"
#include "gopd/core/progress.h"
#include "gopd/data/jsonl.h"
#include "gopd/reward/response_scoring.h"

namespace gopd::cli {

Command add_reward_command(CLI::App& parent) {
  CLI::App* command = parent.add_subcommand(
      "reward", "score responses: adds \"reward\" and \"detail\" to each JSONL line");
  struct Options {
    std::string type;
    std::string input;
    std::string output;
    std::string response_field = "response";
  };
  auto options = std::make_shared<Options>();
  command->add_option("--type", options->type, "verifier: math or task")
      ->required()
      ->check(CLI::IsMember({"math", "task"}));
  command
      ->add_option("--input", options->input,
                   "JSONL with {\"response\", \"answer\"} (+ \"task\" for --type task)")
      ->required();
  command->add_option("--output", options->output, "output JSONL (default: stdout)");
  command
      ->add_option("--response-field", options->response_field,
                   "field holding the response (e.g. solution, to check reference solutions)")
      ->capture_default_str();

  return {command, [options] {
            const std::vector<data::JsonlLine> lines = data::read_jsonl(options->input);
            std::vector<nlohmann::json> scored;
            double total = 0.0;
            core::Progress progress("reward", static_cast<int64_t>(lines.size()), stderr, -1, 10,
                                    /*quiet_seconds=*/2.0);
            for (const data::JsonlLine& line : lines) {
              scored.push_back(reward::score_line(options->type, line.value,
                                                  options->input + ":" + std::to_string(line.line),
                                                  options->response_field));
              total += scored.back()["reward"].get<double>();
              progress.advance();
            }
            progress.finish();
            if (options->output.empty()) {
              for (const auto& line : scored) std::cout << line.dump() << '\n';
            } else {
              data::write_jsonl(options->output, scored);
            }
            const double mean = scored.empty() ? 0.0 : total / static_cast<double>(scored.size());
            spdlog::info("scored {} responses with the {} verifier: mean reward {:.4f}",
                         scored.size(), options->type, mean);
          }};
}

}  // namespace gopd::cli
