// `gopd eval --model DIR --data FILE.jsonl [--samples K] [--temperature T]
// [--max-new-tokens N] [--out DIR]`: K samples per prompt scored by the verifier the data
// names (a record's "task" field → the exact task checker, or for a code task its tests in the
// sandbox; otherwise the math verifier; --reward overrides). Writes samples.jsonl and summary.json into the output directory and
// prints the summary: avg@K, pass@k (unbiased), mean response length, truncation rate.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/sampling_options.h"
#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/data/jsonl.h"
#include "gopd/eval/metrics.h"
#include "gopd/reward/code_sandbox.h"
#include "gopd/reward/rollout_rewards.h"

namespace gopd::cli {

Command add_eval_command(CLI::App& parent) {
  CLI::App* command = parent.add_subcommand("eval", "avg@K / pass@K of a model on a dataset");
  struct Options {
    std::string model;
    std::string data;
    int64_t samples = 1;
    std::string reward = "auto";
    std::string out;
    SamplingOptions sampling;
  };
  auto options = std::make_shared<Options>();
  command->add_option("--model", options->model, "model directory")->required();
  command->add_option("--data", options->data, "JSONL dataset with prompts and answers")
      ->required();
  command->add_option("--samples", options->samples, "K samples per prompt")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command
      ->add_option("--reward", options->reward,
                   "auto (record's task field — a code task runs in the sandbox — else math), "
                   "math, task or code")
      ->check(CLI::IsMember({"auto", "math", "task", "code"}))
      ->capture_default_str();
  command->add_option("--out", options->out, "output directory (default: runs/eval-<model name>)");
  add_sampling_options(*command, options->sampling, /*default_temperature=*/0.0);

  return {
      command, [options] {
        const std::vector<data::Record> records = data::read_dataset(options->data);
        // Each record's verifier, decided before any sampling: a record it cannot check is an
        // error naming file:line (exit 2). Code runs in the sandbox (reward.code defaults).
        std::vector<reward::RewardSpec> specs;
        for (const data::Record& record : records) {
          const auto task = record.extra.find("task");
          nlohmann::json task_value = task != record.extra.end() ? *task : nlohmann::json();
          if (options->reward == "task" && task_value.is_null()) task_value = "arith";  // --reward task
          specs.push_back(
              reward::reward_spec(options->reward, record.answer, task_value, record.tests, record.source));
        }
        core::RewardConfig reward_config;
        reward::require_sandbox(specs, options->data, std::nullopt);
        if (options->samples > 1 && options->sampling.temperature == 0.0) {
          spdlog::warn("--samples {} with --temperature 0: greedy samples are identical",
                       options->samples);
        }
        std::string out = options->out;
        if (out.empty()) {
          out = "runs/eval-" + std::filesystem::path(options->model).filename().string();
        }
        core::check_directory_can_be_created(out, out);  // before the work, not after it
        LoadedModel loaded = load_model_with_tokenizer(options->model);
        std::vector<SampleRecord> samples;
        std::vector<reward::RewardJob> jobs;
        sample_records(loaded, records, options->samples, options->sampling, "eval",
                       [&](const SampleRecord& sample) {
                         samples.push_back(sample);
                         jobs.push_back({&specs[static_cast<size_t>(sample.prompt_index)], sample.text});
                       });
        const std::vector<reward::RewardResult> results = reward::score_async(jobs, reward_config).get();
        std::vector<int64_t> correct(records.size(), 0);
        std::vector<nlohmann::json> lines;
        int64_t total_length = 0;
        int64_t truncated = 0;
        for (size_t i = 0; i < samples.size(); ++i) {
          const SampleRecord& sample = samples[i];
          const data::Record& record = records[static_cast<size_t>(sample.prompt_index)];
          correct[static_cast<size_t>(sample.prompt_index)] += results[i].correct >= 1.0 ? 1 : 0;
          total_length += static_cast<int64_t>(sample.tokens.size());
          truncated += sample.finish_reason == "length" ? 1 : 0;
          nlohmann::json line = {{"prompt_index", sample.prompt_index},
                                 {"sample", sample.sample_index},
                                 {"response", sample.text},
                                 {"answer", record.answer},
                                 {"reward", results[i].correct},
                                 {"detail", results[i].detail},
                                 {"length", sample.tokens.size()},
                                 {"finish_reason", sample.finish_reason}};
          if (!record.id.empty()) line["id"] = record.id;
          lines.push_back(std::move(line));
        }
        const eval::AccuracySummary accuracy = eval::summarize_accuracy(correct, options->samples);
        const double count = static_cast<double>(lines.size());
        nlohmann::json summary = {{"model", options->model},
                                  {"data", options->data},
                                  {"prompts", records.size()},
                                  {"samples_per_prompt", options->samples},
                                  {"temperature", options->sampling.temperature},
                                  {"top_p", options->sampling.top_p},
                                  {"max_new_tokens", options->sampling.max_new_tokens},
                                  {"seed", options->sampling.seed},
                                  {"avg@" + std::to_string(options->samples), accuracy.avg_at_k},
                                  {"mean_response_length", total_length / count},
                                  {"truncation_rate", truncated / count}};
        for (const auto& [k, value] : accuracy.pass_at)
          summary["pass@" + std::to_string(k)] = value;
        core::create_directories_for(out, out);
        data::write_jsonl(out + "/samples.jsonl", lines);
        core::write_file_atomically(out + "/summary.json", summary.dump(2) + "\n");
        std::cout << summary.dump() << "\n";
        spdlog::info("eval: avg@{} = {:.4f} over {} prompts; wrote {}/summary.json",
                     options->samples, accuracy.avg_at_k, records.size(), out);
      }};
}

}  // namespace gopd::cli
