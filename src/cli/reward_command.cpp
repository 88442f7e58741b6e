// `gopd reward --type math|task|code --input FILE.jsonl [--output FILE.jsonl]`: scores existing
// responses. Every line is read and scored before anything is written, so a bad line
// leaves no partial output.
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/commands.h"
#include "gopd/core/error.h"
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
  command->add_option("--type", options->type, "verifier: math, task or code")
      ->required()
      ->check(CLI::IsMember({"math", "task", "code"}));
  command
      ->add_option("--input", options->input,
                   "JSONL with {\"response\", \"answer\"} (+ \"task\" for --type task; "
                   "{\"response\", \"tests\"} for --type code)")
      ->required();
  command->add_option("--output", options->output, "output JSONL (default: stdout)");
  command
      ->add_option("--response-field", options->response_field,
                   "field holding the response (e.g. solution, to check reference solutions)")
      ->capture_default_str();

  return {command, [options] {
            const std::vector<data::JsonlLine> lines = data::read_jsonl(options->input);
            if (lines.empty()) {
              core::throw_bad_input(options->input + ": no responses to score (the file has no JSON lines)");
            }
            std::vector<nlohmann::json> values;
            std::vector<std::string> sources;
            for (const data::JsonlLine& line : lines) {
              values.push_back(line.value);
              sources.push_back(options->input + ":" + std::to_string(line.line));
            }
            core::Progress progress("reward", static_cast<int64_t>(lines.size()), stderr, -1, 10,
                                    /*quiet_seconds=*/2.0);
            // Code runs with the reward.code defaults (sandboxed, all-or-nothing) on all cores.
            const std::vector<nlohmann::json> scored = reward::score_lines(
                options->type, values, sources, options->response_field, core::CodeRewardConfig{},
                /*workers=*/0, [&progress] { progress.advance(); });
            progress.finish();
            double total = 0.0;
            for (const auto& line : scored) total += line["reward"].get<double>();
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
