// Teacher routing, scoring and the frozen models of a job: see teachers.h.
#include "gopd/scoring/teachers.h"

#include <spdlog/spdlog.h>

#include <set>

#include "gopd/core/error.h"
#include "gopd/core/runtime.h"
#include "gopd/scoring/remote_scorer.h"

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
                                                      int64_t end, bool with_reference,
                                                      int64_t top_k, double temperature) const {
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
    if (with_reference && teacher.reference) {
      segment.reference = teacher.reference->target_head(sequences, r, r_end);
    }
    if (teacher.model->remote()) {
      if (top_k < 1) {
        core::throw_bad_input("teachers." + teacher.name +
                              ": a served teacher gives its top k log-probs, not logits; use "
                              "gopd.objective top_k or sampled_token");
      }
      auto [ids, logprobs] =
          static_cast<RemoteScorer&>(*teacher.model).top_k(sequences, r, r_end, top_k);
      segment.served = objective::served_top_k(std::move(ids), std::move(logprobs),
                                               segment.reference, temperature);
    } else {
      segment.teacher = teacher.model->target_head(sequences, r, r_end);
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
  const bool with_reference = scored.routing.any_reference;
  // Runs of rows with one teacher: over the whole batch for served teachers (their client
  // groups the requests), within micro-batches for this process's models.
  struct Segment {
    int64_t begin, end;
    const Teacher* teacher;
    std::function<torch::Tensor()> scores, reference;
  };
  std::vector<Segment> segments;
  const auto add_runs = [&](int64_t begin, int64_t end, bool remote) {
    for (int64_t r = begin; r < end;) {
      int64_t r_end = r + 1;
      const size_t index = scored.routing.teacher[size_t(r)];
      while (r_end < end && scored.routing.teacher[size_t(r_end)] == index) ++r_end;
      const Teacher& teacher = teachers_.at(index);
      if (teacher.model->remote() == remote) segments.push_back({r, r_end, &teacher, {}, {}});
      r = r_end;
    }
  };
  add_runs(0, rows, true);
  for (int64_t begin = 0; begin < rows; begin += micro) add_runs(begin, std::min(rows, begin + micro), false);
  // Served models' requests first, so that they run while this process's models score.
  for (const bool remote : {true, false}) {
    for (Segment& segment : segments) {
      if (segment.teacher->model->remote() == remote) {
        segment.scores = segment.teacher->model->start_token_logprobs(
            scored.sequences, segment.begin, segment.end, temperature, impl);
      }
      const auto& reference = segment.teacher->reference;
      if (with_reference && reference && reference->remote() == remote) {
        segment.reference = reference->start_token_logprobs(scored.sequences, segment.begin,
                                                            segment.end, temperature, impl);
      }
    }
  }
  scored.teacher = torch::zeros_like(targets, targets.options().dtype(torch::kFloat));
  if (with_reference) scored.reference = torch::zeros_like(scored.teacher);
  for (Segment& segment : segments) {
    const torch::Tensor teacher = segment.scores();
    scored.teacher.slice(0, segment.begin, segment.end).copy_(teacher);
    // A λ = 1 teacher's own scores stand in for the reference it does not need.
    if (with_reference) {
      scored.reference.slice(0, segment.begin, segment.end)
          .copy_(segment.reference ? segment.reference() : teacher);
    }
  }
}

namespace {

RemoteScorer* served_scorer(const std::shared_ptr<Scorer>& scorer) {
  return scorer && scorer->remote() ? static_cast<RemoteScorer*>(scorer.get()) : nullptr;
}

}  // namespace

rollout::RowFinished TeacherSet::prefetcher(const std::vector<size_t>& prompt_teacher,
                                            const std::vector<std::vector<int64_t>>& prompts,
                                            int64_t n) const {
  bool any = false;
  for (const Teacher& teacher : teachers_) {
    for (RemoteScorer* scorer : {served_scorer(teacher.model), served_scorer(teacher.reference)}) {
      if (scorer == nullptr || !scorer->pipelined()) continue;
      scorer->begin_prefetch();
      any = true;
    }
  }
  if (!any) return nullptr;
  return [this, prompt_teacher, &prompts, n](int64_t row, const std::vector<int64_t>& response,
                                              rollout::FinishReason) {
    const size_t prompt = size_t(row / n);
    const Teacher& teacher = teachers_.at(prompt_teacher.at(prompt));
    for (RemoteScorer* scorer : {served_scorer(teacher.model), served_scorer(teacher.reference)}) {
      if (scorer == nullptr || !scorer->pipelined()) continue;
      std::vector<int64_t> sequence = prompts[prompt];
      sequence.insert(sequence.end(), response.begin(), response.end());
      scorer->prefetch(row, std::move(sequence));
    }
  };
}

int64_t TeacherSet::prefetched_rows() const {
  int64_t rows = 0;
  std::set<const RemoteScorer*> counted;
  for (const Teacher& teacher : teachers_) {
    for (RemoteScorer* scorer : {served_scorer(teacher.model), served_scorer(teacher.reference)}) {
      if (scorer != nullptr && counted.insert(scorer).second) rows += scorer->prefetched_rows();
    }
  }
  return rows;
}

bool TeacherSet::any_served() const {
  for (const Teacher& teacher : teachers_) {
    if (served_scorer(teacher.model) || served_scorer(teacher.reference)) return true;
  }
  return false;
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

std::shared_ptr<Scorer> FrozenModels::served(const core::RemoteModelConfig& remote,
                                             const std::string& key) {
  const std::string id = remote.url + "\n" + remote.model;
  const auto found = served_.find(id);
  if (found != served_.end()) return found->second;
  serve::Endpoint endpoint;
  endpoint.label = key;
  endpoint.url = remote.url;
  endpoint.model = remote.model;
  endpoint.timeout_s = remote.timeout_s;
  endpoint.pipeline = remote.pipeline;
  if (!remote.api_key_env.empty()) {
    const char* value = std::getenv(remote.api_key_env.c_str());
    if (value == nullptr || *value == '\0') {
      core::throw_bad_input(key + ".api_key_env: the environment variable " + remote.api_key_env +
                            " is not set");
    }
    endpoint.api_key = value;
  }
  return served_[id] = std::make_shared<RemoteScorer>(endpoint, tokenizer_);
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
    if (spec.remote.url.empty()) {
      teacher.model = models.teacher(
          spec.path, spec.dtype,
          core::resolve_device(spec.device.empty() ? config.run.device : spec.device,
                               "teachers." + name + ".device"));
    } else {
      teacher.model = models.served(spec.remote, "teachers." + name);
    }
    teacher.lambda = spec.lambda.value_or(shared_lambda);
    // The reference: the teacher's own (a directory or a served model's address), else the
    // shared one (reference.url, else reference.path).
    std::string reference = spec.reference;
    if (reference.empty()) {
      reference = config.reference.remote.url.empty() ? config.reference.path
                                                      : config.reference.remote.url;
    }
    if (teacher.lambda == 1.0) reference.clear();
    spdlog::info("teacher '{}': {} (lambda {}{})", name,
                 spec.remote.url.empty() ? spec.path : spec.remote.url, teacher.lambda,
                 reference.empty() ? ", reference pass skipped: lambda = 1" : ", reference " + reference);
    const bool served_reference =
        reference.rfind("http://", 0) == 0 || reference.rfind("https://", 0) == 0;
    if (served_reference) {
      core::RemoteModelConfig remote = config.reference.remote;
      if (reference != remote.url) {  // the teacher's own served reference
        remote = core::RemoteModelConfig{};
        remote.url = reference;
      }
      if (config.gopd.objective == "top_k") {
        core::throw_bad_input("teachers." + name + ".reference: the top_k objective needs the "
                              "reference's log-probs at the teacher's top tokens, which a served "
                              "reference cannot give; use a reference in this process");
      }
      teacher.reference = models.served(
          remote, reference == config.reference.remote.url ? "reference" : "teachers." + name + ".reference");
    } else if (!reference.empty()) {
      teacher.reference = models.reference(reference, config.reference.dtype,
                                           reference_device(config));
    }
    set.add(std::move(teacher));
  }
  return set;
}

}  // namespace gopd::scoring
