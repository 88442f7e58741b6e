// The training loop of gopd train (see trainer.h). Departures from the paper's verl setup,
// all deliberate: one process (data parallelism arrives with the dist module); π_old is the
// trainer's own recomputation, taken from the update forward itself when there is a single
// update per batch (the weights have not moved yet, so it is the same number), and from a
// separate no-grad pass before the updates otherwise; micro-batch losses are weighted by their
// share of the batch's tokens (token_mean) or sequences (the seq_mean modes), so gradient
// accumulation gives the same update as one big batch.
#include "gopd/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "gopd/core/atomic_file.h"
#include "gopd/core/error.h"
#include "gopd/core/metrics.h"
#include "gopd/core/rng.h"
#include "gopd/core/run_directory.h"
#include "gopd/data/jsonl.h"
#include "gopd/data/prompt_encoding.h"
#include "gopd/kernels/ops.h"
#include "gopd/model/model_io.h"
#include "gopd/objective/gopd_loss.h"
#include "gopd/objective/sft_loss.h"
#include "gopd/reward/math_verifier.h"
#include "gopd/reward/task_verifier.h"
#include "gopd/rollout/rollout_engine.h"
#include "gopd/tokenizer/tokenizer.h"
#include "gopd/train/lr_schedule.h"

namespace gopd::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

uint64_t seed_for(const std::string& text) {
  return core::stable_hash(text.data(), int64_t(text.size()));
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

torch::Dtype parse_dtype(const std::string& name) {
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kHalf;
  return torch::kFloat;
}

// A frozen model used for scoring only.
model::Transformer load_frozen(const std::string& path, const std::string& dtype) {
  model::Transformer model = model::load_model(path, parse_dtype(dtype));
  model->eval();
  for (torch::Tensor& parameter : model->parameters()) parameter.set_requires_grad(false);
  return model;
}

// Student, teachers and reference must share the tokenizer: same size (the embedding may be
// padded beyond it) and the same token strings.
void check_same_vocabulary(const tokenizer::Tokenizer& student, const std::string& student_path,
                           const std::string& other_path) {
  const tokenizer::LoadedTokenizer other = tokenizer::load_tokenizer(other_path);
  const int64_t size = student.vocab_size();
  if (other.tokenizer->vocab_size() != size) {
    core::throw_bad_input(other_path + ": tokenizer has " +
                          std::to_string(other.tokenizer->vocab_size()) + " tokens but the student's (" +
                          student_path + ") has " + std::to_string(size) +
                          "; student, teachers and reference must share a tokenizer");
  }
  for (int64_t id = 0; id < size; ++id) {
    if (student.id_to_token(id) != other.tokenizer->id_to_token(id)) {
      core::throw_bad_input(other_path + ": token " + std::to_string(id) + " is '" +
                            other.tokenizer->id_to_token(id) + "' but the student's is '" +
                            student.id_to_token(id) + "'; the tokenizers differ");
    }
  }
}

// Correctness of a response to a record with an answer: the task checker when the record names
// a task, the math verifier otherwise (the same rule as `gopd eval`).
double verify(const data::Record& record, const std::string& response) {
  const auto task = record.extra.find("task");
  if (task != record.extra.end() && task->is_string()) {
    return reward::verify_task(task->get<std::string>(), response, record.answer).reward;
  }
  return reward::verify_math(response, record.answer).reward;
}

// The decoded text of response `row` of a rollout (special tokens dropped).
std::string response_text(const rollout::RolloutBatch& batch, int64_t row,
                          const tokenizer::Tokenizer& tokenizer) {
  const int64_t length = batch.response_mask[row].sum().item<int64_t>();
  const torch::Tensor ids = batch.response_ids[row].narrow(0, 0, length).contiguous();
  return tokenizer.decode(std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + length), true);
}

struct TrainingSequences {
  torch::Tensor input_ids;       // (B, P + T) int64: left-padded prompt, then the response
  torch::Tensor attention_mask;  // (B, P + T) int64
  torch::Tensor targets;         // (B, T) int64: response tokens
  torch::Tensor mask;            // (B, T) fp32: 1 on response tokens
  int64_t prompt_length = 0;     // P: logits at P − 1 + t predict target t
};

TrainingSequences sequences_from_rollout(const rollout::RolloutBatch& batch) {
  TrainingSequences sequences;
  sequences.input_ids = torch::cat({batch.prompt_ids, batch.response_ids}, 1);
  sequences.attention_mask = torch::cat({batch.prompt_mask, batch.response_mask}, 1);
  sequences.targets = batch.response_ids;
  sequences.mask = batch.response_mask.to(torch::kFloat);
  sequences.prompt_length = batch.prompt_ids.size(1);
  return sequences;
}

// Logits predicting the targets of rows [begin, end): (rows, T, V).
torch::Tensor target_logits(model::Transformer& model, const TrainingSequences& sequences,
                            int64_t begin, int64_t end) {
  const torch::Tensor ids = sequences.input_ids.slice(0, begin, end);
  const torch::Tensor attention = sequences.attention_mask.slice(0, begin, end);
  const int64_t steps = sequences.targets.size(1);
  const torch::Tensor logits = model->forward(ids, attention);  // (rows, P + T, V)
  return logits.narrow(1, sequences.prompt_length - 1, steps);
}

// SFT sequences: prompt + solution + eos, right-padded; mask = solution tokens and eos.
TrainingSequences sft_sequences(const std::vector<data::Record>& records,
                                const tokenizer::Tokenizer& tokenizer,
                                const tokenizer::TokenizerInfo& info,
                                const data::PromptFormat& format) {
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::vector<int64_t>> answers;
  int64_t longest_prompt = 1;
  int64_t longest_answer = 1;
  for (const data::Record& record : records) {
    std::vector<int64_t> prompt = data::encode_prompt(record, format, tokenizer);
    const auto solution = record.extra.find("solution");
    const std::string text = solution != record.extra.end() && solution->is_string()
                                 ? solution->get<std::string>()
                                 : record.answer;
    if (text.empty()) {
      core::throw_bad_input(record.source + ": algorithm sft needs a \"solution\" or \"answer\"");
    }
    std::vector<int64_t> answer = tokenizer.encode(" " + text, false);
    if (info.eos_id >= 0) answer.push_back(info.eos_id);
    longest_prompt = std::max<int64_t>(longest_prompt, int64_t(prompt.size()));
    longest_answer = std::max<int64_t>(longest_answer, int64_t(answer.size()));
    prompts.push_back(std::move(prompt));
    answers.push_back(std::move(answer));
  }
  const int64_t rows = int64_t(records.size());
  const int64_t pad = std::max<int64_t>(info.pad_id, 0);
  TrainingSequences sequences;
  sequences.prompt_length = longest_prompt;
  sequences.input_ids = torch::full({rows, longest_prompt + longest_answer}, pad, torch::kLong);
  sequences.attention_mask = torch::zeros({rows, longest_prompt + longest_answer}, torch::kLong);
  sequences.targets = torch::full({rows, longest_answer}, pad, torch::kLong);
  sequences.mask = torch::zeros({rows, longest_answer}, torch::kFloat);
  auto ids = sequences.input_ids.accessor<int64_t, 2>();
  auto attention = sequences.attention_mask.accessor<int64_t, 2>();
  auto targets = sequences.targets.accessor<int64_t, 2>();
  auto mask = sequences.mask.accessor<float, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    const auto& prompt = prompts[size_t(r)];
    const auto& answer = answers[size_t(r)];
    const int64_t offset = longest_prompt - int64_t(prompt.size());  // left-pad the prompt
    for (size_t i = 0; i < prompt.size(); ++i) {
      ids[r][offset + int64_t(i)] = prompt[i];
      attention[r][offset + int64_t(i)] = 1;
    }
    for (size_t i = 0; i < answer.size(); ++i) {
      ids[r][longest_prompt + int64_t(i)] = answer[i];
      attention[r][longest_prompt + int64_t(i)] = 1;
      targets[r][int64_t(i)] = answer[i];
      mask[r][int64_t(i)] = 1.0f;
    }
  }
  return sequences;
}

// Running sums of the micro-batch metrics, each weighted by the micro-batch's share.
class MetricAccumulator {
 public:
  void add(const std::map<std::string, torch::Tensor>& metrics, double weight) {
    for (const auto& [key, value] : metrics) sums_[key] += weight * value.item<double>();
  }
  void put(nlohmann::json& line) const {
    for (const auto& [key, value] : sums_) line[key] = value;
  }

 private:
  std::map<std::string, double> sums_;
};

struct Models {
  model::Transformer student{nullptr};
  std::map<std::string, model::Transformer> teachers;
  std::map<std::string, model::Transformer> references;  // by path ("student_init" included)
  std::map<std::string, double> teacher_lambda;
  std::map<std::string, std::string> teacher_reference;  // teacher → reference key ("" = none)
};

class Trainer {
 public:
  explicit Trainer(const core::Config& config) : config_(config) {}

  TrainSummary run();

 private:
  void load();
  void train_step(int64_t step, const std::vector<data::Record>& batch);
  void distillation_update(const std::vector<data::Record>& batch, nlohmann::json& line);
  void sft_update(const std::vector<data::Record>& batch, nlohmann::json& line);
  // Clips, checks and applies the accumulated gradient; false when the update was skipped.
  bool apply_update(int64_t step, nlohmann::json& line);
  double evaluate(const std::string& label);
  void save(const std::string& name, int64_t step);
  // The metrics key of the optimised loss, for the console line and the non-finite check.
  std::string loss_key() const {
    if (config_.algorithm == "sft") return "loss/sft";
    return config_.gopd.objective == "sampled_token" ? "loss/policy" : "loss/gopd_kl";
  }

  const core::Config& config_;
  core::RunDirectory run_;
  Models models_;
  tokenizer::LoadedTokenizer tokenizer_;
  data::PromptFormat format_;
  std::vector<data::Record> train_records_;
  std::vector<data::Record> eval_records_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  kernels::Impl impl_ = kernels::Impl::fused;
  objective::LossAgg agg_ = objective::LossAgg::token_mean;
  int64_t total_steps_ = 1;
  int64_t nonfinite_in_a_row_ = 0;
  TrainSummary summary_;
};

void Trainer::load() {
  if (config_.algorithm != "opd" && config_.algorithm != "gopd" && config_.algorithm != "sft") {
    core::throw_bad_input("algorithm: " + config_.algorithm +
                          " training is not available in this version of gopd train (opd, "
                          "gopd and sft are)");
  }
  impl_ = kernels::parse_impl(config_.kernels.impl);
  agg_ = objective::parse_loss_agg(config_.train.loss_agg);
  tokenizer_ = tokenizer::load_tokenizer(config_.student.path);
  format_.chat_format = config_.student.chat_format == "auto" ? tokenizer_.info.chat_format
                                                             : config_.student.chat_format;
  models_.student = model::load_model(config_.student.path, parse_dtype(config_.student.dtype));
  models_.student->train();
  int64_t parameter_count = 0;
  for (const torch::Tensor& parameter : models_.student->parameters()) {
    parameter_count += parameter.numel();
  }
  spdlog::info("student: {} ({} parameters)", config_.student.path, parameter_count);
  if (config_.algorithm == "opd" || config_.algorithm == "gopd") {
    if (config_.teachers.empty()) {
      core::throw_bad_input("teachers: algorithm " + config_.algorithm + " needs at least one teacher");
    }
    const double shared_lambda = config_.gopd.lambda.value_or(1.0);
    for (const auto& [name, teacher] : config_.teachers) {
      check_same_vocabulary(*tokenizer_.tokenizer, config_.student.path, teacher.path);
      models_.teachers.emplace(name, load_frozen(teacher.path, teacher.dtype));
      const double lambda = teacher.lambda.value_or(shared_lambda);
      models_.teacher_lambda[name] = lambda;
      // λ = 1: π_ref cancels from the advantage and the target (DESIGN.md), so it is not run.
      const std::string reference = lambda == 1.0 ? std::string()
                                    : teacher.reference.empty() ? config_.reference.path
                                                                : teacher.reference;
      models_.teacher_reference[name] = reference;
      spdlog::info("teacher '{}': {} (lambda {}{})", name, teacher.path, lambda,
                   reference.empty() ? ", reference pass skipped: lambda = 1"
                                     : ", reference " + reference);
      if (!reference.empty() && !models_.references.count(reference)) {
        const std::string path = reference == "student_init" ? config_.student.path : reference;
        if (reference != "student_init") check_same_vocabulary(*tokenizer_.tokenizer, config_.student.path, path);
        models_.references.emplace(reference, load_frozen(path, config_.reference.dtype));
      }
    }
  }
  train_records_ = data::read_dataset(config_.data.train_file);
  if (config_.algorithm != "sft") {
    for (const data::Record& record : train_records_) {
      if (config_.teachers.size() > 1 && !config_.teachers.count(record.teacher)) {
        std::string names;
        for (const auto& [name, teacher] : config_.teachers) names += (names.empty() ? "" : ", ") + name;
        core::throw_bad_input(record.source + ": teacher '" + record.teacher +
                              "' is not one of the configured teachers (" + names +
                              "); each record of a multi-teacher job names its teacher");
      }
    }
  }
  const std::string eval_file = config_.eval.data.empty() ? config_.data.eval_file : config_.eval.data;
  if (!eval_file.empty()) eval_records_ = data::read_dataset(eval_file);

  const int64_t steps_per_epoch =
      (int64_t(train_records_.size()) + config_.rollout.batch_prompts - 1) / config_.rollout.batch_prompts;
  total_steps_ = config_.train.max_steps > 0 ? config_.train.max_steps
                                             : std::max<int64_t>(1, steps_per_epoch * config_.train.epochs);
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      models_.student->parameters(),
      torch::optim::AdamWOptions(config_.optim.lr)
          .betas({config_.optim.beta1, config_.optim.beta2})
          .eps(config_.optim.eps)
          .weight_decay(config_.optim.weight_decay));
}

const std::string& teacher_of(const core::Config& config, const data::Record& record) {
  return config.teachers.size() == 1 ? config.teachers.begin()->first : record.teacher;
}

void Trainer::distillation_update(const std::vector<data::Record>& batch, nlohmann::json& line) {
  // Rollout: n samples per prompt with the current student.
  const auto rollout_start = Clock::now();
  std::vector<std::vector<int64_t>> prompts;
  for (const data::Record& record : batch) {
    prompts.push_back(data::encode_prompt(record, format_, *tokenizer_.tokenizer));
  }
  rollout::GenerationParams params;
  params.sampling.temperature = config_.rollout.temperature;
  params.sampling.top_p = config_.rollout.top_p;
  params.sampling.top_k = config_.rollout.top_k;
  params.sampling.min_p = config_.rollout.min_p;
  params.n = config_.rollout.n;
  params.max_new_tokens = config_.rollout.max_new_tokens;
  params.stop_token_ids = tokenizer_.info.stop_ids;
  params.seed = seed_for(std::to_string(config_.run.seed) + "/rollout/" +
                                  std::to_string(summary_.steps + summary_.skipped_steps));
  params.prefill_chunk = config_.rollout.prefill_chunk;
  params.pad_id = std::max<int64_t>(tokenizer_.info.pad_id, 0);
  rollout::RolloutBatch rollout_batch;
  {
    torch::NoGradGuard no_grad;
    rollout_batch = rollout::generate(models_.student, prompts, params);
  }
  const double rollout_seconds = seconds_since(rollout_start);
  const TrainingSequences sequences = sequences_from_rollout(rollout_batch);
  const int64_t rows = sequences.targets.size(0);
  const int64_t micro = config_.optim.micro_batch_size > 0 ? config_.optim.micro_batch_size : rows;
  const double total_tokens = std::max(1.0, sequences.mask.sum().item<double>());

  // Per row: its teacher, λ and reference.
  std::vector<std::string> row_teacher(static_cast<size_t>(rows));
  std::vector<double> row_lambda(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const data::Record& record = batch[size_t(rollout_batch.group_ids[r].item<int64_t>())];
    row_teacher[size_t(r)] = teacher_of(config_, record);
    row_lambda[size_t(r)] = models_.teacher_lambda.at(row_teacher[size_t(r)]);
  }

  // Responses' correctness, when the data has answers (logged, not optimised).
  double correct = 0;
  int64_t scored = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const data::Record& record = batch[size_t(rollout_batch.group_ids[r].item<int64_t>())];
    if (record.answer.empty()) continue;
    correct += verify(record, response_text(rollout_batch, r, *tokenizer_.tokenizer));
    ++scored;
  }

  const std::string& objective = config_.gopd.objective;
  const bool clipped = config_.optim.ppo_epochs > 1 || config_.optim.mini_batches > 1;
  double scoring_seconds = 0;
  double update_seconds = 0;
  MetricAccumulator metrics;
  double entropy_sum = 0;
  optimizer_->zero_grad();
  for (int64_t begin = 0; begin < rows; begin += micro) {
    const int64_t end = std::min(rows, begin + micro);
    const torch::Tensor targets = sequences.targets.slice(0, begin, end);  // (m, T)
    const torch::Tensor mask = sequences.mask.slice(0, begin, end);        // (m, T)
    const double share = agg_ == objective::LossAgg::token_mean
                             ? mask.sum().item<double>() / total_tokens
                             : double(end - begin) / double(rows);
    // Scoring (no grad): each row by its own teacher and reference.
    const auto scoring_start = Clock::now();
    torch::Tensor teacher_logits;    // (m, T, V)
    torch::Tensor reference_logits;  // (m, T, V) or undefined
    bool any_reference = false;
    for (int64_t r = begin; r < end; ++r) {
      any_reference = any_reference || !models_.teacher_reference.at(row_teacher[size_t(r)]).empty();
    }
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> teacher_rows;
      std::vector<torch::Tensor> reference_rows;
      // Consecutive rows with the same teacher are scored together.
      for (int64_t r = begin; r < end;) {
        int64_t r_end = r + 1;
        while (r_end < end && row_teacher[size_t(r_end)] == row_teacher[size_t(r)]) ++r_end;
        const std::string& name = row_teacher[size_t(r)];
        teacher_rows.push_back(
            target_logits(models_.teachers.at(name), sequences, r, r_end).to(torch::kFloat));
        if (any_reference) {
          const std::string& reference = models_.teacher_reference.at(name);
          // A teacher with λ = 1 in a mixed batch: its reference cancels; use its own logits.
          reference_rows.push_back(reference.empty() ? teacher_rows.back()
                                                     : target_logits(models_.references.at(reference), sequences, r, r_end)
                                                           .to(torch::kFloat));
        }
        r = r_end;
      }
      teacher_logits = torch::cat(teacher_rows, 0);
      if (any_reference) reference_logits = torch::cat(reference_rows, 0);
    }
    scoring_seconds += seconds_since(scoring_start);

    const auto update_start = Clock::now();
    const torch::Tensor student_logits =
        target_logits(models_.student, sequences, begin, end).to(torch::kFloat);  // (m, T, V)
    const torch::Tensor lambda = torch::tensor(
        std::vector<double>(row_lambda.begin() + begin, row_lambda.begin() + end), torch::kFloat);
    objective::LossOutput output;
    const double temperature = config_.rollout.temperature;
    if (objective == "sampled_token") {
      const kernels::TokenLogprobs student =
          kernels::token_logprobs(student_logits, targets, temperature, true, impl_);
      objective::GopdTokenLogprobs logprobs;
      logprobs.old = student.logprobs.detach();
      {
        torch::NoGradGuard no_grad;
        logprobs.teacher = kernels::token_logprobs(teacher_logits, targets, temperature, false, impl_).logprobs;
        if (reference_logits.defined()) {
          logprobs.reference =
              kernels::token_logprobs(reference_logits, targets, temperature, false, impl_).logprobs;
        }
      }
      objective::GopdLossOptions options;
      options.agg = agg_;
      options.importance_cap = config_.gopd.importance_cap;
      options.clipped = clipped;
      output = objective::gopd_sampled_token_loss(
          student.logprobs, logprobs, lambda,
          rollout_batch.response_logprobs.slice(0, begin, end), mask, options);
      entropy_sum += (student.entropy.detach() * mask).sum().item<double>();
    } else {
      // One λ per micro-batch for the vocabulary objectives: rows are grouped by teacher
      // above, and a micro-batch mixing teachers with different λ is split by λ here.
      const double lambda_value = row_lambda[size_t(begin)];
      for (int64_t r = begin; r < end; ++r) {
        if (row_lambda[size_t(r)] != lambda_value) {
          core::throw_bad_input("gopd.objective " + objective +
                                ": teachers with different lambda in one micro-batch are not "
                                "supported yet; use optim.micro_batch_size: 1 or one lambda");
        }
      }
      if (objective == "full_vocab") {
        output = objective::gopd_full_vocab_loss(student_logits, teacher_logits, reference_logits,
                                                 lambda_value, temperature, mask, agg_, impl_);
      } else {
        const objective::TopK top = objective::teacher_top_k(teacher_logits, reference_logits,
                                                             config_.gopd.top_k, temperature);
        output = objective::gopd_top_k_loss(student_logits, top.ids, top.teacher_logprobs,
                                            top.reference_logprobs, lambda_value, temperature,
                                            mask, agg_, impl_);
      }
      torch::NoGradGuard no_grad;
      entropy_sum += (kernels::token_logprobs(student_logits.detach(), targets, temperature, true, impl_)
                          .entropy * mask).sum().item<double>();
    }
    (output.loss * share).backward();
    metrics.add(output.metrics, share);
    update_seconds += seconds_since(update_start);
  }
  metrics.put(line);
  const double generated = double(rollout_batch.generated_tokens);
  line["rollout/response_length_mean"] = generated / double(rows);
  line["rollout/entropy"] = entropy_sum / total_tokens;
  int64_t truncated = 0;
  for (const rollout::FinishReason reason : rollout_batch.finish_reasons) {
    truncated += reason == rollout::FinishReason::kLength ? 1 : 0;
  }
  line["rollout/truncated_fraction"] = double(truncated) / double(rows);
  if (scored > 0) line["reward/accuracy"] = correct / double(scored);
  line["perf/rollout_s"] = rollout_seconds;
  line["perf/scoring_s"] = scoring_seconds;
  line["perf/update_s"] = update_seconds;
  line["perf/rollout_tokens_per_s"] = generated / std::max(rollout_seconds, 1e-9);
}

void Trainer::sft_update(const std::vector<data::Record>& batch, nlohmann::json& line) {
  const auto update_start = Clock::now();
  const TrainingSequences sequences = sft_sequences(batch, *tokenizer_.tokenizer, tokenizer_.info, format_);
  const int64_t rows = sequences.targets.size(0);
  const int64_t micro = config_.optim.micro_batch_size > 0 ? config_.optim.micro_batch_size : rows;
  const double total_tokens = std::max(1.0, sequences.mask.sum().item<double>());
  MetricAccumulator metrics;
  optimizer_->zero_grad();
  for (int64_t begin = 0; begin < rows; begin += micro) {
    const int64_t end = std::min(rows, begin + micro);
    const torch::Tensor mask = sequences.mask.slice(0, begin, end);
    const double share = agg_ == objective::LossAgg::token_mean
                             ? mask.sum().item<double>() / total_tokens
                             : double(end - begin) / double(rows);
    const torch::Tensor logits = target_logits(models_.student, sequences, begin, end).to(torch::kFloat);
    const objective::LossOutput output =
        objective::sft_loss(logits, sequences.targets.slice(0, begin, end), mask, agg_, impl_);
    (output.loss * share).backward();
    metrics.add(output.metrics, share);
  }
  metrics.put(line);
  line["perf/update_s"] = seconds_since(update_start);
}

bool Trainer::apply_update(int64_t step, nlohmann::json& line) {
  const double lr = learning_rate(config_.optim, step, total_steps_);
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
  const double max_norm = config_.optim.grad_clip > 0 ? config_.optim.grad_clip
                                                      : std::numeric_limits<double>::infinity();
  const double grad_norm = torch::nn::utils::clip_grad_norm_(models_.student->parameters(), max_norm);
  line["optim/lr"] = lr;
  line["optim/grad_norm"] = grad_norm;
  const auto loss = line.find(loss_key());
  const bool finite_loss = loss == line.end() || std::isfinite(loss->get<double>());
  if (!finite_loss || !std::isfinite(grad_norm)) {
    optimizer_->zero_grad();
    ++nonfinite_in_a_row_;
    ++summary_.skipped_steps;
    line["optim/skipped"] = 1;
    spdlog::warn("step {}: non-finite {} — update skipped ({} in a row)", step + 1,
                 finite_loss ? "gradient norm" : "loss", nonfinite_in_a_row_);
    if (nonfinite_in_a_row_ >= config_.train.max_nonfinite_steps) {
      core::throw_runtime_failure("stopping: " + std::to_string(nonfinite_in_a_row_) +
                                  " updates in a row had a non-finite loss or gradient norm "
                                  "(train.max_nonfinite_steps); lower optim.lr or check the data");
    }
    return false;
  }
  nonfinite_in_a_row_ = 0;
  optimizer_->step();
  return true;
}

double Trainer::evaluate(const std::string& label) {
  if (eval_records_.empty()) return -1;
  const auto start = Clock::now();
  std::vector<std::vector<int64_t>> prompts;
  for (const data::Record& record : eval_records_) {
    prompts.push_back(data::encode_prompt(record, format_, *tokenizer_.tokenizer));
  }
  rollout::GenerationParams params;
  params.sampling.temperature = config_.eval.temperature;
  params.sampling.top_p = config_.eval.top_p;
  params.n = config_.eval.samples;
  params.max_new_tokens = config_.eval.max_new_tokens;
  params.stop_token_ids = tokenizer_.info.stop_ids;
  params.seed = seed_for(std::to_string(config_.run.seed) + "/eval");
  params.pad_id = std::max<int64_t>(tokenizer_.info.pad_id, 0);
  double correct = 0;
  int64_t count = 0;
  const int64_t chunk = std::max<int64_t>(1, config_.rollout.batch_prompts);
  torch::NoGradGuard no_grad;
  models_.student->eval();
  for (size_t begin = 0; begin < prompts.size(); begin += size_t(chunk)) {
    const size_t end = std::min(prompts.size(), begin + size_t(chunk));
    const std::vector<std::vector<int64_t>> part(prompts.begin() + long(begin), prompts.begin() + long(end));
    const rollout::RolloutBatch batch = rollout::generate(models_.student, part, params);
    for (int64_t r = 0; r < batch.response_ids.size(0); ++r) {
      const data::Record& record = eval_records_[begin + size_t(batch.group_ids[r].item<int64_t>())];
      correct += verify(record, response_text(batch, r, *tokenizer_.tokenizer));
      ++count;
    }
  }
  models_.student->train();
  const double accuracy = count > 0 ? correct / double(count) : 0.0;
  spdlog::info("eval ({}): avg@{} = {:.4f} on {} prompts ({:.1f} s)", label, config_.eval.samples,
               accuracy, eval_records_.size(), seconds_since(start));
  return accuracy;
}

void Trainer::save(const std::string& name, int64_t step) {
  const std::string directory = run_.path + "/checkpoints/" + name;
  model::save_model(models_.student, directory, config_.student.path);
  nlohmann::json state = {{"step", step}, {"algorithm", config_.algorithm}};
  core::write_file_atomically(directory + "/trainer_state.json", state.dump(2) + "\n");
  spdlog::info("saved {}", directory);
  summary_.final_model = directory;
}

TrainSummary Trainer::run() {
  // Everything that can be wrong with the job (models, tokenizers, datasets) is found before
  // the run directory is created, so a bad job leaves nothing behind.
  load();
  run_ = core::prepare_run(config_);
  summary_.run_directory = run_.path;
  core::MetricsSink sink(run_.metrics_path);
  spdlog::info("{}: {} steps, {} prompts/step × {} samples, objective {}, kernels {}",
               config_.algorithm, total_steps_, config_.rollout.batch_prompts, config_.rollout.n,
               config_.algorithm == "sft" ? "sft" : config_.gopd.objective, config_.kernels.impl);
  const double initial_accuracy = config_.train.eval_every > 0 ? evaluate("step 0") : -1;
  if (initial_accuracy >= 0) sink.write({{"step", 0}, {"eval/accuracy", initial_accuracy}});

  std::vector<size_t> order(train_records_.size());
  int64_t cursor = int64_t(order.size());  // forces a shuffle before the first batch
  int64_t epoch = -1;
  for (int64_t step = 0; step < total_steps_; ++step) {
    if (cursor >= int64_t(order.size())) {
      ++epoch;
      std::iota(order.begin(), order.end(), size_t(0));
      if (config_.data.shuffle) {
        core::Rng rng(seed_for(std::to_string(config_.run.seed) + "/epoch/" + std::to_string(epoch)));
        for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.next_u64() % i]);
      }
      cursor = 0;
    }
    std::vector<data::Record> batch;
    while (int64_t(batch.size()) < config_.rollout.batch_prompts && cursor < int64_t(order.size())) {
      batch.push_back(train_records_[order[size_t(cursor++)]]);
    }
    const auto step_start = Clock::now();
    nlohmann::json line = {{"step", step + 1}, {"epoch", epoch}};
    if (config_.algorithm == "sft") {
      sft_update(batch, line);
    } else {
      distillation_update(batch, line);
    }
    if (apply_update(step, line)) ++summary_.steps;
    line["perf/step_s"] = seconds_since(step_start);
    if (config_.train.eval_every > 0 && (step + 1) % config_.train.eval_every == 0 && step + 1 < total_steps_) {
      line["eval/accuracy"] = evaluate("step " + std::to_string(step + 1));
    }
    sink.write(line);
    if ((step + 1) % std::max<int64_t>(1, config_.run.log_every) == 0 || step + 1 == total_steps_) {
      const auto loss = line.find(loss_key());
      spdlog::info("step {}/{}  loss {:.4f}  grad_norm {:.3f}  lr {:.2e}{}  {:.1f} s", step + 1,
                   total_steps_, loss != line.end() ? loss->get<double>() : 0.0,
                   line["optim/grad_norm"].get<double>(), line["optim/lr"].get<double>(),
                   line.contains("reward/accuracy")
                       ? fmt::format("  accuracy {:.3f}", line["reward/accuracy"].get<double>())
                       : std::string(),
                   line["perf/step_s"].get<double>());
    }
    if (config_.train.save_every > 0 && (step + 1) % config_.train.save_every == 0 && step + 1 < total_steps_) {
      save("step_" + std::to_string(step + 1), step + 1);
    }
  }
  save("final", total_steps_);
  summary_.final_eval_accuracy = evaluate("final");
  if (summary_.final_eval_accuracy >= 0) {
    sink.write({{"step", total_steps_}, {"eval/accuracy", summary_.final_eval_accuracy}});
  }
  return summary_;
}

}  // namespace

TrainSummary run_training(const core::Config& config) {
  Trainer trainer(config);
  return trainer.run();
}

}  // namespace gopd::train
