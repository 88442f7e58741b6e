// Teacher routing, scoring and the frozen models of a job: see teachers.h.
#include "gopd/scoring/teachers.h"

#include <spdlog/spdlog.h>

#include "gopd/core/error.h"
#include "gopd/core/runtime.h"

namespace gopd::scoring {

torch::Tensor RowRouting::lambda_of(int64_t begin, int64_t end) const {
  return torch::tensor(std::vector<double>(lambda.begin() + begin, lambda.begin() + end),
                       torch::kFloat);
}

size_t TeacherSet::teacher_of(const data::Record& record) const {
  if (teachers_.size() == 1) return 0;
  for (size_t i = 0; i < teachers_.size(); ++i) {
    if (teachers_[i].name == record.teacher) return i;
  }
  std::string names;
  for (const Teacher& teacher : teachers_) names += (names.empty() ? "" : ", ") + teacher.name;
  core::throw_bad_input(record.source + ": teacher '" + record.teacher +
                        "' is not one of the configured teachers (" + names +
                        "); each record of a multi-teacher job names its teacher");
}

RowRouting TeacherSet::route(const std::vector<size_t>& row_teacher) const {
  RowRouting routing;
  routing.teacher = row_teacher;
  routing.own_reference = torch::zeros({int64_t(row_teacher.size())}, torch::kBool);  // (B)
  for (size_t r = 0; r < row_teacher.size(); ++r) {
    const Teacher& teacher = teachers_.at(row_teacher[r]);
    routing.lambda.push_back(teacher.lambda);
    routing.own_reference[int64_t(r)] = teacher.reference != nullptr;
    routing.any_reference = routing.any_reference || teacher.reference != nullptr;
  }
  return routing;
}

std::vector<objective::TeacherHeads> TeacherSet::heads(const TrainingSequences& sequences,
                                                      const RowRouting& routing, int64_t begin,
                                                      int64_t end, bool with_reference) const {
  torch::NoGradGuard no_grad;
  std::vector<objective::TeacherHeads> segments;
  for (int64_t r = begin; r < end;) {
    int64_t r_end = r + 1;
    const size_t index = routing.teacher[size_t(r)];
    while (r_end < end && routing.teacher[size_t(r_end)] == index) ++r_end;
    const Teacher& teacher = teachers_.at(index);
    objective::TeacherHeads segment;
    segment.begin = r - begin;
    segment.end = r_end - begin;
    segment.lambda = teacher.lambda;
    segment.teacher = teacher.model->target_head(sequences, r, r_end);
    if (with_reference && teacher.reference) {
      segment.reference = teacher.reference->target_head(sequences, r, r_end);
    }
    segments.push_back(std::move(segment));
    r = r_end;
  }
  return segments;
}

void TeacherSet::score_tokens(ScoredBatch& scored, int64_t micro_batch, double temperature,
                              kernels::Impl impl) const {
  torch::NoGradGuard no_grad;
  const torch::Tensor& targets = scored.sequences.targets;
  const int64_t rows = targets.size(0);
  const int64_t micro = micro_batch > 0 ? micro_batch : rows;
  std::vector<torch::Tensor> teacher, reference;
  for (int64_t begin = 0; begin < rows; begin += micro) {
    const int64_t end = std::min(rows, begin + micro);
    for (const objective::TeacherHeads& segment :
         heads(scored.sequences, scored.routing, begin, end, scored.routing.any_reference)) {
      const torch::Tensor part = targets.slice(0, begin + segment.begin, begin + segment.end);
      teacher.push_back(kernels::token_logprobs(segment.teacher, part, temperature, false, impl)
                            .logprobs.to(targets.device()));
      // A λ = 1 teacher's own scores stand in for the reference it does not need.
      if (scored.routing.any_reference) {
        reference.push_back(segment.reference.defined()
                                ? kernels::token_logprobs(segment.reference, part, temperature,
                                                          false, impl)
                                      .logprobs.to(targets.device())
                                : teacher.back());
      }
    }
  }
  scored.teacher = torch::cat(teacher, 0);
  if (!reference.empty()) scored.reference = torch::cat(reference, 0);
}

FrozenModels::FrozenModels(const tokenizer::Tokenizer& tokenizer, std::string student_path,
                           int64_t student_rows, std::string default_device)
    : tokenizer_(tokenizer),
      student_path_(std::move(student_path)),
      default_device_(std::move(default_device)) {
  widths_[student_path_] = student_rows;
}

std::shared_ptr<ModelScorer> FrozenModels::load(const std::string& path, const std::string& dtype,
                                                const std::string& device) {
  const std::string where = device.empty() ? default_device_ : device;
  auto model = std::make_shared<ModelScorer>(load_frozen(path, dtype, where));
  widths_[path] = model->embedding_rows();
  all_.push_back(model);
  return model;
}

std::shared_ptr<ModelScorer> FrozenModels::reference(const std::string& key,
                                                     const std::string& dtype,
                                                     const std::string& device) {
  const auto found = references_.find(key);
  if (found != references_.end()) return found->second;
  const std::string path = key == "student_init" ? student_path_ : key;
  if (key != "student_init") check_same_vocabulary(tokenizer_, student_path_, path);
  return references_[key] = load(path, dtype, device);
}

std::shared_ptr<ModelScorer> FrozenModels::teacher(const std::string& path,
                                                   const std::string& dtype,
                                                   const std::string& device) {
  check_same_vocabulary(tokenizer_, student_path_, path);
  return load(path, dtype, device);
}

int64_t FrozenModels::align_vocabularies() {
  const int64_t width = shared_vocab_width(widths_, tokenizer_.vocab_size());
  for (const auto& model : all_) model->set_vocab_width(width);
  return width;
}

void FrozenModels::set_chunk_rows(int64_t rows) {
  for (const auto& model : all_) model->set_chunk_rows(rows);
}

std::string reference_device(const core::Config& config) {
  return core::resolve_device(
      config.reference.device.empty() ? config.run.device : config.reference.device,
      config.reference.device.empty() ? "run.device" : "reference.device");
}

void FrozenModels::set_attention(model::AttentionKernel kernel) {
  for (const auto& model : all_) model->set_attention(kernel);
}

TeacherSet load_teachers(const core::Config& config, FrozenModels& models) {
  TeacherSet set;
  const double shared_lambda = config.gopd.lambda.value_or(1.0);
  for (const auto& [name, spec] : config.teachers) {
    Teacher teacher;
    teacher.name = name;
    teacher.model = models.teacher(
        spec.path, spec.dtype,
        core::resolve_device(spec.device.empty() ? config.run.device : spec.device,
                             "teachers." + name + ".device"));
    teacher.lambda = spec.lambda.value_or(shared_lambda);
    const std::string reference = teacher.lambda == 1.0    ? std::string()
                                  : spec.reference.empty() ? config.reference.path
                                                           : spec.reference;
    spdlog::info(
        "teacher '{}': {} (lambda {}{})", name, spec.path, teacher.lambda,
        reference.empty() ? ", reference pass skipped: lambda = 1" : ", reference " + reference);
    if (!reference.empty()) {
      teacher.reference = models.reference(reference, config.reference.dtype,
                                           reference_device(config));
    }
    set.add(std::move(teacher));
  }
  return set;
}

}  // namespace gopd::scoring
