// `gopd logprobs --model DIR --input FILE.jsonl [--output FILE.jsonl]`: the natural-log
// probability of each token given all tokens before it, at temperature 1 (DESIGN.md CLI
// contract). Input lines {"text": …} or {"tokens": […]}; output lines
// {"tokens": […], "logprobs": [null, …]}.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>

#include "cli/commands.h"
#include "gopd/core/error.h"
#include "gopd/core/progress.h"
#include "gopd/data/jsonl.h"
#include "gopd/model/model_io.h"
#include "gopd/scoring/sequence_logprobs.h"
#include "gopd/tokenizer/tokenizer.h"

namespace gopd::cli {
namespace {

std::vector<int64_t> line_tokens(const nlohmann::json& line, const std::string& source,
                                 const tokenizer::Tokenizer* tokenizer, int64_t vocab_size) {
  std::vector<int64_t> tokens;
  if (const auto ids = line.find("tokens"); ids != line.end()) {
    if (!ids->is_array()) core::throw_bad_input(source + ": \"tokens\" must be an array of ids");
    for (const auto& id : *ids) {
      if (!id.is_number_integer())
        core::throw_bad_input(source + ": \"tokens\" must hold integers");
      const int64_t value = id.get<int64_t>();
      if (value < 0 || value >= vocab_size) {
        core::throw_bad_input(source + ": token id " + std::to_string(value) +
                              " is outside the model's vocabulary [0, " +
                              std::to_string(vocab_size) + ")");
      }
      tokens.push_back(value);
    }
  } else if (const auto text = line.find("text"); text != line.end() && text->is_string()) {
    if (tokenizer == nullptr) {
      core::throw_bad_input(source +
                            ": a \"text\" line needs tokenizer files in the model directory");
    }
    tokens = tokenizer->encode(text->get<std::string>());
  } else {
    core::throw_bad_input(source + ": expected a \"text\" string or a \"tokens\" array");
  }
  if (tokens.empty()) core::throw_bad_input(source + ": no tokens to score");
  return tokens;
}

}  // namespace

Command add_logprobs_command(CLI::App& parent) {
  CLI::App* command =
      parent.add_subcommand("logprobs", "per-token log-probabilities of texts under a model");
  struct Options {
    std::string model;
    std::string input;
    std::string output;
    int64_t batch_size = 8;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--model", options->model, "model directory")->required();
  command->add_option("--input", options->input, "JSONL of {\"text\"} or {\"tokens\"}")->required();
  command->add_option("--output", options->output, "output JSONL (default: stdout)");
  command->add_option("--batch-size", options->batch_size, "sequences per forward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  return {command, [options] {
            const std::vector<data::JsonlLine> lines = data::read_jsonl(options->input);
            if (lines.empty()) {
              core::throw_bad_input(options->input + ": no sequences to score (the file has no JSON lines)");
            }
            model::Transformer transformer = model::load_model(options->model);
            const int64_t vocab_size = transformer->config().vocab_size;
            std::unique_ptr<tokenizer::Tokenizer> tokenizer;
            const bool needs_tokenizer = std::any_of(lines.begin(), lines.end(), [](const auto& l) {
              return !l.value.contains("tokens");
            });
            if (needs_tokenizer) tokenizer = tokenizer::load_tokenizer(options->model).tokenizer;
            std::vector<std::vector<int64_t>> sequences;
            for (const data::JsonlLine& line : lines) {
              sequences.push_back(line_tokens(line.value,
                                              options->input + ":" + std::to_string(line.line),
                                              tokenizer.get(), vocab_size));
            }
            std::vector<nlohmann::json> results;
            core::Progress progress("logprobs", static_cast<int64_t>(sequences.size()), stderr, -1,
                                    10, /*quiet_seconds=*/2.0);
            for (size_t start = 0; start < sequences.size();
                 start += static_cast<size_t>(options->batch_size)) {
              const size_t end =
                  std::min(sequences.size(), start + static_cast<size_t>(options->batch_size));
              int64_t longest = 0;
              for (size_t i = start; i < end; ++i) {
                longest = std::max<int64_t>(longest, static_cast<int64_t>(sequences[i].size()));
              }
              const int64_t rows = static_cast<int64_t>(end - start);
              torch::Tensor ids = torch::zeros({rows, longest}, torch::kLong);   // (B, T)
              torch::Tensor mask = torch::zeros({rows, longest}, torch::kLong);  // (B, T)
              for (int64_t r = 0; r < rows; ++r) {
                const auto& tokens = sequences[start + static_cast<size_t>(r)];
                const int64_t length = static_cast<int64_t>(tokens.size());
                ids[r].narrow(0, 0, length).copy_(torch::tensor(tokens, torch::kLong));
                mask[r].narrow(0, 0, length).fill_(1);
              }
              const torch::Tensor logprobs =
                  scoring::sequence_logprobs(transformer, ids, mask).contiguous();  // (B, T-1)
              for (int64_t r = 0; r < rows; ++r) {
                const auto& tokens = sequences[start + static_cast<size_t>(r)];
                nlohmann::json values = nlohmann::json::array({nullptr});
                for (size_t t = 1; t < tokens.size(); ++t) {
                  values.push_back(logprobs[r][static_cast<int64_t>(t) - 1].item<double>());
                }
                results.push_back({{"tokens", tokens}, {"logprobs", values}});
                progress.advance();
              }
            }
            progress.finish();
            if (options->output.empty()) {
              for (const auto& line : results) std::cout << line.dump() << '\n';
            } else {
              data::write_jsonl(options->output, results);
            }
          }};
}

}  // namespace gopd::cli
