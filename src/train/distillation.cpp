// The opd / gopd step (see steps.h). π_old is the trainer's own recomputation: taken from the
// update's forward itself when there is a single update per batch (the weights have not moved
// yet, so it is the same number), from a no-grad pass before the updates otherwise.
#include <array>
#include <map>

#include "gopd/core/error.h"
#include "gopd/objective/gopd_loss.h"
#include "gopd/reward/math_verifier.h"
#include "gopd/reward/task_verifier.h"
#include "gopd/train/batch_stats.h"
#include "gopd/train/steps.h"

namespace gopd::train {
namespace {

// Correctness of a response to a record with an answer: the task checker when the record names
// a task, the math verifier otherwise (the same rule as `gopd eval`). Logged, not optimised.
double verify(const data::Record& record, const std::string& response) {
  const auto task = record.extra.find("task");
  if (task != record.extra.end() && task->is_string()) {
    return reward::verify_task(task->get<std::string>(), response, record.answer).reward;
  }
  return reward::verify_math(response, record.answer).reward;
}

// The rollout as the scoring stage receives it: its sequences, each row routed to its record's
// teacher; "reward/accuracy" where the records have answers.
scoring::ScoredBatch route(const Job& job, const rollout::RolloutBatch& rollout_batch,
                           const std::vector<data::Record>& batch, nlohmann::json& line) {
  scoring::ScoredBatch scored;
  scored.sequences = scoring::sequences_from_rollout(rollout_batch);
  scored.rollout_logprobs = rollout_batch.response_logprobs;
  std::vector<size_t> row_teacher;
  double correct = 0;
  int64_t judged = 0;
  for (int64_t r = 0; r < rollout_batch.response_ids.size(0); ++r) {
    const data::Record& record = batch[size_t(rollout_batch.group_ids[r].item<int64_t>())];
    row_teacher.push_back(job.teachers.teacher_of(record));
    if (record.answer.empty()) continue;
    correct += verify(record, response_text(rollout_batch, r, *job.tokenizer.tokenizer));
    ++judged;
  }
  scored.routing = job.teachers.route(row_teacher);
  if (judged > 0) put_ratio(line, "reward/accuracy", correct, double(judged));
  return scored;
}

// Per teacher (the routing, visible): responses scored and the estimate of KL(π_old ‖ π_T)
// over its tokens, log π_rollout − log π_T.
void put_teacher_metrics(const Job& job, const scoring::ScoredBatch& scored, nlohmann::json& line) {
  const torch::Tensor& mask = scored.sequences.mask;
  const torch::Tensor gap = ((scored.rollout_logprobs - scored.teacher) * mask).sum(1);
  const torch::Tensor tokens = mask.sum(1);
  std::map<std::string, std::array<double, 3>> per_teacher;  // gap sum, tokens, responses
  for (int64_t r = 0; r < mask.size(0); ++r) {
    std::array<double, 3>& sums =
        per_teacher[job.teachers.at(scored.routing.teacher[size_t(r)]).name];
    sums[0] += gap[r].item<double>();
    sums[1] += tokens[r].item<double>();
    sums[2] += 1;
  }
  for (const auto& [name, sums] : per_teacher) {
    put_ratio(line, "teacher/" + name + "/reverse_kl_estimate", sums[0], std::max(sums[1], 1.0));
    line["teacher/" + name + "/responses"] = int64_t(sums[2]);
  }
}

scoring::ScoredBatch to_device(scoring::ScoredBatch scored, const torch::Device& device) {
  const auto move = [&device](torch::Tensor& tensor) {
    if (tensor.defined()) tensor = tensor.to(device);
  };
  scored.sequences = scored.sequences.to(device);
  for (torch::Tensor* tensor : {&scored.rollout_logprobs, &scored.routing.own_reference,
                                &scored.teacher, &scored.reference, &scored.old}) {
    move(*tensor);
  }
  return scored;
}

// The G-OPD loss of a micro-batch, in the objective the job chose; keeps the batch statistics.
class DistillationLoss {
 public:
  DistillationLoss(const Job& job, const scoring::ScoredBatch& scored, const UpdateShape& shape)
      : stats(scored.sequences.mask.size(0)), job_(job), scored_(scored), shape_(shape) {}

  objective::LossOutput operator()(int64_t begin, int64_t end) {
    const kernels::LogitHead student = job_.student_head(scored_.sequences, begin, end);
    return job_.objective == DistillObjective::sampled_token ? sampled_token(student, begin, end)
                                                             : vocabulary(student, begin, end);
  }

  double entropy_sum = 0;
  double scoring_seconds = 0;  // the vocabulary objectives' teacher passes, made during the update
  DistillBatchStats stats;

 private:
  objective::LossOutput sampled_token(const kernels::LogitHead& student_head, int64_t begin,
                                      int64_t end) {
    const core::Config& config = job_.cfg();
    const torch::Tensor part_mask = scored_.sequences.mask.slice(0, begin, end);
    const torch::Tensor rollout = scored_.rollout_logprobs.slice(0, begin, end);
    const kernels::TokenLogprobs student =
        kernels::token_logprobs(student_head, scored_.sequences.targets.slice(0, begin, end),
                                config.rollout.temperature, true, job_.impl);
    objective::GopdTokenLogprobs logprobs;
    logprobs.teacher = scored_.teacher.slice(0, begin, end);
    if (scored_.reference.defined()) logprobs.reference = scored_.reference.slice(0, begin, end);
    logprobs.old =
        scored_.old.defined() ? scored_.old.slice(0, begin, end) : student.logprobs.detach();
    objective::GopdLossOptions options;
    options.agg = job_.agg;
    options.importance_cap = config.gopd.importance_cap;
    options.clipped = shape_.several_updates();
    const torch::Tensor lambda = scored_.routing.lambda_of(begin, end).to(job_.device);
    entropy_sum += (student.entropy.detach() * part_mask).sum().item<double>();
    stats.add(begin, end, logprobs, lambda, rollout,
              scored_.routing.own_reference.slice(0, begin, end), part_mask,
              config.gopd.importance_cap);
    return objective::gopd_sampled_token_loss(student.logprobs, logprobs, lambda, rollout,
                                              part_mask, options);
  }

  // Full-vocabulary and top-k: the teachers' hidden states of the micro-batch are computed here
  // (again on each pass with several updates) and their logits taken chunk by chunk with the
  // student's, so nothing of size tokens × vocabulary outlives a chunk.
  objective::LossOutput vocabulary(const kernels::LogitHead& student, int64_t begin, int64_t end) {
    const core::Config& config = job_.cfg();
    const double temperature = config.rollout.temperature;
    const torch::Tensor part_targets = scored_.sequences.targets.slice(0, begin, end);
    const torch::Tensor part_mask = scored_.sequences.mask.slice(0, begin, end);
    const auto scoring_start = Clock::now();
    const std::vector<objective::TeacherHeads> teachers =
        job_.teachers.heads(scored_.sequences, scored_.routing, begin, end, true,
                            job_.objective == DistillObjective::top_k ? config.gopd.top_k : 0,
                            temperature);
    scoring_seconds += seconds_since(scoring_start);
    objective::LossOutput out =
        job_.objective == DistillObjective::full_vocab
            ? objective::gopd_full_vocab_loss(student, teachers, temperature, part_mask, job_.agg,
                                              job_.impl)
            : objective::gopd_top_k_loss(student, teachers, config.gopd.top_k, temperature,
                                         part_mask, job_.agg, job_.impl);
    {
      torch::NoGradGuard no_grad;
      const kernels::LogitHead frozen = kernels::frozen_head(
          student.hidden, student.weight, student.compute_dtype, student.chunk_rows);
      entropy_sum +=
          (kernels::token_logprobs(frozen, part_targets, temperature, true, job_.impl).entropy *
           part_mask)
              .sum()
              .item<double>();
    }
    return out;
  }

  const Job& job_;
  const scoring::ScoredBatch& scored_;
  const UpdateShape shape_;
};

}  // namespace

void distillation_step(StepContext& context, int64_t step, const std::vector<data::Record>& batch,
                       nlohmann::json& line) {
  Job& job = context.job;
  const core::Config& config = job.cfg();
  // Rollout: n samples per prompt with the current student.
  // Served teachers (sampled-token objective) score each response as soon as it is finished.
  const auto rollout_start = Clock::now();
  const std::vector<std::vector<int64_t>> prompts = encode_prompts(job, batch);
  rollout::RowFinished prefetch;
  if (job.objective == DistillObjective::sampled_token) {
    std::vector<size_t> prompt_teacher;
    for (const data::Record& record : batch) prompt_teacher.push_back(job.teachers.teacher_of(record));
    prefetch = job.teachers.prefetcher(prompt_teacher, prompts, config.rollout.n);
  }
  const rollout::RolloutBatch rollout_batch =
      sample(job, prompts, job_seed(job, "rollout/" + std::to_string(step)), config.rollout.n,
             context.positions, prefetch);
  const double rollout_seconds = seconds_since(rollout_start);
  mark_gpu_phase(job, "rollout", line);

  // Scoring. Sampled-token objective: the teachers' and references' log-probs of every response
  // token now, and π_old when the weights move before the last update.
  scoring::ScoredBatch scored = route(job, rollout_batch, batch, line);
  UpdateShape shape = update_shape(config.optim, scored.sequences.targets.size(0),
                                   scored.sequences.input_ids.size(1));
  align_mini_batches(context, config.rollout.n, shape);
  double scoring_seconds = 0;
  if (job.objective == DistillObjective::sampled_token) {
    const auto scoring_start = Clock::now();
    job.teachers.score_tokens(scored, shape.micro, config.rollout.temperature, job.impl);
    if (shape.several_updates()) {
      scored.old = job.student_scores->response_logprobs(
          scored.sequences, config.rollout.temperature, shape.micro, job.impl);
    }
    scoring_seconds += seconds_since(scoring_start);
    if (job.teachers.any_served()) line["perf/served_prefetched_rows"] = job.teachers.prefetched_rows();
    put_teacher_metrics(job, scored, line);
    mark_gpu_phase(job, "scoring", line);
  }

  // Objective and update, on the student's device: the batch crosses over once, here.
  scored = to_device(std::move(scored), job.device);
  DistillationLoss loss(job, scored, shape);
  const auto update_start = Clock::now();
  context.updater.update(
      step, scored.sequences.mask, shape,
      [&loss](int64_t begin, int64_t end) { return loss(begin, end); }, line);
  loss.stats.put(line);
  mark_gpu_phase(job, "update", line);
  scoring_seconds += loss.scoring_seconds;
  const double update_seconds = seconds_since(update_start) - loss.scoring_seconds;

  const double total_tokens = std::max(1.0, scored.sequences.mask.sum().item<double>());
  put_rollout_metrics(rollout_batch, rollout_seconds, loss.entropy_sum,
                      total_tokens * double(shape.epochs), line);
  line["perf/scoring_s"] = scoring_seconds;
  line["perf/update_s"] = update_seconds;
  line["perf/scoring_tokens_per_s"] = total_tokens / std::max(scoring_seconds, 1e-9);
  line["perf/update_tokens_per_s"] =
      total_tokens * double(shape.epochs) / std::max(update_seconds, 1e-9);
}

}  // namespace gopd::train
