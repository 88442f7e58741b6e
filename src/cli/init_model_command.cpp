// `gopd init-model --arch llama|qwen2|qwen3 [--hidden H --layers L --heads A --kv-heads K
// --intermediate I] --tokenizer DIR --out DIR [--seed S]`: a randomly initialised model
// directory in Hugging Face layout, sized for the tokenizer, with the tokenizer files copied.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "cli/commands.h"
#include "gopd/core/error.h"
#include "gopd/model/model_io.h"
#include "gopd/tokenizer/tokenizer.h"

namespace gopd::cli {

Command add_init_model_command(CLI::App& parent) {
  CLI::App* command =
      parent.add_subcommand("init-model", "write a randomly initialised model directory");
  struct Options {
    std::string arch = "qwen3";
    int64_t hidden = 128;
    int64_t layers = 4;
    int64_t heads = 4;
    int64_t kv_heads = 2;
    int64_t intermediate = 0;
    int64_t head_dim = 0;
    std::string tie = "auto";
    double rope_theta = 1000000.0;
    int64_t max_positions = 4096;
    std::string tokenizer;
    std::string out;
    uint64_t seed = 0;
    int64_t vocab_size = 0;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--arch", options->arch, "model family")
      ->check(CLI::IsMember({"llama", "qwen2", "qwen3"}))
      ->capture_default_str();
  command->add_option("--hidden", options->hidden, "hidden size")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--layers", options->layers, "decoder layers")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--heads", options->heads, "attention heads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--kv-heads", options->kv_heads, "key/value heads (grouped-query attention)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--intermediate", options->intermediate, "MLP size (default 3 x hidden)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--head-dim", options->head_dim, "per-head size (default hidden / heads)")
      ->check(CLI::NonNegativeNumber);
  command
      ->add_option("--tie-embeddings", options->tie,
                   "auto (qwen2/qwen3 tie, like their small models; llama does not), true, false")
      ->check(CLI::IsMember({"auto", "true", "false"}))
      ->capture_default_str();
  command->add_option("--rope-theta", options->rope_theta, "rotary base")->capture_default_str();
  command->add_option("--max-positions", options->max_positions, "max_position_embeddings")
      ->capture_default_str();
  command->add_option("--tokenizer", options->tokenizer, "directory with tokenizer files")
      ->required();
  command->add_option("--out", options->out, "output model directory")->required();
  command->add_option("--seed", options->seed, "random seed")->capture_default_str();
  command
      ->add_option("--vocab-size", options->vocab_size,
                   "embedding rows (default: the tokenizer's size; larger = padded, like Qwen's "
                   "151,936 rows for 151,665 tokens)")
      ->check(CLI::NonNegativeNumber);

  return {command, [options] {
            const tokenizer::LoadedTokenizer loaded = tokenizer::load_tokenizer(options->tokenizer);
            const int64_t tokens = loaded.tokenizer->vocab_size();
            if (options->vocab_size > 0 && options->vocab_size < tokens) {
              core::throw_bad_input("--vocab-size " + std::to_string(options->vocab_size) +
                                    " is smaller than the tokenizer's " + std::to_string(tokens) +
                                    " tokens");
            }
            model::ModelConfig config = model::model_config_for(
                options->arch, options->vocab_size > 0 ? options->vocab_size : tokens, options->hidden,
                options->layers, options->heads, options->kv_heads,
                options->intermediate > 0 ? options->intermediate : 3 * options->hidden);
            if (options->head_dim > 0) config.head_dim = options->head_dim;
            if (options->tie != "auto") config.tie_word_embeddings = options->tie == "true";
            config.rope_theta = options->rope_theta;
            config.max_position_embeddings = options->max_positions;
            config.rms_norm_eps = 1e-6;
            config.bos_token_id = loaded.info.bos_id;
            config.pad_token_id = loaded.info.pad_id;
            config.eos_token_ids = loaded.info.stop_ids;
            if (config.eos_token_ids.empty() && loaded.info.eos_id >= 0) {
              config.eos_token_ids = {loaded.info.eos_id};
            }
            if (options->hidden % options->heads != 0 && options->head_dim == 0) {
              core::throw_bad_input("--hidden " + std::to_string(options->hidden) +
                                    " is not a multiple of --heads " +
                                    std::to_string(options->heads) + "; give --head-dim");
            }
            config.validate("init-model options");
            torch::manual_seed(options->seed);
            model::Transformer transformer(config);
            model::initialize_weights(transformer);
            model::save_model(transformer, options->out, options->tokenizer);
            int64_t parameters = 0;
            for (const auto& p : transformer->parameters()) parameters += p.numel();
            spdlog::info("wrote {} model ({} parameters, vocab {}, {} layers, hidden {}) to {}",
                         options->arch, parameters, config.vocab_size, config.num_hidden_layers,
                         config.hidden_size, options->out);
          }};
}

}  // namespace gopd::cli
