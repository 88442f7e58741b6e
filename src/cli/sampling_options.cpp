// Implements the sampling options and batched sampling shared by generate and eval.
#include "cli/sampling_options.h"

#include <spdlog/spdlog.h>

#include "gopd/core/error.h"
#include "gopd/core/progress.h"
#include "gopd/model/model_io.h"

namespace gopd::cli {

void add_sampling_options(CLI::App& command, SamplingOptions& options, double default_temperature) {
  options.temperature = default_temperature;
  command.add_option("--temperature", options.temperature, "0 = greedy")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command.add_option("--top-p", options.top_p, "nucleus mass, (0, 1]")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  command.add_option("--top-k", options.top_k, "0 = off")->check(CLI::NonNegativeNumber);
  command.add_option("--min-p", options.min_p, "0 = off")->check(CLI::Range(0.0, 0.999999));
  command.add_option("--max-new-tokens", options.max_new_tokens, "response length limit")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command.add_option("--stop", options.stop, "stop string (repeatable)");
  command.add_option("--seed", options.seed, "sampling seed")->capture_default_str();
  command.add_flag("--chat", options.chat, "apply the model's chat format to prompts");
  command.add_flag("--no-thinking", options.no_thinking,
                   "qwen3 chat format: empty <think></think> block (enable_thinking=false)");
  command.add_option("--batch-prompts", options.batch_prompts, "prompts sampled together")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

LoadedModel load_model_with_tokenizer(const std::string& directory) {
  LoadedModel loaded;
  loaded.tokenizer = tokenizer::load_tokenizer(directory);
  loaded.model = model::load_model(directory);
  if (loaded.tokenizer.tokenizer->vocab_size() > loaded.model->config().vocab_size) {
    core::throw_bad_input(directory + ": the tokenizer has " +
                          std::to_string(loaded.tokenizer.tokenizer->vocab_size()) +
                          " tokens but the model only " +
                          std::to_string(loaded.model->config().vocab_size) + " embedding rows");
  }
  return loaded;
}

void sample_records(LoadedModel& loaded, const std::vector<data::Record>& records, int64_t n,
                    const SamplingOptions& options, const std::string& progress_label,
                    const std::function<void(const SampleRecord&)>& on_sample) {
  const tokenizer::Tokenizer& tokenizer = *loaded.tokenizer.tokenizer;
  data::PromptFormat format;
  if (options.chat) {
    format.chat_format = loaded.tokenizer.info.chat_format;
    if (format.chat_format == "none") {
      core::throw_bad_input("--chat: the model's tokenizer_config.json names no chat format");
    }
  }
  format.enable_thinking = !options.no_thinking;
  std::vector<std::vector<int64_t>> prompts;
  for (const data::Record& record : records)
    prompts.push_back(data::encode_prompt(record, format, tokenizer));

  rollout::GenerationParams params;
  params.sampling.temperature = options.temperature;
  params.sampling.top_p = options.top_p;
  params.sampling.top_k = options.top_k;
  params.sampling.min_p = options.min_p;
  params.max_new_tokens = options.max_new_tokens;
  params.n = n;
  params.stop_token_ids = loaded.tokenizer.info.stop_ids;
  params.pad_id = std::max<int64_t>(0, loaded.tokenizer.info.pad_id);
  const rollout::StopChecker stop_checker = rollout::make_stop_checker(
      [&tokenizer](const std::vector<int64_t>& ids) { return tokenizer.decode(ids); },
      options.stop);

  core::Progress progress(progress_label, static_cast<int64_t>(records.size()));
  const int64_t total = static_cast<int64_t>(prompts.size());
  for (int64_t start = 0; start < total; start += options.batch_prompts) {
    const int64_t count = std::min(options.batch_prompts, total - start);
    const std::vector<std::vector<int64_t>> batch_prompts(prompts.begin() + start,
                                                          prompts.begin() + start + count);
    // Seeds follow the global prompt index, so results do not depend on --batch-prompts.
    params.row_seeds.clear();
    for (int64_t i = 0; i < count; ++i) {
      for (int64_t j = 0; j < n; ++j)
        params.row_seeds.push_back(rollout::sample_seed(options.seed, start + i, j));
    }
    const rollout::RolloutBatch batch =
        rollout::generate(loaded.model, batch_prompts, params, stop_checker);
    for (int64_t row = 0; row < count * n; ++row) {
      SampleRecord sample;
      sample.prompt_index = start + row / n;
      sample.sample_index = row % n;
      const int64_t length = batch.response_mask[row].sum().item<int64_t>();
      const torch::Tensor ids = batch.response_ids[row].narrow(0, 0, length).contiguous();
      const torch::Tensor logprobs = batch.response_logprobs[row].narrow(0, 0, length).contiguous();
      sample.tokens.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + length);
      sample.logprobs.assign(logprobs.data_ptr<float>(), logprobs.data_ptr<float>() + length);
      sample.text = tokenizer.decode(sample.tokens, /*skip_special_tokens=*/true);
      sample.finish_reason =
          rollout::finish_reason_name(batch.finish_reasons[static_cast<size_t>(row)]);
      on_sample(sample);
    }
    progress.advance(count);
  }
  progress.finish();
}

}  // namespace gopd::cli
