// Loading and checking a training job: see job.h.
#include "gopd/train/job.h"

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "gopd/core/error.h"
#include "gopd/core/rng.h"
#include "gopd/core/runtime.h"
#include "gopd/model/model_io.h"

namespace gopd::train {
namespace {

namespace fs = std::filesystem;

// The checkpoint to continue from and its state (a fresh state without one).
void find_checkpoint(const core::Config& config, const TrainOptions& options, Job& job) {
  job.state.algorithm = config.algorithm;
  if (options.resume.empty()) return;
  const std::string checkpoints =
      (fs::path(config.run.output_dir) / config.run.name / "checkpoints").string();
  job.resume_from = options.resume == "auto" ? latest_checkpoint(checkpoints) : options.resume;
  if (job.resume_from.empty()) {
    spdlog::info("--resume auto: no complete checkpoint in {}; starting from step 0", checkpoints);
    return;
  }
  const CheckpointState saved = read_checkpoint_state(job.resume_from);
  if (saved.algorithm != config.algorithm) {
    core::throw_bad_input(job.resume_from + ": checkpoint of algorithm " + saved.algorithm +
                          " cannot continue a " + config.algorithm + " job");
  }
  job.state = saved;
}

// run.device, train.precision and train.save_dtype, resolved on this machine: a device that is
// not here is exit 2 before anything is loaded.
void resolve_placement(const core::Config& config, Job& job) {
  job.device_name = core::resolve_device(config.run.device, "run.device");
  // Several ranks on a node: "auto" and "cuda" mean the GPU of the rank's LOCAL_RANK (among
  // the GPUs it sees: srun --gpus-per-task shows each task its one GPU as cuda:0).
  if (job.world.distributed() && job.device_name.rfind("cuda", 0) == 0) {
    if (config.run.device == "auto" || config.run.device == "cuda") {
      const int64_t visible = std::max<int64_t>(1, core::cuda_device_count());
      job.device_name = "cuda:" + std::to_string(job.world.local_rank % visible);
    } else if (job.world.local_world_size > 1 && core::cuda_device_count() > 1) {
      core::throw_bad_input("run.device: " + config.run.device + " would put all " +
                            std::to_string(job.world.local_world_size) +
                            " ranks of this node on one GPU; use auto or cuda (the rank's "
                            "LOCAL_RANK picks its GPU)");
    }
  }
  job.device = torch::Device(job.device_name);
  const bool gpu = job.device.is_cuda();
  job.mixed_precision = config.train.precision == "bf16" || (config.train.precision == "auto" && gpu);
  if (job.mixed_precision && scoring::parse_dtype(config.student.dtype) != torch::kFloat) {
    core::throw_bad_input("train.precision: bf16 keeps fp32 master weights; student.dtype is " +
                          config.student.dtype + " (use student.dtype: float32, or "
                          "train.precision: fp32 to train the " + config.student.dtype +
                          " weights directly)");
  }
  if (config.train.save_dtype != "auto") job.save_dtype = scoring::parse_dtype(config.train.save_dtype);
  spdlog::info("student on {}{}", job.device_name,
               job.mixed_precision ? ", bf16 autocast (fp32 master weights)" : ", no autocast");
}

// The student (from the checkpoint when resuming; student_init stays the job's student.path).
void load_student(const core::Config& config, Job& job) {
  job.tokenizer = tokenizer::load_tokenizer(config.student.path);
  job.format =
      data::prompt_format(config.student.chat_format == "auto" ? job.tokenizer.info.chat_format
                                                               : config.student.chat_format);
  job.pad_id = std::max<int64_t>(job.tokenizer.info.pad_id, 0);
  job.student = model::load_model(job.resume_from.empty()
                                      ? config.student.path
                                      : trained_weights_directory(job.resume_from),
                                  scoring::parse_dtype(config.student.dtype));
  job.student->to(job.device);
  job.student->train();
  job.student->set_activation_checkpointing(config.train.activation_checkpointing);
  if (config.train.activation_checkpointing) {
    spdlog::info("activation checkpointing: each decoder layer is recomputed in backward");
  }
  int64_t parameter_count = 0;
  for (const torch::Tensor& parameter : job.student->parameters())
    parameter_count += parameter.numel();
  spdlog::info("student: {} ({} parameters)", config.student.path, parameter_count);
  job.student_scores = std::make_shared<scoring::ModelScorer>(job.student);
  job.student_scores->set_autocast(job.mixed_precision);  // π_old as the update computes π_θ
  job.frozen = std::make_unique<scoring::FrozenModels>(
      *job.tokenizer.tokenizer, config.student.path, job.student->config().vocab_size,
      job.device_name);
}

// Teachers (distillation) or the KL and LENS references (RLVR), then the shared vocabulary.
void load_scorers(const core::Config& config, Job& job) {
  if (job.distillation()) {
    if (config.teachers.empty()) {
      core::throw_bad_input("teachers: algorithm " + config.algorithm +
                            " needs at least one teacher");
    }
    job.teachers = scoring::load_teachers(config, *job.frozen);
  }
  if (job.rlvr()) {
    if (!config.teachers.empty()) {
      spdlog::warn("teachers: ignored by algorithm {} (rewards come from the verifier)",
                   config.algorithm);
    }
    if (config.grpo.kl_beta > 0)
      job.kl_reference = job.frozen->reference(config.reference.path, config.reference.dtype,
                                               scoring::reference_device(config));
    if (job.algorithm == Algorithm::lens) {
      const std::string key =
          config.lens.score == "initial_policy" ? "student_init" : config.reference.path;
      job.lens_reference =
          job.frozen->reference(key, config.reference.dtype, scoring::reference_device(config));
    }
  }
  // Embeddings padded to different widths: logits are compared over the tokenizer's ids only,
  // and the student samples only those.
  job.vocab_width = job.frozen->align_vocabularies();
  job.student_scores->set_vocab_width(job.vocab_width);
  job.head_chunk_rows = config.train.lm_head_chunk_tokens;
  job.frozen->set_chunk_rows(job.head_chunk_rows);
  const std::string attention = config.kernels.attention == "auto"
                                    ? (job.device.is_cuda() ? "sdpa" : "explicit")
                                    : config.kernels.attention;
  job.student->set_attention(model::parse_attention_kernel(attention));
  job.frozen->set_attention(model::parse_attention_kernel(attention));
  // the rollout's fused decode step follows kernels.impl like the fused losses do
  job.student->set_fused_decode(job.impl == kernels::Impl::fused);
  job.student_scores->set_chunk_rows(job.head_chunk_rows);
}

// The datasets, each record's teacher and verifier; code to run needs the sandbox.
void load_data(const core::Config& config, Job& job) {
  job.train_records = data::read_dataset(config.data.train_file);
  if (job.distillation()) {
    for (const data::Record& record : job.train_records) job.teachers.teacher_of(record);
  }
  const std::string eval_file = config.eval.data.empty() ? config.data.eval_file : config.eval.data;
  if (!eval_file.empty()) job.eval_records = data::read_dataset(eval_file);
  // How responses are verified, decided per record now. Evaluation of a distillation job checks
  // each record by its task when it names one, as a math answer otherwise.
  const auto spec_of = [&](const data::Record& record, bool use_reward_type) {
    const auto task = record.extra.find("task");
    return reward::reward_spec(use_reward_type ? config.reward.type : "auto", record.answer,
                               task != record.extra.end() ? *task : nlohmann::json(), record.tests,
                               record.source);
  };
  if (job.rlvr()) {
    for (const data::Record& record : job.train_records)
      job.train_specs.push_back(spec_of(record, true));
  }
  for (const data::Record& record : job.eval_records)
    job.eval_specs.push_back(spec_of(record, job.rlvr()));
  reward::require_sandbox(job.train_specs, config.data.train_file,
                          config.reward.code.allow_unsandboxed);
  reward::require_sandbox(job.eval_specs, eval_file, config.reward.code.allow_unsandboxed);
}

// The number of steps, and a checkpoint that fits the job.
void plan_steps(const core::Config& config, Job& job) {
  const int64_t records = int64_t(job.train_records.size());
  const int64_t steps_per_epoch =
      (records + config.rollout.batch_prompts - 1) / config.rollout.batch_prompts;
  job.total_steps = config.train.max_steps > 0
                        ? config.train.max_steps
                        : std::max<int64_t>(1, steps_per_epoch * config.train.epochs);
  if (job.state.step >= job.total_steps) {
    core::throw_bad_input(job.resume_from + ": the checkpoint is at step " +
                          std::to_string(job.state.step) + " and the job has " +
                          std::to_string(job.total_steps) +
                          " steps; raise train.max_steps to continue it");
  }
  if (job.state.epoch >= 0 && job.state.cursor > records) {
    core::throw_bad_input(job.resume_from + ": data cursor " + std::to_string(job.state.cursor) +
                          " is beyond the " + std::to_string(records) + " records of " +
                          config.data.train_file);
  }
}

}  // namespace

Algorithm parse_algorithm(const std::string& name) {
  if (name == "sft") return Algorithm::sft;
  if (name == "opd") return Algorithm::opd;
  if (name == "gopd") return Algorithm::gopd;
  if (name == "grpo") return Algorithm::grpo;
  if (name == "lens") return Algorithm::lens;
  core::throw_bad_input("algorithm: unknown algorithm '" + name + "' (opd, gopd, grpo, lens, sft)");
}

DistillObjective parse_distill_objective(const std::string& name) {
  if (name == "sampled_token") return DistillObjective::sampled_token;
  if (name == "full_vocab") return DistillObjective::full_vocab;
  if (name == "top_k") return DistillObjective::top_k;
  core::throw_bad_input("gopd.objective: unknown objective '" + name +
                        "' (sampled_token, full_vocab, top_k)");
}

std::string Job::loss_key() const {
  if (algorithm == Algorithm::sft) return "loss/sft";
  if (rlvr()) return "loss/policy";
  return objective == DistillObjective::sampled_token ? "loss/policy" : "loss/gopd_kl";
}

kernels::LogitHead Job::student_head(const scoring::TrainingSequences& sequences, int64_t begin,
                                     int64_t end) const {
  return scoring::target_head(student, sequences, begin, end, vocab_width, head_chunk_rows,
                              mixed_precision ? torch::kBFloat16 : torch::ScalarType::Undefined);
}

Job load_job(const core::Config& config, const TrainOptions& options) {
  Job job;
  job.config = &config;
  job.algorithm = parse_algorithm(config.algorithm);
  job.objective = parse_distill_objective(config.gopd.objective);
  job.weight_scheme = lens::parse_weight_scheme(config.lens.weight_scheme);
  job.impl = kernels::parse_impl(config.kernels.impl);
  job.agg = objective::parse_loss_agg(config.train.loss_agg);
  job.world = dist::world_from_env();
  if (job.world.distributed() && config.rollout.batch_prompts < job.world.world_size) {
    core::throw_bad_input("rollout.batch_prompts: " + std::to_string(config.rollout.batch_prompts) +
                          " prompts cannot be shared by " + std::to_string(job.world.world_size) +
                          " ranks (the batch is global: raise it to at least the world size)");
  }
  resolve_placement(config, job);
  find_checkpoint(config, options, job);
  load_student(config, job);
  load_scorers(config, job);
  load_data(config, job);
  plan_steps(config, job);
  // Last: a job that is wrong fails on every rank alike before any of them waits for the others.
  job.comm = dist::Comm::join(
      job.world, job.device_name,
      std::chrono::milliseconds(int64_t(config.run.dist_timeout_s * 1000)));
  // Every rank must continue from the same point (a node-local run directory would not).
  if (job.comm->active()) {
    const std::string mine = (job.resume_from.empty() ? std::string("a fresh start")
                                                      : job.resume_from) +
                             " (step " + std::to_string(job.state.step) + ")";
    const std::vector<std::string> all = job.comm->all_gather_text(mine);
    for (size_t rank = 0; rank < all.size(); ++rank) {
      if (all[rank] != all.front()) {
        core::throw_bad_input("--resume: rank 0 continues from " + all.front() + " but rank " +
                              std::to_string(rank) + " from " + all[rank] +
                              "; the ranks must see the same run directory (run.output_dir on a "
                              "shared file system)");
      }
    }
  }
  return job;
}

uint64_t job_seed(const Job& job, const std::string& purpose) {
  const std::string text = std::to_string(job.cfg().run.seed) + "/" + purpose;
  return core::stable_hash(text.data(), int64_t(text.size()));
}

}  // namespace gopd::train
