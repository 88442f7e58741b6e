// `gopd generate --model DIR (--prompt TEXT | --input FILE.jsonl) [--chat] [--n N] [--seed S]
// …`: text in, text out. With --prompt the responses are printed; with --input every sample
// becomes a JSONL line with the record's fields, "response", "tokens", "logprobs" (sampler
// log-probs at the sampling temperature, before truncation) and "finish_reason" — which
// `gopd reward` can score directly.
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/sampling_options.h"
#include "gopd/core/error.h"
#include "gopd/data/jsonl.h"

namespace gopd::cli {

Command add_generate_command(CLI::App& parent) {
  CLI::App* command = parent.add_subcommand("generate", "sample responses from a model");
  struct Options {
    std::string model;
    std::string prompt;
    std::string input;
    std::string output;
    int64_t n = 1;
    SamplingOptions sampling;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--model", options->model, "model directory")->required();
  auto* prompt = command->add_option("--prompt", options->prompt, "one prompt text");
  auto* input = command->add_option("--input", options->input, "JSONL dataset (\"prompt\" field)");
  prompt->excludes(input);
  command->add_option("--output", options->output, "output JSONL (default: stdout)");
  command->add_option("--n", options->n, "samples per prompt")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_sampling_options(*command, options->sampling, /*default_temperature=*/1.0);

  return {command, [options] {
            if (options->prompt.empty() == options->input.empty()) {
              core::throw_bad_input(
                  "generate: give exactly one of --prompt TEXT or --input FILE.jsonl");
            }
            std::vector<data::Record> records;
            if (!options->input.empty()) {
              records = data::read_dataset(options->input);
            } else {
              data::Record record;
              record.prompt = options->prompt;
              record.source = "--prompt";
              records.push_back(record);
            }
            LoadedModel loaded = load_model_with_tokenizer(options->model);
            std::vector<nlohmann::json> lines;
            sample_records(loaded, records, options->n, options->sampling, "generate",
                           [&](const SampleRecord& sample) {
                             if (!options->prompt.empty()) {
                               if (options->n > 1)
                                 std::cout << "--- sample " << sample.sample_index << "\n";
                               std::cout << sample.text << "\n";
                               return;
                             }
                             nlohmann::json line =
                                 data::to_json(records[static_cast<size_t>(sample.prompt_index)]);
                             line["sample"] = sample.sample_index;
                             line["response"] = sample.text;
                             line["tokens"] = sample.tokens;
                             line["logprobs"] = sample.logprobs;
                             line["finish_reason"] = sample.finish_reason;
                             lines.push_back(std::move(line));
                           });
            if (options->input.empty()) return;
            if (options->output.empty()) {
              for (const auto& line : lines) std::cout << line.dump() << '\n';
            } else {
              data::write_jsonl(options->output, lines);
              spdlog::info("wrote {} samples to {}", lines.size(), options->output);
            }
          }};
}

}  // namespace gopd::cli
