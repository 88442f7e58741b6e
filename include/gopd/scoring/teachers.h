// The teachers of a distillation job and what scoring hands the objective. Each record is
// scored by its own teacher (N-teacher routing: one teacher = every record, several = the
// record's "teacher" field), each teacher with its λ and its reference π_ref. λ = 1 needs no
// reference: π_ref cancels from the G-OPD advantage and target (DESIGN.md), so it is neither
// loaded nor run, and the teacher's own scores stand in for it where a reference slot exists.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "gopd/core/config.h"
#include "gopd/data/jsonl.h"
#include "gopd/kernels/ops.h"
#include "gopd/objective/gopd_loss.h"
#include "gopd/scoring/scorer.h"
#include "gopd/scoring/sequences.h"

namespace gopd::scoring {

struct Teacher {
  std::string name;
  std::shared_ptr<Scorer> model;
  double lambda = 1.0;
  std::shared_ptr<Scorer> reference;  // null: λ = 1, the reference pass is skipped
};

// Each row's teacher, by index into the TeacherSet.
struct RowRouting {
  std::vector<size_t> teacher;
  std::vector<double> lambda;
  torch::Tensor own_reference;  // (B) bool: the row's teacher has a reference of its own
  bool any_reference = false;

  torch::Tensor lambda_of(int64_t begin, int64_t end) const;  // (end − begin) fp32
};

// The sampled-token scores of a rollout: the sequences, each row's teacher, and per response
// token log π_T, log π_ref (undefined when no row has a reference) and, with several updates
// per batch, log π_old.
struct ScoredBatch {
  TrainingSequences sequences;
  torch::Tensor rollout_logprobs;  // (B, T) the sampler's
  RowRouting routing;
  torch::Tensor teacher;    // (B, T) log π_T(y_t)
  torch::Tensor reference;  // (B, T) log π_ref(y_t); the teacher's own on rows without a reference
  torch::Tensor old;        // (B, T) log π_old(y_t)
};

class TeacherSet {
 public:
  void add(Teacher teacher) { teachers_.push_back(std::move(teacher)); }
  const std::vector<Teacher>& teachers() const { return teachers_; }
  const Teacher& at(size_t index) const { return teachers_.at(index); }

  // The teacher that scores `record`: the only one, or the one the record names (a name no
  // teacher has → exit 2 naming the record).
  size_t teacher_of(const data::Record& record) const;
  RowRouting route(const std::vector<size_t>& row_teacher) const;

  // The teacher heads of rows [begin, end): one segment per run of consecutive rows with the
  // same teacher (one forward each), rows relative to `begin`, with the teacher's λ and, with
  // `with_reference`, its reference head (a λ = 1 teacher has none: the segment's reference is
  // undefined).
  // A served teacher has no head: its segment carries the server's top `top_k` instead
  // (objective::TeacherHeads::served; top_k 0 → exit 2).
  std::vector<objective::TeacherHeads> heads(const TrainingSequences& sequences,
                                             const RowRouting& routing, int64_t begin,
                                             int64_t end, bool with_reference,
                                             int64_t top_k = 0, double temperature = 1.0) const;

  // Pipelining with the rollout: a RowFinished that hands each finished row (prompt
  // prompts[row / n] + its response) to the served teachers and references that will score it
  // (prompt_teacher: each prompt's teacher); null when no served model pipelines. `prompts`
  // must outlive the rollout.
  rollout::RowFinished prefetcher(const std::vector<size_t>& prompt_teacher,
                                  const std::vector<std::vector<int64_t>>& prompts,
                                  int64_t n) const;
  // Rows of the last score_tokens whose served scores came from the pipelined requests.
  int64_t prefetched_rows() const;
  bool any_served() const;

  // Fills scored.teacher and scored.reference: the sampled tokens' log-probs, micro-batch by
  // micro-batch (`micro_batch` rows per forward).
  void score_tokens(ScoredBatch& scored, int64_t micro_batch, double temperature,
                    kernels::Impl impl) const;

 private:
  std::vector<Teacher> teachers_;
};

// The frozen models of a job, each loaded once: references by key ("student_init" = the job's
// student.path, otherwise a model directory), after a check that they share the student's
// tokenizer. Every model's embedding width is recorded for vocabulary alignment.
class FrozenModels {
 public:
  // `default_device`: where a model goes whose device is "" (the student's).
  FrozenModels(const tokenizer::Tokenizer& tokenizer, std::string student_path,
               int64_t student_rows, std::string default_device = "cpu");
  // `device`: a resolved device name ("cpu", "cuda:N") or "" for the default. A reference is
  // loaded once, on the device of its first request.
  std::shared_ptr<ModelScorer> reference(const std::string& key, const std::string& dtype,
                                         const std::string& device = "");
  std::shared_ptr<ModelScorer> teacher(const std::string& path, const std::string& dtype,
                                       const std::string& device = "");
  // A served model (`key`: its config key, for messages), once per url and model name, after
  // the server's tokenizer check.
  std::shared_ptr<Scorer> served(const core::RemoteModelConfig& remote, const std::string& key);
  // Cuts every model's logits to the shared vocabulary; returns that width (0 = all the same).
  int64_t align_vocabularies();
  // Every model's rows of logits per lm_head matmul (ModelScorer::set_chunk_rows).
  void set_chunk_rows(int64_t rows);
  void set_attention(model::AttentionKernel kernel);

 private:
  std::shared_ptr<ModelScorer> load(const std::string& path, const std::string& dtype,
                                    const std::string& device);
  const tokenizer::Tokenizer& tokenizer_;
  std::string student_path_;
  std::string default_device_;
  std::map<std::string, int64_t> widths_;  // model path → embedding rows
  std::map<std::string, std::shared_ptr<ModelScorer>> references_;
  std::map<std::string, std::shared_ptr<Scorer>> served_;  // url + model → scorer
  std::vector<std::shared_ptr<ModelScorer>> all_;
};

// The device of the references: reference.device, else run.device, resolved (exit 2 when it
// does not exist here).
std::string reference_device(const core::Config& config);

// The teachers of config.teachers with their λ (teacher's, else gopd.lambda), devices
// (teacher's, else run.device) and references (teacher's, else reference.path; none at λ = 1;
// on reference_device).
TeacherSet load_teachers(const core::Config& config, FrozenModels& models);

}  // namespace gopd::scoring
