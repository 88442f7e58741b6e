// `gopd tokenize --tokenizer DIR (--text S | --input FILE) [--decode]`: text → token ids, one
// JSON array per input line (--text: one array for the whole string, newlines included);
// with --decode, input lines are JSON arrays of ids and each prints as one JSON string. All
// input is converted before anything is printed, so a bad line leaves no partial output.
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "gopd/core/error.h"
#include "gopd/core/utf8.h"
#include "gopd/tokenizer/tokenizer.h"

namespace gopd::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string text;
  std::string input;
  bool decode = false;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
};

// The inputs as (source for error messages, text) pairs.
std::vector<std::pair<std::string, std::string>> read_inputs(const TokenizeOptions& options) {
  std::vector<std::pair<std::string, std::string>> inputs;
  if (options.input.empty()) {
    inputs.emplace_back("--text", options.text);
    return inputs;
  }
  std::ifstream file;
  std::istream* stream = &std::cin;
  if (options.input != "-") {
    file.open(options.input, std::ios::binary);
    if (!file) core::throw_bad_input(options.input + ": cannot open file");
    stream = &file;
  }
  std::string line;
  int64_t line_number = 0;
  while (std::getline(*stream, line)) {
    ++line_number;
    inputs.emplace_back(options.input + ":" + std::to_string(line_number), line);
  }
  if (stream->bad()) core::throw_runtime_failure(options.input + ": read error");
  return inputs;
}

std::vector<int64_t> parse_ids(const std::string& text, const std::string& source,
                               int64_t vocab_size) {
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {  // parse_error, or a number out of range
    core::throw_bad_input(source + ": expected a JSON array of token ids, found: " + text);
  }
  if (!value.is_array()) {
    core::throw_bad_input(source + ": expected a JSON array of token ids, found: " + text);
  }
  std::vector<int64_t> ids;
  for (const auto& item : value) {
    if (!item.is_number_integer() || item.get<int64_t>() < 0 || item.get<int64_t>() >= vocab_size) {
      core::throw_bad_input(source + ": expected token ids in [0, " + std::to_string(vocab_size) +
                            "), found " + item.dump());
    }
    ids.push_back(item.get<int64_t>());
  }
  return ids;
}

}  // namespace

Command add_tokenize_command(CLI::App& parent) {
  CLI::App* command = parent.add_subcommand(
      "tokenize", "text → token ids (one JSON array per line), or ids → text with --decode");
  auto options = std::make_shared<TokenizeOptions>();
  command
      ->add_option("--tokenizer", options->tokenizer,
                   "tokenizer or model directory (tokenizer.json or tokenizer.model)")
      ->required();
  CLI::Option* text = command->add_option("--text", options->text, "one input string");
  CLI::Option* input =
      command->add_option("--input", options->input, "input file, one input per line (- = stdin)");
  text->excludes(input);
  input->excludes(text);
  command->add_flag("--decode", options->decode,
                    "inputs are JSON arrays of ids; print each decoded text as a JSON string");
  command->add_flag("--add-special-tokens", options->add_special_tokens,
                    "encode: add the tokenizer's BOS/EOS as its config says");
  command->add_flag("--skip-special-tokens", options->skip_special_tokens,
                    "decode: drop special tokens");

  return {
      command, [options, text, input] {
        if (text->count() == 0 && input->count() == 0) {
          core::throw_bad_input("gopd tokenize: give --text STRING or --input FILE");
        }
        const tokenizer::LoadedTokenizer loaded = tokenizer::load_tokenizer(options->tokenizer);
        std::string output;
        for (const auto& [source, line] : read_inputs(*options)) {
          if (const auto bad = core::find_invalid_utf8(line)) {
            core::throw_bad_input(source + ": invalid UTF-8 at byte " + std::to_string(*bad + 1));
          }
          if (options->decode) {
            const std::vector<int64_t> ids =
                parse_ids(line, source, loaded.tokenizer->vocab_size());
            const std::string decoded = loaded.tokenizer->decode(ids, options->skip_special_tokens);
            // Byte-fallback ids can decode to partial characters; show them as U+FFFD.
            output += nlohmann::json(decoded).dump(-1, ' ', false,
                                                   nlohmann::json::error_handler_t::replace);
          } else {
            output +=
                nlohmann::json(loaded.tokenizer->encode(line, options->add_special_tokens)).dump();
          }
          output += '\n';
        }
        std::cout << output << std::flush;
      }};
}

}  // namespace gopd::cli
