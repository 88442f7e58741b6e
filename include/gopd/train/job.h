// A training job, loaded and checked: everything `gopd train` needs before its first step —
// the algorithm (decided here, once), the student and its tokenizer, the teachers and
// references (scoring/teachers.h), the datasets with each record's verifier, the step count and
// the checkpoint to continue from. Everything that can be wrong with a job is found here,
// before the run directory exists, so a bad job (exit 2) leaves nothing behind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "gopd/core/config.h"
#include "gopd/data/jsonl.h"
#include "gopd/data/prompt_encoding.h"
#include "gopd/dist/comm.h"
#include "gopd/kernels/ops.h"
#include "gopd/lens/lens_step.h"
#include "gopd/model/transformer.h"
#include "gopd/objective/policy_loss.h"
#include "gopd/reward/rollout_rewards.h"
#include "gopd/scoring/teachers.h"
#include "gopd/tokenizer/tokenizer.h"
#include "gopd/train/checkpoint.h"
#include "gopd/train/trainer.h"

namespace gopd::train {

enum class Algorithm { sft, opd, gopd, grpo, lens };
enum class DistillObjective { sampled_token, full_vocab, top_k };

Algorithm parse_algorithm(const std::string& name);                 // algorithm
DistillObjective parse_distill_objective(const std::string& name);  // gopd.objective

struct Job {
  const core::Config* config = nullptr;
  Algorithm algorithm = Algorithm::gopd;
  DistillObjective objective = DistillObjective::sampled_token;
  lens::WeightScheme weight_scheme = lens::WeightScheme::crpo;
  kernels::Impl impl = kernels::Impl::fused;
  objective::LossAgg agg = objective::LossAgg::token_mean;

  tokenizer::LoadedTokenizer tokenizer;
  data::PromptFormat format;
  int64_t pad_id = 0;  // the tokenizer's, 0 without one

  dist::World world;                    // this process's rank in the job (one process: 0 of 1)
  std::shared_ptr<const dist::Comm> comm;  // the job's collectives (identities in one process)
  torch::Device device{torch::kCPU};  // the student's (run.device), where the update runs
  std::string device_name = "cpu";
  bool mixed_precision = false;  // train.precision: bf16 autocast on the student's device
  torch::ScalarType save_dtype = torch::ScalarType::Undefined;  // train.save_dtype; = weights'

  model::Transformer student{nullptr};  // trained, on the checkpoint's weights when resuming
  std::shared_ptr<scoring::ModelScorer>
      student_scores;  // the student as a Scorer: π_old, LENS policy scores
  std::unique_ptr<scoring::FrozenModels> frozen;    // teachers' and references' models
  scoring::TeacherSet teachers;                     // opd, gopd
  std::shared_ptr<scoring::Scorer> kl_reference;    // grpo, lens with grpo.kl_beta > 0
  std::shared_ptr<scoring::Scorer> lens_reference;  // lens: π_ref of the interference scores
  int64_t vocab_width = 0;                          // logits are cut to this many columns; 0 = all
  int64_t head_chunk_rows = 0;                      // train.lm_head_chunk_tokens

  std::vector<data::Record> train_records;
  std::vector<data::Record> eval_records;
  std::vector<reward::RewardSpec> train_specs;  // grpo, lens: how each training record is verified
  std::vector<reward::RewardSpec> eval_specs;   // how each eval record is verified

  int64_t total_steps = 1;
  std::string resume_from;  // checkpoint directory, "" for a fresh run
  CheckpointState state;    // the checkpoint's (step, data cursor, counters), or a fresh one

  const core::Config& cfg() const { return *config; }
  bool rlvr() const { return algorithm == Algorithm::grpo || algorithm == Algorithm::lens; }
  bool distillation() const { return algorithm == Algorithm::opd || algorithm == Algorithm::gopd; }
  // The metrics key of the optimised loss (console line, non-finite check).
  std::string loss_key() const;
  // The student's head for rows [begin, end) of `sequences`, with its gradient.
  kernels::LogitHead student_head(const scoring::TrainingSequences& sequences, int64_t begin,
                                  int64_t end) const;
};

// Loads and checks the job of `config` (exit 2 on anything wrong, nothing written).
Job load_job(const core::Config& config, const TrainOptions& options);

// A seed derived from the run's seed and a purpose ("rollout/12", "epoch/0", "eval").
uint64_t job_seed(const Job& job, const std::string& purpose);

}  // namespace gopd::train
