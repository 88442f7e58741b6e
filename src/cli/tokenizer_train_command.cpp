// `gopd tokenizer train --input FILE --vocab-size N --out DIR [--chat-format F]`: trains a
// sentencepiece tokenizer (tokenizer_trainer.h) and writes it as a Hugging Face directory.
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "gopd/tokenizer/chat_format.h"
#include "gopd/tokenizer/tokenizer_trainer.h"

namespace gopd::cli {

Command add_tokenizer_command(CLI::App& parent) {
  CLI::App* group = parent.add_subcommand("tokenizer", "train tokenizers");
  group->require_subcommand(1);
  CLI::App* train = group->add_subcommand(
      "train", "train a sentencepiece BPE tokenizer on a text file or a JSONL dataset");
  auto options = std::make_shared<tokenizer::TrainTokenizerOptions>();
  train
      ->add_option("--input", options->input,
                   "text file (one sentence per line) or JSONL dataset (prompt, answer, solution)")
      ->required();
  train
      ->add_option("--vocab-size", options->vocab_size,
                   "number of ids, special tokens and 256 byte pieces included")
      ->required();
  train->add_option("--out", options->out, "output directory (tokenizer.model + configs)")
      ->required();
  std::string formats;
  for (const std::string& name : tokenizer::chat_format_names()) {
    formats += (formats.empty() ? "" : ", ") + name;
  }
  train->add_option("--chat-format", options->chat_format, "chat format: " + formats)
      ->capture_default_str();
  train
      ->add_option("--model-max-length", options->model_max_length,
                   "model_max_length written into tokenizer_config.json")
      ->capture_default_str();

  return {group, [options, train] {
            if (!train->parsed()) return;
            tokenizer::train_tokenizer(*options);
            spdlog::info("trained a {}-id sentencepiece tokenizer (chat format {}) on {} → {}",
                         options->vocab_size, options->chat_format, options->input, options->out);
          }};
}

}  // namespace gopd::cli
