// The grpo / lens step (see steps.h): group rollouts verified on worker threads while the
// reference and π_old passes run, LENS's purification and transfer on the verified groups,
// group advantages, and the clipped surrogate with the truncated importance weight against the
// sampler (and CRPO's row weights for the groups LENS rebuilt).
#include <fstream>
#include <numeric>

#include "gopd/core/error.h"
#include "gopd/lens/lens_step.h"
#include "gopd/objective/grpo_loss.h"
#include "gopd/train/batch_stats.h"
#include "gopd/train/steps.h"

namespace gopd::train {
namespace {

// What the policy loss reads besides the rows: the trained sequences (original prompts) and
// the per-token log-probs the clip, the KL penalty and the importance weights need.
struct PolicyInputs {
  scoring::TrainingSequences sequences;
  torch::Tensor reference;  // (B, T) log π_ref(y_t), with a KL penalty
  // (B, T) log π_old(y_t | x): the proximal policy of the clip; undefined = the update's own
  // forward (one update: θ = θ_old). crpo_literal: log π_old(y_t | x_roll) + log w̃.
  torch::Tensor old;
  torch::Tensor
      old_train;  // (B, T) crpo_literal: log π_old(y_t | x_roll), for the importance weights
  torch::Tensor row_weight;  // (B) crpo: 1/w̃ of each row (lens.h); undefined = 1

  PolicyInputs to(const torch::Device& device) const {
    PolicyInputs moved = *this;
    moved.sequences = sequences.to(device);
    for (torch::Tensor* tensor :
         {&moved.reference, &moved.old, &moved.old_train, &moved.row_weight}) {
      if (tensor->defined()) *tensor = tensor->to(device);
    }
    return moved;
  }
};

// The batch's groups as rows, with their verification started on the reward workers.
lens::RlvrRows group_rows(const Job& job, const rollout::RolloutBatch& batch,
                          const std::vector<size_t>& indices,
                          const std::vector<std::vector<int64_t>>& prompts,
                          std::vector<reward::RewardJob>& jobs) {
  lens::RlvrRows rows;
  for (int64_t r = 0; r < batch.response_ids.size(0); ++r) {
    const int64_t group = batch.group_ids[r].item<int64_t>();
    rows.prompt.push_back(prompts[size_t(group)]);
    rows.response.push_back(response_tokens(batch, r));
    rows.rollout_logprobs.push_back(response_logprobs_of(batch, r));
    jobs.push_back({&job.train_specs[indices[size_t(group)]],
                    job.tokenizer.tokenizer->decode(rows.response.back(), true)});
  }
  rows.roll_prompt = rows.prompt;
  rows.log_weight.assign(rows.prompt.size(), 0.0);
  return rows;
}

// The reward metrics of verified rows.
void put_rewards(const Job& job, const std::vector<reward::RewardResult>& results,
                 const torch::Tensor& group_ids, lens::RlvrRows& rows, nlohmann::json& line) {
  double format_sum = 0;
  for (const reward::RewardResult& result : results) {
    rows.reward.push_back(result.reward);
    rows.correct.push_back(result.correct);
    format_sum += result.format;
  }
  for (const auto& [key, value] :
       objective::group_outcome_metrics(torch::tensor(rows.correct, torch::kFloat), group_ids)) {
    line[key] = value;
  }
  const double count = double(rows.reward.size());
  put_ratio(line, "reward/mean", std::accumulate(rows.reward.begin(), rows.reward.end(), 0.0),
            count);
  if (job.cfg().reward.format_weight > 0) put_ratio(line, "reward/format_mean", format_sum, count);
}

// Rows per forward of a prompt-only pass (micro_rows at the longest prompt's width).
int64_t prompt_micro_rows(const core::OptimConfig& optim, const lens::Prompts& prompts) {
  size_t width = 1;
  for (const auto& prompt : prompts) width = std::max(width, prompt.size());
  return micro_rows(optim, int64_t(prompts.size()), int64_t(width));
}

// The LENS step's calls into this job: the student, the LENS reference, the verifier.
lens::LensHooks lens_hooks(Job& job, int64_t step, const std::vector<size_t>& indices,
                           const std::vector<std::vector<int64_t>>& prompts,
                           const std::vector<int64_t>& positions) {
  const core::Config& config = job.cfg();
  const tokenizer::Tokenizer& tokenizer = *job.tokenizer.tokenizer;
  lens::LensHooks hooks;
  hooks.policy_prompt_logprobs = [&job, &config](const lens::Prompts& p) {
    return job.student_scores->prompt_logprobs(p, job.pad_id, prompt_micro_rows(config.optim, p));
  };
  hooks.reference_prompt_logprobs = [&job, &config](const lens::Prompts& p) {
    return job.lens_reference->prompt_logprobs(p, job.pad_id, prompt_micro_rows(config.optim, p));
  };
  hooks.sample = [&job, &config, step, &positions](const std::vector<int64_t>& groups,
                                                   const lens::Prompts& p) {
    std::vector<int64_t> seeds_at;  // each purified prompt's group's place in the global batch
    for (const int64_t group : groups) seeds_at.push_back(positions[size_t(group)]);
    const rollout::RolloutBatch batch = sample(
        job, p, job_seed(job, "lens/" + std::to_string(step)), config.rollout.n, seeds_at);
    lens::Samples samples;
    for (int64_t r = 0; r < batch.response_ids.size(0); ++r) {
      samples.responses.push_back(response_tokens(batch, r));
      samples.logprobs.push_back(response_logprobs_of(batch, r));
    }
    samples.generated_tokens = batch.generated_tokens;
    return samples;
  };
  hooks.verify = [&job, &config, &tokenizer, &indices](const std::vector<int64_t>& groups,
                                                       const lens::Prompts& responses) {
    std::vector<reward::RewardJob> jobs;
    for (size_t r = 0; r < responses.size(); ++r) {
      jobs.push_back(
          {&job.train_specs[indices[size_t(groups[r])]], tokenizer.decode(responses[r], true)});
    }
    return reward::score_async(std::move(jobs), config.reward).get();
  };
  hooks.eligible_span = [&job, &tokenizer, &indices, &prompts](int64_t g) {
    return data::user_text_span(job.train_records[indices[size_t(g)]], job.format, tokenizer,
                                prompts[size_t(g)]);
  };
  hooks.decode = [&tokenizer](const std::vector<int64_t>& ids) { return tokenizer.decode(ids); };
  return hooks;
}

// LENS on the verified groups; when it transferred rollouts, the rebuilt batch's inputs: the
// transferred responses conditioned on the original prompt x.
void apply_lens(StepContext& context, int64_t step, const std::vector<size_t>& indices,
                const std::vector<std::vector<int64_t>>& prompts, const UpdateShape& shape,
                lens::RlvrRows& rows, PolicyInputs& inputs, nlohmann::json& line) {
  Job& job = context.job;
  const core::Config& config = job.cfg();
  std::vector<std::string> record_ids;
  for (const size_t index : indices) record_ids.push_back(job.train_records[index].id);
  const lens::LensStepResult result =
      lens::lens_step(config.lens, job.weight_scheme, config.rollout.n, step, prompts, record_ids,
                      rows, lens_hooks(job, step, indices, prompts, context.positions), line);
  context.lens_dump += result.dump;
  if (result.transferred == 0) return;
  const double temperature = config.rollout.temperature;
  inputs.sequences = lens::training_sequences(rows, job.pad_id);
  const int64_t micro =
      micro_rows(config.optim, int64_t(rows.prompt.size()), inputs.sequences.input_ids.size(1));
  if (job.kl_reference)
    inputs.reference =
        job.kl_reference->response_logprobs(inputs.sequences, temperature, micro, job.impl);
  if (job.weight_scheme == lens::WeightScheme::crpo_literal) {
    // ρ = π_θ(y | x) / (w̃ · π_old(y | x_roll)) inside the clip, as written.
    inputs.old_train = job.student_scores->response_logprobs(
        lens::rollout_sequences(rows, job.pad_id), temperature, micro, job.impl);
    inputs.old = lens::calibrated_old_logprobs(inputs.old_train, rows);
  } else {
    // The clip on π_θ(y | x) / π_old(y | x); the behaviour correction against the sampler's
    // log-probs under x_roll and 1/w̃ multiply from outside (lens.h).
    inputs.old = shape.several_updates() ? job.student_scores->response_logprobs(
                                               inputs.sequences, temperature, micro, job.impl)
                                         : torch::Tensor();
    if (job.weight_scheme == lens::WeightScheme::crpo)
      inputs.row_weight = lens::calibration_weights(rows);
  }
}

// The clipped surrogate of a micro-batch, with the batch's importance-weight statistics.
class RlvrLoss {
 public:
  RlvrLoss(const Job& job, const PolicyInputs& inputs, const torch::Tensor& advantages,
           const lens::RlvrRows& rows)
      : job_(job),
        inputs_(inputs),
        advantages_(advantages),
        sampler_(lens::rollout_logprobs(rows, inputs.sequences.targets.size(1))
                     .to(inputs.sequences.targets.device())) {
    const core::Config& config = job.cfg();
    options_.policy.agg = job.agg;
    options_.policy.clip_low = config.grpo.clip_low;
    options_.policy.clip_high = config.grpo.clip_high;
    options_.policy.clip_ratio_c = config.grpo.clip_ratio_c;
    options_.policy.clipped = true;  // at ρ = 1 the same gradient as the plain form
    options_.kl_beta = config.grpo.kl_beta;
  }

  objective::LossOutput operator()(int64_t begin, int64_t end) {
    const scoring::TrainingSequences& sequences = inputs_.sequences;
    const kernels::TokenLogprobs student = kernels::token_logprobs(
        job_.student_head(sequences, begin, end),
        sequences.targets.slice(0, begin, end), job_.cfg().rollout.temperature, true, job_.impl);
    const torch::Tensor part_mask = sequences.mask.slice(0, begin, end);
    entropy_sum += (student.entropy.detach() * part_mask).sum().item<double>();
    const torch::Tensor part_old =
        inputs_.old.defined() ? inputs_.old.slice(0, begin, end) : student.logprobs.detach();
    // w_t = min(exp(log π_old_train − log π_rollout), C): the sampler/trainer correction of the
    // distillation path, which for a transferred row also corrects for x_roll ≠ x.
    const torch::Tensor part_train =
        inputs_.old_train.defined() ? inputs_.old_train.slice(0, begin, end) : part_old;
    torch::Tensor weights =
        objective::truncated_importance_weights(part_train, sampler_.slice(0, begin, end),
                                                job_.cfg().grpo.importance_cap);  // (b, T)
    importance.add(weights, part_mask);
    if (inputs_.row_weight.defined())
      weights = weights * inputs_.row_weight.slice(0, begin, end).unsqueeze(1);
    return objective::grpo_loss(
        student.logprobs, part_old, advantages_.slice(0, begin, end), weights,
        inputs_.reference.defined() ? inputs_.reference.slice(0, begin, end) : torch::Tensor(),
        part_mask, options_);
  }

  double entropy_sum = 0;
  ImportanceWeightStats importance;

 private:
  const Job& job_;
  const PolicyInputs& inputs_;
  const torch::Tensor advantages_;
  const torch::Tensor sampler_;  // (B, T) the sampler's log-probs
  objective::GrpoLossOptions options_;
};

}  // namespace

void rlvr_step(StepContext& context, int64_t step, const std::vector<size_t>& indices,
               nlohmann::json& line) {
  Job& job = context.job;
  const core::Config& config = job.cfg();
  // Rollout: a group of n samples per prompt; verified on the reward workers meanwhile.
  const auto rollout_start = Clock::now();
  std::vector<data::Record> records;
  for (const size_t index : indices) records.push_back(job.train_records[index]);
  const std::vector<std::vector<int64_t>> prompts = encode_prompts(job, records);
  const rollout::RolloutBatch rollout_batch =
      sample(job, prompts, job_seed(job, "rollout/" + std::to_string(step)), config.rollout.n,
             context.positions);
  const double rollout_seconds = seconds_since(rollout_start);
  mark_gpu_phase(job, "rollout", line);
  std::vector<reward::RewardJob> jobs;
  lens::RlvrRows rows = group_rows(job, rollout_batch, indices, prompts, jobs);
  auto pending = reward::score_async(std::move(jobs), config.reward);

  // Scoring: the KL reference and, with several updates, π_old.
  const double temperature = config.rollout.temperature;
  PolicyInputs inputs;
  inputs.sequences = lens::training_sequences(rows, job.pad_id);
  UpdateShape shape =
      update_shape(config.optim, int64_t(rows.prompt.size()), inputs.sequences.input_ids.size(1));
  align_mini_batches(context, config.rollout.n, shape);
  auto scoring_start = Clock::now();
  if (job.kl_reference) {
    inputs.reference = job.kl_reference->response_logprobs(inputs.sequences, temperature,
                                                           shape.micro, job.impl);
  }
  if (shape.several_updates()) {
    inputs.old = job.student_scores->response_logprobs(inputs.sequences, temperature,
                                                       shape.micro, job.impl);
  }
  const double scoring_seconds = seconds_since(scoring_start);
  mark_gpu_phase(job, "scoring", line);
  const auto wait_start = Clock::now();
  const std::vector<reward::RewardResult> results = pending.get();
  const double reward_wait_seconds = seconds_since(wait_start);
  const torch::Tensor group_ids = rollout_batch.group_ids;
  put_rewards(job, results, group_ids, rows, line);

  if (job.algorithm == Algorithm::lens) {
    const auto lens_start = Clock::now();
    apply_lens(context, step, indices, prompts, shape, rows, inputs, line);
    line["perf/lens_s"] = seconds_since(lens_start);
    mark_gpu_phase(job, "lens", line);
    line["lens/zero_reward_prompt_fraction"] = objective::group_outcome_metrics(
        torch::tensor(rows.correct, torch::kFloat), group_ids)["grpo/zero_reward_prompt_fraction"];
  }

  // Objective and update.
  objective::GroupAdvantageOptions advantage_options;
  advantage_options.std_normalize = config.grpo.std_normalize;
  advantage_options.epsilon = config.grpo.epsilon;
  const torch::Tensor advantages = objective::group_advantages(
      torch::tensor(rows.reward, torch::kFloat), group_ids, advantage_options);
  // LENS may have rebuilt the batch with longer responses: rows per micro-batch for its width.
  shape.micro = micro_rows(config.optim, int64_t(rows.prompt.size()), inputs.sequences.input_ids.size(1));
  // The update's inputs cross over to the student's device once, here.
  inputs = inputs.to(job.device);
  RlvrLoss loss(job, inputs, advantages.to(job.device), rows);
  const auto update_start = Clock::now();
  context.updater.update(
      step, inputs.sequences.mask, shape,
      [&loss](int64_t begin, int64_t end) { return loss(begin, end); }, line);
  loss.importance.put(line);
  mark_gpu_phase(job, "update", line);
  if (inputs.row_weight.defined()) {
    // The mean as before, with the sums the ranks of a job add up (core::put_ratio's "~" key).
    const double mean = inputs.row_weight.mean().item<double>();
    const double rows = double(inputs.row_weight.numel());
    line["lens/row_weight_mean"] = mean;
    line["~lens/row_weight_mean"] = {mean * rows, rows};
  }
  const double update_seconds = seconds_since(update_start);

  const double total_tokens = std::max(1.0, inputs.sequences.mask.sum().item<double>());
  put_rollout_metrics(rollout_batch, rollout_seconds, loss.entropy_sum,
                      total_tokens * double(shape.epochs), line);
  line["perf/scoring_s"] = scoring_seconds;
  line["perf/reward_wait_s"] = reward_wait_seconds;
  line["perf/update_s"] = update_seconds;
  line["perf/update_tokens_per_s"] =
      total_tokens * double(shape.epochs) / std::max(update_seconds, 1e-9);
}

}  // namespace gopd::train
