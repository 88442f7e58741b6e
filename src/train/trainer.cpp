// The training loop of gopd train (see trainer.h). Departures from the paper's verl setup,
// all deliberate: one process (data parallelism arrives with the dist module); π_old is the
// trainer's own recomputation, taken from the update forward itself when there is a single
// update per batch (the weights have not moved yet, so it is the same number), and from a
// separate no-grad pass before the updates otherwise; micro-batch losses are weighted by their
// share of the batch's tokens (token_mean) or sequences (the seq_mean modes), so gradient
// accumulation gives the same update as one big batch.
#include "gopd/train/trainer.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <set>

#include <sys/resource.h>

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
#include "gopd/lens/lens.h"
#include "gopd/objective/gopd_loss.h"
#include "gopd/objective/grpo_loss.h"
#include "gopd/objective/sft_loss.h"
#include "gopd/reward/code_sandbox.h"
#include "gopd/reward/math_verifier.h"
#include "gopd/reward/rollout_rewards.h"
#include "gopd/reward/task_verifier.h"
#include "gopd/rollout/rollout_engine.h"
#include "gopd/scoring/sequence_logprobs.h"
#include "gopd/tokenizer/tokenizer.h"
#include "gopd/train/checkpoint.h"
#include "gopd/train/lr_schedule.h"
#include "gopd/train/sequences.h"

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

// "auto" (frozen models): float32, as the trainer runs on the CPU, where bfloat16 matmuls are
// far slower; bfloat16 once models are placed on a GPU.
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

// SFT sequences: prompt + solution + eos; mask = solution tokens and eos.
TrainingSequences sft_sequences(const std::vector<data::Record>& records,
                                const tokenizer::Tokenizer& tokenizer,
                                const tokenizer::TokenizerInfo& info,
                                const data::PromptFormat& format) {
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::vector<int64_t>> answers;
  for (const data::Record& record : records) {
    prompts.push_back(data::encode_prompt(record, format, tokenizer));
    const auto solution = record.extra.find("solution");
    const std::string text = solution != record.extra.end() && solution->is_string()
                                 ? solution->get<std::string>()
                                 : record.answer;
    if (text.empty()) {
      core::throw_bad_input(record.source + ": algorithm sft needs a \"solution\" or \"answer\"");
    }
    std::vector<int64_t> answer = tokenizer.encode(" " + text, false);
    if (info.eos_id >= 0) answer.push_back(info.eos_id);
    answers.push_back(std::move(answer));
  }
  return pair_sequences(prompts, answers, std::max<int64_t>(info.pad_id, 0));
}

// The response tokens of row `row` of a rollout, without padding.
std::vector<int64_t> response_tokens(const rollout::RolloutBatch& batch, int64_t row) {
  const int64_t length = batch.response_mask[row].sum().item<int64_t>();
  const torch::Tensor ids = batch.response_ids[row].narrow(0, 0, length).contiguous();
  return std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + length);
}

// The sampler's log-probs of the response tokens of row `row` (no padding).
std::vector<float> response_logprobs_of(const rollout::RolloutBatch& batch, int64_t row) {
  const int64_t length = batch.response_mask[row].sum().item<int64_t>();
  const torch::Tensor values = batch.response_logprobs[row].narrow(0, 0, length).to(torch::kFloat).contiguous();
  return std::vector<float>(values.data_ptr<float>(), values.data_ptr<float>() + length);
}

// The decoded text of response `row` of a rollout (special tokens dropped).
std::string response_text(const rollout::RolloutBatch& batch, int64_t row,
                          const tokenizer::Tokenizer& tokenizer) {
  return tokenizer.decode(response_tokens(batch, row), true);
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

// Truncated importance weights over the whole batch (micro-batch averages would give neither
// the batch mean nor its maximum): "actor/importance_weight_mean" and "_max" over the response
// tokens of every pass, which see the same weights when π_old is fixed. Sums stay tensors
// until put(): one sync per log line, not per micro-batch.
class ImportanceWeightStats {
 public:
  void add(const torch::Tensor& weights, const torch::Tensor& mask) {  // (b, T) each
    torch::NoGradGuard no_grad;
    const torch::Tensor valid = mask > 0;
    const torch::Tensor w = weights.detach().to(torch::kDouble);
    const torch::Tensor part_max = w.masked_fill(valid.logical_not(), 0.0).max();  // weights are ≥ 0
    sum_ = sum_.defined() ? sum_ + (w * valid).sum() : (w * valid).sum();
    tokens_ = tokens_.defined() ? tokens_ + valid.sum() : valid.sum();
    max_ = max_.defined() ? torch::maximum(max_, part_max) : part_max;
  }
  void put(nlohmann::json& line) const {
    if (!tokens_.defined() || tokens_.item<int64_t>() == 0) return;
    line["actor/importance_weight_mean"] = sum_.item<double>() / tokens_.item<double>();
    line["actor/importance_weight_max"] = max_.item<double>();
  }

 private:
  torch::Tensor sum_;     // () fp64
  torch::Tensor tokens_;  // () int64
  torch::Tensor max_;     // () fp64
};

// The sampled-token G-OPD statistics over the whole batch, from the first pass over each row
// (at θ = θ_old; micro-batch averages would give neither the batch std nor its maximum):
// "gopd/advantage_mean", "gopd/advantage_std", "gopd/reverse_kl_estimate" (log π_old − log π_T),
// "gopd/reward_mean" and the truncated importance weights. The reward is λ·(log π_T − log π_ref)
// on rows whose teacher has a reference of its own, and log π_T − log π_old on rows of a λ = 1
// teacher, whose reference is skipped (the teacher stands in for it, which would read as 0).
class DistillBatchStats {
 public:
  explicit DistillBatchStats(int64_t rows) : seen_(size_t(rows), false) {}

  void add(int64_t begin, int64_t end, const objective::GopdTokenLogprobs& logprobs,
           const torch::Tensor& lambda,        // (b) fp32
           const torch::Tensor& rollout,       // (b, T) the sampler's log-probs
           const torch::Tensor& own_reference, // (b) bool
           const torch::Tensor& mask, double cap) {
    if (seen_[size_t(begin)]) return;
    for (int64_t r = begin; r < end; ++r) seen_[size_t(r)] = true;
    torch::NoGradGuard no_grad;
    const torch::Tensor valid = (mask > 0).to(torch::kDouble);                            // (b, T)
    const torch::Tensor teacher = logprobs.teacher.to(torch::kDouble).masked_fill(mask == 0, 0.0);
    const torch::Tensor old = logprobs.old.to(torch::kDouble).masked_fill(mask == 0, 0.0);
    const torch::Tensor advantage = objective::gopd_advantage(logprobs, lambda, mask).to(torch::kDouble);
    torch::Tensor reward = teacher - old;  // (b, T)
    if (logprobs.reference.defined()) {
      const torch::Tensor reference = logprobs.reference.to(torch::kDouble).masked_fill(mask == 0, 0.0);
      const torch::Tensor lam = lambda.to(torch::kDouble).unsqueeze(1);
      reward = torch::where(own_reference.unsqueeze(1), lam * (teacher - reference), reward);
    }
    // (advantage, advantage², log π_old − log π_T, reward, tokens) summed over the valid tokens
    const torch::Tensor sums = torch::stack({(advantage * valid).sum(), (advantage.square() * valid).sum(),
                                             ((old - teacher) * valid).sum(), (reward * valid).sum(), valid.sum()});
    sums_ = sums_.defined() ? sums_ + sums : sums;  // (5) fp64
    importance_.add(objective::truncated_importance_weights(logprobs.old, rollout, cap), mask);
  }

  void put(nlohmann::json& line) const {
    if (!sums_.defined()) return;
    const torch::Tensor sums = sums_.contiguous();
    const double* s = sums.data_ptr<double>();
    const double tokens = s[4];
    if (tokens == 0) return;
    const double mean = s[0] / tokens;
    line["gopd/advantage_mean"] = mean;
    line["gopd/advantage_std"] = std::sqrt(std::max(0.0, s[1] / tokens - mean * mean));
    line["gopd/reverse_kl_estimate"] = s[2] / tokens;
    line["gopd/reward_mean"] = s[3] / tokens;
    importance_.put(line);
  }

 private:
  std::vector<bool> seen_;
  torch::Tensor sums_;  // (5) fp64, see add()
  ImportanceWeightStats importance_;
};

struct Models {
  model::Transformer student{nullptr};
  std::map<std::string, model::Transformer> teachers;
  std::map<std::string, model::Transformer> references;  // by path ("student_init" included)
  std::map<std::string, double> teacher_lambda;
  std::map<std::string, std::string> teacher_reference;  // teacher → reference key ("" = none)
};

// A distillation batch after scoring: the sequences, each row's teacher and λ, and for the
// sampled-token objective the per-token log-probs the advantage needs.
struct ScoredBatch {
  TrainingSequences sequences;
  torch::Tensor rollout_logprobs;  // (B, T) the sampler's
  std::vector<std::string> row_teacher;
  std::vector<double> row_lambda;
  torch::Tensor teacher;    // (B, T) log π_T(y_t) (sampled_token only)
  torch::Tensor reference;  // (B, T) log π_ref(y_t) or undefined
  torch::Tensor old;        // (B, T) log π_old(y_t), only with several updates per batch
};

// The loss of rows [begin, end) of a batch, for gradient accumulation.
using MicroBatchLoss = std::function<objective::LossOutput(int64_t begin, int64_t end)>;

// Metrics of a step's rollout shared by every on-policy algorithm: response length, entropy of
// the updated tokens, truncation, and rollout speed.
void put_rollout_metrics(const rollout::RolloutBatch& batch, double rollout_seconds, double entropy_sum,
                         double entropy_tokens, nlohmann::json& line) {
  const double rows = double(batch.finish_reasons.size());
  const double generated = double(batch.generated_tokens);
  line["rollout/response_length_mean"] = generated / rows;
  line["rollout/entropy"] = entropy_sum / entropy_tokens;
  int64_t truncated = 0;
  for (const rollout::FinishReason reason : batch.finish_reasons) {
    truncated += reason == rollout::FinishReason::kLength ? 1 : 0;
  }
  line["rollout/truncated_fraction"] = double(truncated) / rows;
  line["perf/rollout_s"] = rollout_seconds;
  line["perf/rollout_tokens_per_s"] = generated / std::max(rollout_seconds, 1e-9);
}

int64_t peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) / 1024;  // Linux: kilobytes
}

class Trainer {
 public:
  Trainer(const core::Config& config, const TrainOptions& options) : config_(config), options_(options) {}

  TrainSummary run();

 private:
  void load();
  void restore();
  std::vector<size_t> epoch_order(int64_t epoch) const;
  rollout::GenerationParams generation_params(uint64_t seed) const;
  // Logits predicting the targets of rows [begin, end), cut to the shared vocabulary.
  torch::Tensor logits(model::Transformer& model, const TrainingSequences& sequences, int64_t begin,
                       int64_t end) const;
  // Teacher (and, if `with_reference`, reference) logits of rows [begin, end), each row by its
  // own teacher. Rows whose teacher has λ = 1 (no reference) get the teacher's logits as their
  // reference: π_ref cancels for them.
  std::pair<torch::Tensor, torch::Tensor> score_rows(const ScoredBatch& scored, int64_t begin,
                                                     int64_t end, bool with_reference) const;
  void distillation_step(int64_t step, const std::vector<data::Record>& batch, nlohmann::json& line);
  // GRPO and LENS: a group of rollout.n samples per prompt, verifiable rewards, group
  // advantages, the clipped surrogate (CRPO ratio for LENS's rebuilt groups).
  void rlvr_step(int64_t step, const std::vector<size_t>& indices, nlohmann::json& line);
  // LENS on one step's groups (rows r = g·n + i): purifies the low-success prompts, rolls out
  // on them and transfers purified successes into the groups; updates the rows and their log
  // CRPO weights in place; returns the number of rollouts transferred.
  int64_t lens_transfer(int64_t step, const std::vector<size_t>& indices,
                        const std::vector<std::vector<int64_t>>& prompts, RlvrRows& rows,
                        nlohmann::json& line);
  // Samples params.n responses per prompt with the current student (no grad).
  rollout::RolloutBatch sample(const std::vector<std::vector<int64_t>>& prompts, uint64_t seed, int64_t n,
                               int64_t max_new_tokens) const;
  // log π(y_t) of every response token of `sequences` under `model` (no grad), (B, T).
  torch::Tensor response_logprobs(model::Transformer& model, const TrainingSequences& sequences) const;
  // log π(x_j | x_<j) of every prompt token under `model` (position 0 gets 0), no grad.
  std::vector<std::vector<double>> prompt_logprobs(model::Transformer& model,
                                                   const std::vector<std::vector<int64_t>>& prompts) const;
  // Loads a frozen reference once, keyed by its path ("student_init" = the job's student.path).
  void load_reference(const std::string& key, std::map<std::string, int64_t>& widths);
  void sft_step(int64_t step, const std::vector<data::Record>& batch, nlohmann::json& line);
  // ppo_epochs passes × mini_batches optimizer updates over a batch whose response tokens are
  // `mask`; each update accumulates micro-batch gradients weighted by their share.
  void update(int64_t step, const torch::Tensor& mask, int64_t epochs, int64_t mini_batches,
              const MicroBatchLoss& loss_of, nlohmann::json& line);
  // Clips, checks and applies the accumulated gradient; false when the update was skipped.
  bool apply_update(int64_t step, double loss, double& grad_norm);
  double evaluate(const std::string& label);
  void save(int64_t step);
  // The metrics key of the optimised loss, for the console line and the non-finite check.
  std::string loss_key() const {
    if (config_.algorithm == "sft") return "loss/sft";
    if (rlvr()) return "loss/policy";
    return config_.gopd.objective == "sampled_token" ? "loss/policy" : "loss/gopd_kl";
  }

  bool rlvr() const { return config_.algorithm == "grpo" || config_.algorithm == "lens"; }

  const core::Config& config_;
  const TrainOptions options_;
  core::RunDirectory run_;
  Models models_;
  tokenizer::LoadedTokenizer tokenizer_;
  data::PromptFormat format_;
  std::vector<data::Record> train_records_;
  std::vector<data::Record> eval_records_;
  std::vector<reward::RewardSpec> train_specs_;  // GRPO/LENS: how each training record is verified
  std::vector<reward::RewardSpec> eval_specs_;   // how each eval record is verified
  std::string kl_reference_;    // GRPO/LENS: reference of the KL penalty ("" = none, β = 0)
  std::string lens_reference_;  // LENS: π_ref of the interference scores
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  kernels::Impl impl_ = kernels::Impl::fused;
  objective::LossAgg agg_ = objective::LossAgg::token_mean;
  int64_t total_steps_ = 1;
  int64_t vocab_width_ = 0;  // logits are cut to this many columns; 0 = all
  std::string resume_from_;  // checkpoint directory, "" for a fresh run
  CheckpointState state_;    // step, data cursor and counters (what a checkpoint saves)
  TrainSummary summary_;
};

void Trainer::load() {
  static const std::set<std::string> kAlgorithms = {"opd", "gopd", "sft", "grpo", "lens"};
  if (!kAlgorithms.count(config_.algorithm)) {
    core::throw_bad_input("algorithm: unknown algorithm '" + config_.algorithm +
                          "' (opd, gopd, grpo, lens, sft)");
  }
  impl_ = kernels::parse_impl(config_.kernels.impl);
  agg_ = objective::parse_loss_agg(config_.train.loss_agg);
  state_.algorithm = config_.algorithm;
  if (!options_.resume.empty()) {
    const std::string checkpoints = (fs::path(config_.run.output_dir) / config_.run.name / "checkpoints").string();
    resume_from_ = options_.resume == "auto" ? latest_checkpoint(checkpoints) : options_.resume;
    if (resume_from_.empty()) {
      spdlog::info("--resume auto: no complete checkpoint in {}; starting from step 0", checkpoints);
    } else {
      const CheckpointState saved = read_checkpoint_state(resume_from_);
      if (saved.algorithm != config_.algorithm) {
        core::throw_bad_input(resume_from_ + ": checkpoint of algorithm " + saved.algorithm +
                              " cannot continue a " + config_.algorithm + " job");
      }
      state_ = saved;
    }
  }
  tokenizer_ = tokenizer::load_tokenizer(config_.student.path);
  format_.chat_format = config_.student.chat_format == "auto" ? tokenizer_.info.chat_format
                                                             : config_.student.chat_format;
  if (format_.chat_format == "qwen3_no_think") {  // Qwen3's template with enable_thinking=False
    format_.chat_format = "qwen3";
    format_.enable_thinking = false;
  }
  // Resuming: the student's weights come from the checkpoint; student_init stays the job's
  // student.path.
  models_.student = model::load_model(resume_from_.empty() ? config_.student.path : resume_from_,
                                      parse_dtype(config_.student.dtype));
  models_.student->train();
  int64_t parameter_count = 0;
  for (const torch::Tensor& parameter : models_.student->parameters()) {
    parameter_count += parameter.numel();
  }
  spdlog::info("student: {} ({} parameters)", config_.student.path, parameter_count);
  // Embedding widths of every model, to detect padded vocabularies.
  std::map<std::string, int64_t> widths = {{config_.student.path, models_.student->config().vocab_size}};
  if (config_.algorithm == "opd" || config_.algorithm == "gopd") {
    if (config_.teachers.empty()) {
      core::throw_bad_input("teachers: algorithm " + config_.algorithm + " needs at least one teacher");
    }
    const double shared_lambda = config_.gopd.lambda.value_or(1.0);
    for (const auto& [name, teacher] : config_.teachers) {
      check_same_vocabulary(*tokenizer_.tokenizer, config_.student.path, teacher.path);
      models_.teachers.emplace(name, load_frozen(teacher.path, teacher.dtype));
      widths[teacher.path] = models_.teachers.at(name)->config().vocab_size;
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
      if (!reference.empty()) load_reference(reference, widths);
    }
  }
  if (rlvr()) {
    if (!config_.teachers.empty()) {
      spdlog::warn("teachers: ignored by algorithm {} (rewards come from the verifier)", config_.algorithm);
    }
    if (config_.grpo.kl_beta > 0) {
      kl_reference_ = config_.reference.path;
      load_reference(kl_reference_, widths);
    }
    if (config_.algorithm == "lens") {
      lens_reference_ = config_.lens.score == "initial_policy" ? "student_init" : config_.reference.path;
      load_reference(lens_reference_, widths);
    }
  }
  // Embeddings padded to different widths (e.g. 151,936 vs 152,064 rows for one tokenizer):
  // logits are compared over the tokenizer's ids only, and the student samples only those.
  const auto [narrowest, widest] = std::minmax_element(
      widths.begin(), widths.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  if (narrowest->second != widest->second) {
    const int64_t size = tokenizer_.tokenizer->vocab_size();
    if (size > narrowest->second) {
      core::throw_bad_input(narrowest->first + ": the model has " + std::to_string(narrowest->second) +
                            " embedding rows, fewer than the tokenizer's " + std::to_string(size) + " tokens");
    }
    vocab_width_ = size;
    spdlog::info("embedding widths differ ({} has {} rows, {} has {}): logits are cut to the "
                 "tokenizer's {} tokens",
                 narrowest->first, narrowest->second, widest->first, widest->second, size);
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
  // How responses are verified, decided per record now, so a record the verifier cannot check
  // stops the job before it starts. Evaluation of a distillation job checks each record by
  // its task when it names one, as a math answer otherwise.
  const auto spec_of = [&](const data::Record& record, bool use_reward_type) {
    const auto task = record.extra.find("task");
    return reward::reward_spec(use_reward_type ? config_.reward.type : "auto", record.answer,
                               task != record.extra.end() ? *task : nlohmann::json(), record.tests,
                               record.source);
  };
  bool runs_code = false;
  if (rlvr()) {
    for (const data::Record& record : train_records_) train_specs_.push_back(spec_of(record, true));
  }
  for (const data::Record& record : eval_records_) eval_specs_.push_back(spec_of(record, rlvr()));
  for (const auto* specs : {&train_specs_, &eval_specs_}) {
    for (const reward::RewardSpec& spec : *specs) runs_code = runs_code || spec.kind == reward::RewardSpec::Kind::kCode;
  }
  if (runs_code && !reward::bubblewrap_available()) {
    if (!config_.reward.code.allow_unsandboxed) {
      core::throw_bad_input("reward.code: the data has code to run and bubblewrap (bwrap) is not installed; "
                            "install it (make setup) or, on a machine you can throw away, set "
                            "reward.code.allow_unsandboxed: true");
    }
    spdlog::warn("!!! reward.code.allow_unsandboxed: model-written code will run WITHOUT a sandbox, "
                 "with this process's rights (only rlimits and a wall-clock kill) !!!");
  }

  const int64_t steps_per_epoch =
      (int64_t(train_records_.size()) + config_.rollout.batch_prompts - 1) / config_.rollout.batch_prompts;
  total_steps_ = config_.train.max_steps > 0 ? config_.train.max_steps
                                             : std::max<int64_t>(1, steps_per_epoch * config_.train.epochs);
  if (state_.step >= total_steps_) {
    core::throw_bad_input(resume_from_ + ": the checkpoint is at step " + std::to_string(state_.step) +
                          " and the job has " + std::to_string(total_steps_) +
                          " steps; raise train.max_steps to continue it");
  }
  if (state_.epoch >= 0 && state_.cursor > int64_t(train_records_.size())) {
    core::throw_bad_input(resume_from_ + ": data cursor " + std::to_string(state_.cursor) +
                          " is beyond the " + std::to_string(train_records_.size()) +
                          " records of " + config_.data.train_file);
  }
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      models_.student->parameters(),
      torch::optim::AdamWOptions(config_.optim.lr)
          .betas({config_.optim.beta1, config_.optim.beta2})
          .eps(config_.optim.eps)
          .weight_decay(config_.optim.weight_decay));
}

void Trainer::load_reference(const std::string& key, std::map<std::string, int64_t>& widths) {
  if (models_.references.count(key)) return;
  const std::string path = key == "student_init" ? config_.student.path : key;
  if (key != "student_init") check_same_vocabulary(*tokenizer_.tokenizer, config_.student.path, path);
  models_.references.emplace(key, load_frozen(path, config_.reference.dtype));
  widths[path] = models_.references.at(key)->config().vocab_size;
}

// After prepare_run (which seeds LibTorch): the optimizer, the generator and metrics.jsonl
// as they were at the checkpoint.
void Trainer::restore() {
  if (resume_from_.empty()) return;
  restore_optimizer_and_rng(resume_from_, *optimizer_);
  summary_.steps = state_.optimizer_steps;
  summary_.skipped_steps = state_.skipped_steps;
  summary_.resumed_from_step = state_.step;
  // Lines a killed run logged after its last checkpoint are dropped: they are redone.
  std::ifstream in(run_.metrics_path);
  std::string kept;
  std::string text;
  while (std::getline(in, text)) {
    const nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
    if (line.is_object() && line.value("step", int64_t(0)) <= state_.step) kept += text + "\n";
  }
  in.close();
  core::write_file_atomically(run_.metrics_path, kept);
  spdlog::info("resumed from {} (step {}, epoch {}, record {} of the epoch)", resume_from_,
               state_.step, state_.epoch, state_.cursor);
}

std::vector<size_t> Trainer::epoch_order(int64_t epoch) const {
  std::vector<size_t> order(train_records_.size());
  std::iota(order.begin(), order.end(), size_t(0));
  if (config_.data.shuffle) {
    core::Rng rng(seed_for(std::to_string(config_.run.seed) + "/epoch/" + std::to_string(epoch)));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.next_u64() % i]);
  }
  return order;
}

rollout::GenerationParams Trainer::generation_params(uint64_t seed) const {
  rollout::GenerationParams params;
  params.stop_token_ids = tokenizer_.info.stop_ids;
  params.seed = seed;
  params.pad_id = std::max<int64_t>(tokenizer_.info.pad_id, 0);
  params.vocab_limit = vocab_width_;
  return params;
}

torch::Tensor Trainer::logits(model::Transformer& model, const TrainingSequences& sequences,
                              int64_t begin, int64_t end) const {
  torch::Tensor result = target_logits(model, sequences, begin, end);
  if (vocab_width_ > 0) result = result.narrow(-1, 0, vocab_width_);
  return result.to(torch::kFloat);
}

const std::string& teacher_of(const core::Config& config, const data::Record& record) {
  return config.teachers.size() == 1 ? config.teachers.begin()->first : record.teacher;
}

std::pair<torch::Tensor, torch::Tensor> Trainer::score_rows(const ScoredBatch& scored, int64_t begin,
                                                            int64_t end, bool with_reference) const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> teacher_rows;
  std::vector<torch::Tensor> reference_rows;
  // Consecutive rows with the same teacher are scored together.
  for (int64_t r = begin; r < end;) {
    int64_t r_end = r + 1;
    const std::string& name = scored.row_teacher[size_t(r)];
    while (r_end < end && scored.row_teacher[size_t(r_end)] == name) ++r_end;
    model::Transformer teacher = models_.teachers.at(name);
    teacher_rows.push_back(logits(teacher, scored.sequences, r, r_end));
    if (with_reference) {
      const std::string& reference = models_.teacher_reference.at(name);
      if (reference.empty()) {
        reference_rows.push_back(teacher_rows.back());
      } else {
        model::Transformer reference_model = models_.references.at(reference);
        reference_rows.push_back(logits(reference_model, scored.sequences, r, r_end));
      }
    }
    r = r_end;
  }
  return {torch::cat(teacher_rows, 0), with_reference ? torch::cat(reference_rows, 0) : torch::Tensor()};
}

void Trainer::distillation_step(int64_t step, const std::vector<data::Record>& batch, nlohmann::json& line) {
  // Rollout: n samples per prompt with the current student.
  const auto rollout_start = Clock::now();
  std::vector<std::vector<int64_t>> prompts;
  for (const data::Record& record : batch) {
    prompts.push_back(data::encode_prompt(record, format_, *tokenizer_.tokenizer));
  }
  const rollout::RolloutBatch rollout_batch =
      sample(prompts, seed_for(std::to_string(config_.run.seed) + "/rollout/" + std::to_string(step)),
             config_.rollout.n, config_.rollout.max_new_tokens);
  const double rollout_seconds = seconds_since(rollout_start);

  ScoredBatch scored;
  scored.sequences = sequences_from_rollout(rollout_batch);
  scored.rollout_logprobs = rollout_batch.response_logprobs;
  const int64_t rows = scored.sequences.targets.size(0);
  const torch::Tensor& targets = scored.sequences.targets;
  const torch::Tensor& mask = scored.sequences.mask;
  const double total_tokens = std::max(1.0, mask.sum().item<double>());
  double correct = 0;  // responses' correctness where the data has answers: logged, not optimised
  int64_t judged = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const data::Record& record = batch[size_t(rollout_batch.group_ids[r].item<int64_t>())];
    scored.row_teacher.push_back(teacher_of(config_, record));
    scored.row_lambda.push_back(models_.teacher_lambda.at(scored.row_teacher.back()));
    if (record.answer.empty()) continue;
    correct += verify(record, response_text(rollout_batch, r, *tokenizer_.tokenizer));
    ++judged;
  }

  const std::string& objective = config_.gopd.objective;
  const int64_t epochs = std::max<int64_t>(1, config_.optim.ppo_epochs);
  const int64_t mini_batches = std::clamp<int64_t>(config_.optim.mini_batches, 1, rows);
  const bool several_updates = epochs * mini_batches > 1;
  const int64_t micro = config_.optim.micro_batch_size > 0 ? config_.optim.micro_batch_size : rows;
  const double temperature = config_.rollout.temperature;

  // Scoring, sampled-token objective: the teacher's and reference's log-probs of every response
  // token, and π_old when the weights move before the last update (otherwise π_old is the
  // detached log-prob of the update's own forward: the same number, one pass fewer).
  double scoring_seconds = 0;
  if (objective == "sampled_token") {
    bool with_reference = false;
    for (const std::string& teacher : scored.row_teacher) {
      with_reference = with_reference || !models_.teacher_reference.at(teacher).empty();
    }
    const auto scoring_start = Clock::now();
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> teacher, reference, old;
    for (int64_t begin = 0; begin < rows; begin += micro) {
      const int64_t end = std::min(rows, begin + micro);
      const torch::Tensor part = targets.slice(0, begin, end);
      const auto [teacher_logits, reference_logits] = score_rows(scored, begin, end, with_reference);
      teacher.push_back(kernels::token_logprobs(teacher_logits, part, temperature, false, impl_).logprobs);
      if (reference_logits.defined()) {
        reference.push_back(kernels::token_logprobs(reference_logits, part, temperature, false, impl_).logprobs);
      }
      if (several_updates) {
        old.push_back(kernels::token_logprobs(logits(models_.student, scored.sequences, begin, end), part,
                                              temperature, false, impl_).logprobs);
      }
    }
    scored.teacher = torch::cat(teacher, 0);
    if (!reference.empty()) scored.reference = torch::cat(reference, 0);
    if (several_updates) scored.old = torch::cat(old, 0);
    scoring_seconds += seconds_since(scoring_start);
  }
  if (scored.teacher.defined()) {
    // Per teacher (the routing, visible): responses scored and the estimate of
    // KL(π_old ‖ π_T) over its tokens, log π_rollout − log π_T.
    const torch::Tensor gap = ((scored.rollout_logprobs - scored.teacher) * mask).sum(1);
    const torch::Tensor tokens = mask.sum(1);
    std::map<std::string, std::array<double, 3>> per_teacher;  // gap sum, tokens, responses
    for (int64_t r = 0; r < rows; ++r) {
      std::array<double, 3>& sums = per_teacher[scored.row_teacher[size_t(r)]];
      sums[0] += gap[r].item<double>();
      sums[1] += tokens[r].item<double>();
      sums[2] += 1;
    }
    for (const auto& [name, sums] : per_teacher) {
      line["teacher/" + name + "/reverse_kl_estimate"] = sums[0] / std::max(sums[1], 1.0);
      line["teacher/" + name + "/responses"] = int64_t(sums[2]);
    }
  }

  double entropy_sum = 0;
  double update_scoring_seconds = 0;
  DistillBatchStats batch_stats(rows);
  torch::Tensor own_reference = torch::zeros({rows}, torch::kBool);  // (B)
  for (int64_t r = 0; r < rows; ++r) {
    own_reference[r] = !models_.teacher_reference.at(scored.row_teacher[size_t(r)]).empty();
  }
  const MicroBatchLoss loss_of = [&](int64_t begin, int64_t end) {
    const torch::Tensor part_targets = targets.slice(0, begin, end);
    const torch::Tensor part_mask = mask.slice(0, begin, end);
    const torch::Tensor student_logits = logits(models_.student, scored.sequences, begin, end);
    if (objective == "sampled_token") {
      const kernels::TokenLogprobs student =
          kernels::token_logprobs(student_logits, part_targets, temperature, true, impl_);
      objective::GopdTokenLogprobs logprobs;
      logprobs.teacher = scored.teacher.slice(0, begin, end);
      if (scored.reference.defined()) logprobs.reference = scored.reference.slice(0, begin, end);
      logprobs.old = scored.old.defined() ? scored.old.slice(0, begin, end) : student.logprobs.detach();
      objective::GopdLossOptions options;
      options.agg = agg_;
      options.importance_cap = config_.gopd.importance_cap;
      options.clipped = several_updates;
      const torch::Tensor lambda = torch::tensor(
          std::vector<double>(scored.row_lambda.begin() + begin, scored.row_lambda.begin() + end), torch::kFloat);
      entropy_sum += (student.entropy.detach() * part_mask).sum().item<double>();
      batch_stats.add(begin, end, logprobs, lambda, scored.rollout_logprobs.slice(0, begin, end),
                      own_reference.slice(0, begin, end), part_mask, config_.gopd.importance_cap);
      return objective::gopd_sampled_token_loss(student.logprobs, logprobs, lambda,
                                                scored.rollout_logprobs.slice(0, begin, end), part_mask,
                                                options);
    }
    // Vocabulary objectives: the teachers' logits are (rows, T, V) and are not kept between
    // micro-batches, so they are computed here (again on each pass with several updates).
    const double lambda = scored.row_lambda[size_t(begin)];
    for (int64_t r = begin; r < end; ++r) {
      if (scored.row_lambda[size_t(r)] != lambda) {
        core::throw_bad_input("gopd.objective " + objective +
                              ": teachers with different lambda in one micro-batch are not "
                              "supported yet; use optim.micro_batch_size: 1 or one lambda");
      }
    }
    const auto scoring_start = Clock::now();
    const auto [teacher_logits, reference_logits] =
        score_rows(scored, begin, end, !models_.teacher_reference.at(scored.row_teacher[size_t(begin)]).empty());
    update_scoring_seconds += seconds_since(scoring_start);
    {
      torch::NoGradGuard no_grad;
      entropy_sum += (kernels::token_logprobs(student_logits.detach(), part_targets, temperature, true, impl_)
                          .entropy * part_mask).sum().item<double>();
    }
    if (objective == "full_vocab") {
      return objective::gopd_full_vocab_loss(student_logits, teacher_logits, reference_logits, lambda,
                                             temperature, part_mask, agg_, impl_);
    }
    const objective::TopK top =
        objective::teacher_top_k(teacher_logits, reference_logits, config_.gopd.top_k, temperature);
    return objective::gopd_top_k_loss(student_logits, top.ids, top.teacher_logprobs, top.reference_logprobs,
                                      lambda, temperature, part_mask, agg_, impl_);
  };
  const auto update_start = Clock::now();
  update(step, mask, epochs, mini_batches, loss_of, line);
  batch_stats.put(line);
  scoring_seconds += update_scoring_seconds;
  const double update_seconds = seconds_since(update_start) - update_scoring_seconds;

  put_rollout_metrics(rollout_batch, rollout_seconds, entropy_sum, total_tokens * double(epochs), line);
  if (judged > 0) line["reward/accuracy"] = correct / double(judged);
  line["perf/scoring_s"] = scoring_seconds;
  line["perf/update_s"] = update_seconds;
  line["perf/scoring_tokens_per_s"] = total_tokens / std::max(scoring_seconds, 1e-9);
  line["perf/update_tokens_per_s"] = total_tokens * double(epochs) / std::max(update_seconds, 1e-9);
}

rollout::RolloutBatch Trainer::sample(const std::vector<std::vector<int64_t>>& prompts, uint64_t seed,
                                      int64_t n, int64_t max_new_tokens) const {
  rollout::GenerationParams params = generation_params(seed);
  params.sampling.temperature = config_.rollout.temperature;
  params.sampling.top_p = config_.rollout.top_p;
  params.sampling.top_k = config_.rollout.top_k;
  params.sampling.min_p = config_.rollout.min_p;
  params.n = n;
  params.max_new_tokens = max_new_tokens;
  params.prefill_chunk = config_.rollout.prefill_chunk;
  torch::NoGradGuard no_grad;
  model::Transformer student = models_.student;
  student->eval();
  rollout::RolloutBatch batch = rollout::generate(student, prompts, params);
  student->train();
  return batch;
}

torch::Tensor Trainer::response_logprobs(model::Transformer& model, const TrainingSequences& sequences) const {
  return scoring::response_logprobs(model, sequences.input_ids, sequences.attention_mask, sequences.targets,
                                    sequences.prompt_length, config_.rollout.temperature,
                                    config_.optim.micro_batch_size, vocab_width_, impl_);
}

std::vector<std::vector<double>> Trainer::prompt_logprobs(model::Transformer& model,
                                                          const std::vector<std::vector<int64_t>>& prompts) const {
  return scoring::prompt_logprobs(model, prompts, std::max<int64_t>(tokenizer_.info.pad_id, 0),
                                  config_.optim.micro_batch_size, vocab_width_);
}

void Trainer::rlvr_step(int64_t step, const std::vector<size_t>& indices, nlohmann::json& line) {
  const int64_t n = config_.rollout.n;
  const int64_t groups = int64_t(indices.size());
  const auto rollout_start = Clock::now();
  std::vector<std::vector<int64_t>> prompts;
  for (const size_t index : indices) {
    prompts.push_back(data::encode_prompt(train_records_[index], format_, *tokenizer_.tokenizer));
  }
  const rollout::RolloutBatch rollout_batch =
      sample(prompts, seed_for(std::to_string(config_.run.seed) + "/rollout/" + std::to_string(step)), n,
             config_.rollout.max_new_tokens);
  const double rollout_seconds = seconds_since(rollout_start);
  const int64_t row_count = groups * n;

  // Rewards are verified on their workers while the log-probs below are computed.
  RlvrRows rows;
  std::vector<reward::RewardJob> jobs;
  for (int64_t r = 0; r < row_count; ++r) {
    const int64_t group = rollout_batch.group_ids[r].item<int64_t>();
    rows.prompt.push_back(prompts[size_t(group)]);
    rows.response.push_back(response_tokens(rollout_batch, r));
    rows.rollout_logprobs.push_back(response_logprobs_of(rollout_batch, r));
    jobs.push_back({&train_specs_[indices[size_t(group)]], tokenizer_.tokenizer->decode(rows.response.back(), true)});
  }
  rows.roll_prompt = rows.prompt;
  rows.log_weight.assign(size_t(row_count), 0.0);
  auto pending = reward::score_async(std::move(jobs), config_.reward);

  const int64_t epochs = std::max<int64_t>(1, config_.optim.ppo_epochs);
  const int64_t mini_batches = std::clamp<int64_t>(config_.optim.mini_batches, 1, row_count);
  const bool several_updates = epochs * mini_batches > 1;
  const int64_t pad = std::max<int64_t>(tokenizer_.info.pad_id, 0);
  TrainingSequences sequences = training_sequences(rows, pad);
  torch::Tensor reference;  // (B, T) log π_ref(y_t), with a KL penalty
  // (B, T) log π_old(y_t | x): the proximal policy of the clip; undefined = the update's own
  // forward (one update: θ = θ_old). crpo_literal: log π_old(y_t | x_roll) + log w̃.
  torch::Tensor old;
  torch::Tensor old_train;   // (B, T) crpo_literal: log π_old(y_t | x_roll), for the importance weights
  torch::Tensor row_weight;  // (B) crpo: 1/w̃ of each row (lens.h); undefined = 1
  auto scoring_start = Clock::now();
  if (!kl_reference_.empty()) reference = response_logprobs(models_.references.at(kl_reference_), sequences);
  if (several_updates) old = response_logprobs(models_.student, sequences);
  double scoring_seconds = seconds_since(scoring_start);
  const auto wait_start = Clock::now();
  const std::vector<reward::RewardResult> results = pending.get();
  const double reward_wait_seconds = seconds_since(wait_start);
  double format_sum = 0;
  for (const reward::RewardResult& result : results) {
    rows.reward.push_back(result.reward);
    rows.correct.push_back(result.correct);
    format_sum += result.format;
  }
  const torch::Tensor group_ids = rollout_batch.group_ids;
  for (const auto& [key, value] :
       objective::group_outcome_metrics(torch::tensor(rows.correct, torch::kFloat), group_ids)) {
    line[key] = value;
  }
  line["reward/mean"] = std::accumulate(rows.reward.begin(), rows.reward.end(), 0.0) / double(row_count);
  if (config_.reward.format_weight > 0) line["reward/format_mean"] = format_sum / double(row_count);

  if (config_.algorithm == "lens") {
    const auto lens_start = Clock::now();
    const int64_t transferred = lens_transfer(step, indices, prompts, rows, line);
    if (transferred > 0) {
      // The rebuilt batch: transferred responses conditioned on the original prompt x.
      sequences = training_sequences(rows, pad);
      if (!kl_reference_.empty()) reference = response_logprobs(models_.references.at(kl_reference_), sequences);
      if (config_.lens.weight_scheme == "crpo_literal") {
        // ρ = π_θ(y | x) / (w̃ · π_old(y | x_roll)) inside the clip, as written.
        old_train = response_logprobs(models_.student, rollout_sequences(rows, pad));
        old = calibrated_old_logprobs(old_train, rows);
      } else {
        // The clip on π_θ(y | x) / π_old(y | x); the behaviour correction against the
        // sampler's log-probs under x_roll and 1/w̃ multiply from outside (lens.h).
        old = several_updates ? response_logprobs(models_.student, sequences) : torch::Tensor();
        if (config_.lens.weight_scheme == "crpo") row_weight = calibration_weights(rows);
      }
    }
    line["perf/lens_s"] = seconds_since(lens_start);
    for (const auto& [key, value] :
         objective::group_outcome_metrics(torch::tensor(rows.correct, torch::kFloat), group_ids)) {
      if (key == "grpo/zero_reward_prompt_fraction") line["lens/zero_reward_prompt_fraction"] = value;
    }
  }
  objective::GroupAdvantageOptions advantage_options;
  advantage_options.std_normalize = config_.grpo.std_normalize;
  advantage_options.epsilon = config_.grpo.epsilon;
  const torch::Tensor advantages =
      objective::group_advantages(torch::tensor(rows.reward, torch::kFloat), group_ids, advantage_options);

  const torch::Tensor& targets = sequences.targets;
  const torch::Tensor& mask = sequences.mask;
  const torch::Tensor sampler = train::rollout_logprobs(rows, targets.size(1));  // (B, T)
  const double total_tokens = std::max(1.0, mask.sum().item<double>());
  objective::GrpoLossOptions options;
  options.policy.agg = agg_;
  options.policy.clip_low = config_.grpo.clip_low;
  options.policy.clip_high = config_.grpo.clip_high;
  options.policy.clip_ratio_c = config_.grpo.clip_ratio_c;
  options.policy.clipped = true;  // at ρ = 1 the same gradient as the plain form
  options.kl_beta = config_.grpo.kl_beta;
  double entropy_sum = 0;
  ImportanceWeightStats importance;
  const MicroBatchLoss loss_of = [&](int64_t begin, int64_t end) {
    const kernels::TokenLogprobs student =
        kernels::token_logprobs(logits(models_.student, sequences, begin, end), targets.slice(0, begin, end),
                                config_.rollout.temperature, true, impl_);
    const torch::Tensor part_mask = mask.slice(0, begin, end);
    entropy_sum += (student.entropy.detach() * part_mask).sum().item<double>();
    const torch::Tensor part_old = old.defined() ? old.slice(0, begin, end) : student.logprobs.detach();
    // w_t = min(exp(log π_old_train − log π_rollout), C): the sampler/trainer correction of the
    // distillation path, which for a transferred row also corrects for x_roll ≠ x.
    const torch::Tensor part_train = old_train.defined() ? old_train.slice(0, begin, end) : part_old;
    torch::Tensor weights = objective::truncated_importance_weights(part_train, sampler.slice(0, begin, end),
                                                                    config_.grpo.importance_cap);  // (b, T)
    importance.add(weights, part_mask);
    if (row_weight.defined()) weights = weights * row_weight.slice(0, begin, end).unsqueeze(1);
    return objective::grpo_loss(student.logprobs, part_old, advantages.slice(0, begin, end), weights,
                                reference.defined() ? reference.slice(0, begin, end) : torch::Tensor(), part_mask,
                                options);
  };
  const auto update_start = Clock::now();
  update(step, mask, epochs, mini_batches, loss_of, line);
  importance.put(line);
  if (row_weight.defined()) line["lens/row_weight_mean"] = row_weight.mean().item<double>();
  const double update_seconds = seconds_since(update_start);

  put_rollout_metrics(rollout_batch, rollout_seconds, entropy_sum, total_tokens * double(epochs), line);
  line["perf/scoring_s"] = scoring_seconds;
  line["perf/reward_wait_s"] = reward_wait_seconds;
  line["perf/update_s"] = update_seconds;
  line["perf/update_tokens_per_s"] = total_tokens * double(epochs) / std::max(update_seconds, 1e-9);
}

int64_t Trainer::lens_transfer(int64_t step, const std::vector<size_t>& indices,
                               const std::vector<std::vector<int64_t>>& prompts, RlvrRows& rows,
                               nlohmann::json& line) {
  const core::LensConfig& lens = config_.lens;
  const int64_t n = config_.rollout.n;
  const int64_t groups = int64_t(indices.size());
  const auto group_values = [&](const std::vector<double>& values, int64_t group) {
    return std::vector<double>(values.begin() + group * n, values.begin() + (group + 1) * n);
  };
  // 1. Low-success prompts: ā < τ.
  std::vector<int64_t> low;
  for (int64_t g = 0; g < groups; ++g) {
    const std::vector<double> correct = group_values(rows.correct, g);
    const double successes = double(std::count_if(correct.begin(), correct.end(), [](double c) { return c >= 1.0; }));
    if (successes / double(n) < lens.tau) low.push_back(g);
  }
  line["lens/low_success_fraction"] = double(low.size()) / double(groups);
  // 2. Interference scores and purification.
  std::vector<std::vector<int64_t>> low_prompts;
  for (const int64_t g : low) low_prompts.push_back(prompts[size_t(g)]);
  std::vector<int64_t> purified_groups;
  std::vector<lens::Purification> purifications;
  std::vector<std::vector<double>> purified_scores;
  if (!low.empty()) {
    const std::vector<std::vector<double>> policy = prompt_logprobs(models_.student, low_prompts);
    const std::vector<std::vector<double>> reference =
        prompt_logprobs(models_.references.at(lens_reference_), low_prompts);
    for (size_t k = 0; k < low.size(); ++k) {
      const int64_t g = low[k];
      const std::vector<int64_t>& ids = prompts[size_t(g)];
      const auto [first, last] = data::user_text_span(train_records_[indices[size_t(g)]], format_,
                                                      *tokenizer_.tokenizer, ids);
      std::vector<bool> eligible(ids.size(), false);
      for (int64_t j = first; j < last; ++j) eligible[size_t(j)] = true;
      std::vector<double> scores = lens::interference_scores(policy[k], reference[k]);
      lens::Purification purification = lens::purify(ids, scores, lens.gamma, eligible, 0.0);
      if (purification.removed_positions.empty() || purification.kept_ids.empty()) continue;
      purified_groups.push_back(g);
      purifications.push_back(std::move(purification));
      purified_scores.push_back(std::move(scores));
    }
  }
  const int64_t purified = int64_t(purified_groups.size());
  line["lens/purified_fraction"] = double(purified) / double(groups);
  double removed = 0;
  for (const lens::Purification& purification : purifications) removed += double(purification.removed_positions.size());
  line["lens/tokens_removed"] = purified > 0 ? removed / double(purified) : 0.0;
  if (purified == 0) {
    line["lens/transferred"] = 0;
    return 0;
  }
  // 3. n rollouts on each purified prompt, verified.
  std::vector<std::vector<int64_t>> purified_prompts;
  for (const lens::Purification& purification : purifications) purified_prompts.push_back(purification.kept_ids);
  const rollout::RolloutBatch purified_batch =
      sample(purified_prompts, seed_for(std::to_string(config_.run.seed) + "/lens/" + std::to_string(step)), n,
             config_.rollout.max_new_tokens);
  std::vector<reward::RewardJob> jobs;
  std::vector<std::vector<int64_t>> purified_responses;
  std::vector<std::vector<float>> purified_logprobs;
  for (int64_t r = 0; r < purified * n; ++r) {
    const int64_t k = purified_batch.group_ids[r].item<int64_t>();
    purified_responses.push_back(response_tokens(purified_batch, r));
    purified_logprobs.push_back(response_logprobs_of(purified_batch, r));
    jobs.push_back({&train_specs_[indices[size_t(purified_groups[size_t(k)])]],
                    tokenizer_.tokenizer->decode(purified_responses.back(), true)});
  }
  const std::vector<reward::RewardResult> results = reward::score_async(std::move(jobs), config_.reward).get();
  std::vector<double> purified_correct;
  for (const reward::RewardResult& result : results) purified_correct.push_back(result.correct);
  // 4. Transfer, and the CRPO weights of the rebuilt groups.
  int64_t transferred = 0;
  int64_t helped = 0;
  int64_t rebuilt_groups = 0;
  int64_t all_correct = 0;  // rebuilt groups left without a failure: all their advantages are 0
  double before_sum = 0;
  double after_sum = 0;
  const bool dump = lens.dump_every > 0 && (step + 1) % lens.dump_every == 0;
  std::string dump_lines;
  for (int64_t k = 0; k < purified; ++k) {
    const int64_t g = purified_groups[size_t(k)];
    const std::vector<double> original = group_values(rows.correct, g);
    const lens::TransferPlan plan =
        lens::plan_transfer(original, group_values(purified_correct, k), lens.tau, lens.max_replace,
                            lens.keep_failure);
    before_sum += plan.success_before;
    after_sum += plan.success_after;
    helped += plan.helped ? 1 : 0;
    if (!plan.replacements.empty()) {
      PurifiedGroup group;
      group.prompt = purified_prompts[size_t(k)];
      for (int64_t i = k * n; i < (k + 1) * n; ++i) {
        group.responses.push_back(purified_responses[size_t(i)]);
        group.reward.push_back(results[size_t(i)].reward);
        group.correct.push_back(results[size_t(i)].correct);
        group.rollout_logprobs.push_back(purified_logprobs[size_t(i)]);
      }
      transferred += apply_transfer(rows, g, n, plan,
                                    lens::crpo_weights(original, plan, lens.weight_scheme == "uniform"), group);
      const std::vector<double> rebuilt = group_values(rows.correct, g);
      if (std::all_of(rebuilt.begin(), rebuilt.end(), [](double c) { return c >= 1.0; })) ++all_correct;
      ++rebuilt_groups;
    }
    if (dump) {
      const data::Record& record = train_records_[indices[size_t(g)]];
      const std::vector<int64_t>& ids = prompts[size_t(g)];
      nlohmann::json removed_tokens = nlohmann::json::array();
      for (const int64_t position : purifications[size_t(k)].removed_positions) {
        const int64_t id = ids[size_t(position)];
        removed_tokens.push_back({{"position", position},
                                  {"id", id},
                                  {"text", tokenizer_.tokenizer->decode({id})},
                                  {"score", purified_scores[size_t(k)][size_t(position)]}});
      }
      dump_lines += nlohmann::json({{"step", step + 1},
                                    {"id", record.id},
                                    {"prompt", tokenizer_.tokenizer->decode(ids)},
                                    {"purified_prompt", tokenizer_.tokenizer->decode(purified_prompts[size_t(k)])},
                                    {"removed", removed_tokens},
                                    {"success_before", plan.success_before},
                                    {"success_after", plan.success_after},
                                    {"transferred", int64_t(plan.replacements.size())}})
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                    "\n";
    }
  }
  if (dump) {
    std::ofstream out(run_.path + "/lens_dump.jsonl", std::ios::app);
    out << dump_lines;
    if (!out) core::throw_runtime_failure(run_.path + "/lens_dump.jsonl: cannot write");
  }
  line["lens/success_before"] = before_sum / double(purified);
  line["lens/success_after"] = after_sum / double(purified);
  line["lens/helped_fraction"] = double(helped) / double(purified);
  line["lens/transferred"] = transferred;
  line["lens/rebuilt_groups"] = rebuilt_groups;
  line["lens/all_correct_rebuilt_groups"] = all_correct;
  line["lens/purified_rollout_tokens"] = purified_batch.generated_tokens;
  return transferred;
}

void Trainer::sft_step(int64_t step, const std::vector<data::Record>& batch, nlohmann::json& line) {
  const auto update_start = Clock::now();
  const TrainingSequences sequences = sft_sequences(batch, *tokenizer_.tokenizer, tokenizer_.info, format_);
  const MicroBatchLoss loss_of = [&](int64_t begin, int64_t end) {
    return objective::sft_loss(logits(models_.student, sequences, begin, end),
                               sequences.targets.slice(0, begin, end), sequences.mask.slice(0, begin, end),
                               agg_, impl_);
  };
  update(step, sequences.mask, 1, 1, loss_of, line);
  const double seconds = seconds_since(update_start);
  line["perf/update_s"] = seconds;
  line["perf/update_tokens_per_s"] = sequences.mask.sum().item<double>() / std::max(seconds, 1e-9);
}

void Trainer::update(int64_t step, const torch::Tensor& mask, int64_t epochs, int64_t mini_batches,
                     const MicroBatchLoss& loss_of, nlohmann::json& line) {
  const int64_t rows = mask.size(0);
  const int64_t micro = config_.optim.micro_batch_size > 0 ? config_.optim.micro_batch_size : rows;
  const double updates = double(epochs * mini_batches);
  MetricAccumulator metrics;
  double grad_norm_sum = 0;
  int64_t applied = 0;
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    for (int64_t part = 0; part < mini_batches; ++part) {
      // Mini-batch `part`: a contiguous slice of the rows (the rows of one prompt stay together).
      const int64_t first = rows * part / mini_batches;
      const int64_t last = rows * (part + 1) / mini_batches;
      // Each micro-batch's loss is weighted by its share of what the mini-batch's loss averages
      // over (tokens, or sequences with at least one token), so that accumulation gives the
      // loss of the whole mini-batch in one piece.
      const bool by_tokens = agg_ == objective::LossAgg::token_mean;
      const auto units = [&](int64_t begin, int64_t end) {
        const torch::Tensor part = mask.slice(0, begin, end);
        return by_tokens ? part.sum().item<double>() : (part.sum(1) > 0).sum().item<double>();
      };
      const double part_units = std::max(1.0, units(first, last));
      optimizer_->zero_grad();
      double loss = 0;
      for (int64_t begin = first; begin < last; begin += micro) {
        const int64_t end = std::min(last, begin + micro);
        const double share = units(begin, end) / part_units;
        const objective::LossOutput output = loss_of(begin, end);
        (output.loss * share).backward();
        loss += share * output.loss.item<double>();
        metrics.add(output.metrics, share / updates);
      }
      double grad_norm = 0;
      if (apply_update(step, loss, grad_norm)) ++applied;
      grad_norm_sum += grad_norm;
    }
  }
  metrics.put(line);
  line["optim/lr"] = learning_rate(config_.optim, step, total_steps_);
  line["optim/grad_norm"] = grad_norm_sum / updates;
  line["optim/updates"] = applied;
  if (applied < int64_t(updates)) line["optim/skipped"] = int64_t(updates) - applied;
}

bool Trainer::apply_update(int64_t step, double loss, double& grad_norm) {
  const double lr = learning_rate(config_.optim, step, total_steps_);
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
  const double max_norm = config_.optim.grad_clip > 0 ? config_.optim.grad_clip
                                                      : std::numeric_limits<double>::infinity();
  grad_norm = torch::nn::utils::clip_grad_norm_(models_.student->parameters(), max_norm);
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    optimizer_->zero_grad();
    ++state_.nonfinite_in_a_row;
    ++summary_.skipped_steps;
    spdlog::warn("step {}: non-finite {} — update skipped ({} in a row)", step + 1,
                 std::isfinite(loss) ? "gradient norm" : "loss", state_.nonfinite_in_a_row);
    if (state_.nonfinite_in_a_row >= config_.train.max_nonfinite_steps) {
      core::throw_runtime_failure("stopping: " + std::to_string(state_.nonfinite_in_a_row) +
                                  " updates in a row had a non-finite loss or gradient norm "
                                  "(train.max_nonfinite_steps); lower optim.lr or check the data");
    }
    return false;
  }
  state_.nonfinite_in_a_row = 0;
  optimizer_->step();
  ++summary_.steps;
  return true;
}

double Trainer::evaluate(const std::string& label) {
  if (eval_records_.empty()) return -1;
  const auto start = Clock::now();
  std::vector<std::vector<int64_t>> prompts;
  for (const data::Record& record : eval_records_) {
    prompts.push_back(data::encode_prompt(record, format_, *tokenizer_.tokenizer));
  }
  rollout::GenerationParams params = generation_params(seed_for(std::to_string(config_.run.seed) + "/eval"));
  params.sampling.temperature = config_.eval.temperature;
  params.sampling.top_p = config_.eval.top_p;
  params.n = config_.eval.samples;
  params.max_new_tokens = config_.eval.max_new_tokens;
  std::vector<reward::RewardJob> jobs;
  const int64_t chunk = std::max<int64_t>(1, config_.rollout.batch_prompts);
  {
    torch::NoGradGuard no_grad;
    models_.student->eval();
    for (size_t begin = 0; begin < prompts.size(); begin += size_t(chunk)) {
      const size_t end = std::min(prompts.size(), begin + size_t(chunk));
      const std::vector<std::vector<int64_t>> part(prompts.begin() + long(begin), prompts.begin() + long(end));
      const rollout::RolloutBatch batch = rollout::generate(models_.student, part, params);
      for (int64_t r = 0; r < batch.response_ids.size(0); ++r) {
        jobs.push_back({&eval_specs_[begin + size_t(batch.group_ids[r].item<int64_t>())],
                        response_text(batch, r, *tokenizer_.tokenizer)});
      }
    }
    models_.student->train();
  }
  // Correctness only: the format reward is a training signal, not accuracy.
  double correct = 0;
  for (const reward::RewardResult& result : reward::score_async(jobs, config_.reward).get()) correct += result.correct;
  const double accuracy = jobs.empty() ? 0.0 : correct / double(jobs.size());
  spdlog::info("eval ({}): avg@{} = {:.4f} on {} prompts ({:.1f} s)", label, config_.eval.samples,
               accuracy, eval_records_.size(), seconds_since(start));
  return accuracy;
}

void Trainer::save(int64_t step) {
  state_.step = step;
  state_.optimizer_steps = summary_.steps;
  state_.skipped_steps = summary_.skipped_steps;
  const std::string checkpoints = run_.path + "/checkpoints";
  summary_.final_model = save_checkpoint(checkpoints, state_, models_.student, *optimizer_, config_.student.path);
  spdlog::info("saved {}", summary_.final_model);
  prune_checkpoints(checkpoints, config_.train.keep_last);
}

TrainSummary Trainer::run() {
  // Everything that can be wrong with the job (models, tokenizers, datasets, the checkpoint to
  // resume) is found before the run directory is created, so a bad job leaves nothing behind.
  load();
  run_ = core::prepare_run(config_);
  restore();
  summary_.run_directory = run_.path;
  core::MetricsSink sink(run_.metrics_path);
  spdlog::info("{}: {} steps, {} prompts/step × {} samples, objective {}, kernels {}",
               config_.algorithm, total_steps_, config_.rollout.batch_prompts, config_.rollout.n,
               config_.algorithm == "sft" ? "sft" : config_.gopd.objective, config_.kernels.impl);
  if (config_.train.eval_every > 0 && state_.step == 0) {
    const double initial_accuracy = evaluate("step 0");
    if (initial_accuracy >= 0) sink.write({{"step", 0}, {"eval/accuracy", initial_accuracy}});
  }

  std::vector<size_t> order = state_.epoch >= 0 ? epoch_order(state_.epoch) : std::vector<size_t>();
  if (state_.epoch < 0) state_.cursor = 0;
  for (int64_t step = state_.step; step < total_steps_; ++step) {
    if (state_.epoch < 0 || state_.cursor >= int64_t(order.size())) {
      order = epoch_order(++state_.epoch);
      state_.cursor = 0;
    }
    std::vector<size_t> indices;
    std::vector<data::Record> batch;
    while (int64_t(batch.size()) < config_.rollout.batch_prompts && state_.cursor < int64_t(order.size())) {
      indices.push_back(order[size_t(state_.cursor++)]);
      batch.push_back(train_records_[indices.back()]);
    }
    const auto step_start = Clock::now();
    nlohmann::json line = {{"step", step + 1}, {"epoch", state_.epoch}};
    if (config_.algorithm == "sft") {
      sft_step(step, batch, line);
    } else if (rlvr()) {
      rlvr_step(step, indices, line);
    } else {
      distillation_step(step, batch, line);
    }
    line["perf/step_s"] = seconds_since(step_start);
    line["perf/peak_rss_mb"] = peak_rss_mb();
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
      save(step + 1);
    }
  }
  save(total_steps_);
  summary_.final_eval_accuracy = evaluate("final");
  if (summary_.final_eval_accuracy >= 0) {
    sink.write({{"step", total_steps_}, {"eval/accuracy", summary_.final_eval_accuracy}});
  }
  return summary_;
}

}  // namespace

TrainSummary run_training(const core::Config& config, const TrainOptions& options) {
  Trainer trainer(config, options);
  return trainer.run();
}

}  // namespace gopd::train
