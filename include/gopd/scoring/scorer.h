// A Scorer: a model that scores token sequences without a gradient — the teachers and references
// of a job, and the student where its own log-probs are needed frozen (π_old, LENS's policy
// scores). The loop and the objectives see only this interface, so a teacher served by another
// process is one more implementation. ModelScorer is the in-process one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "gopd/kernels/ops.h"
#include "gopd/model/transformer.h"
#include "gopd/scoring/sequences.h"
#include "gopd/tokenizer/tokenizer.h"

namespace gopd::scoring {

class Scorer {
 public:
  virtual ~Scorer() = default;
  // The head whose logits predict the targets of rows [begin, end), detached: hidden states
  // (rows, T, H) of the response positions and an output matrix of V' rows, V' = the shared
  // vocabulary (vocab_width below); its logits are taken chunk by chunk (kernels/logit_head.h).
  virtual kernels::LogitHead target_head(const TrainingSequences& sequences, int64_t begin,
                                         int64_t end) = 0;
  // log π(targets[b, t] | prefix) at `temperature` for every response token: (B, T) fp32,
  // `micro_batch` rows per forward (0 = all).
  virtual torch::Tensor response_logprobs(const TrainingSequences& sequences, double temperature,
                                          int64_t micro_batch, kernels::Impl impl) = 0;
  // log π(x_j | x_<j) of each prompt's own tokens at temperature 1 (position 0 gets 0); prompts
  // left-padded with `pad`, `micro_batch` per forward.
  virtual std::vector<std::vector<double>> prompt_logprobs(
      const std::vector<std::vector<int64_t>>& prompts, int64_t pad, int64_t micro_batch) = 0;
  // log π(targets[b, t]) of rows [begin, end) at `temperature`: (end − begin, T) fp32 on the
  // sequences' device, 0 at padding. Given as a getter so that a served model's requests run
  // while the models of this process score (this one computes before returning).
  virtual std::function<torch::Tensor()> start_token_logprobs(const TrainingSequences& sequences,
                                                              int64_t begin, int64_t end,
                                                              double temperature,
                                                              kernels::Impl impl);
  // Whether the model is served by another process (no logits here: no target_head).
  virtual bool remote() const { return false; }
};

// A model of this process as a Scorer (always under NoGradGuard). `vocab_width` > 0 cuts the
// logits to the shared tokenizer's ids (padded embeddings), 0 keeps them all. The model may sit
// on another device than the sequences: they are copied to it, and response_logprobs comes back
// on the sequences' device; target_head stays on the model's (the ops move its logits).
class ModelScorer : public Scorer {
 public:
  explicit ModelScorer(model::Transformer model, int64_t vocab_width = 0)
      : model_(std::move(model)), vocab_width_(vocab_width) {}
  kernels::LogitHead target_head(const TrainingSequences& sequences, int64_t begin,
                                 int64_t end) override;
  torch::Tensor response_logprobs(const TrainingSequences& sequences, double temperature,
                                  int64_t micro_batch, kernels::Impl impl) override;
  std::vector<std::vector<double>> prompt_logprobs(const std::vector<std::vector<int64_t>>& prompts,
                                                   int64_t pad, int64_t micro_batch) override;
  void set_vocab_width(int64_t width) { vocab_width_ = width; }
  // Rows of logits per lm_head matmul (train.lm_head_chunk_tokens); 0 = all at once.
  void set_chunk_rows(int64_t rows) { chunk_rows_ = rows; }
  // Every pass under bf16 autocast on the model's device with bf16 logits, as the student's
  // update forward computes them (train.precision: bf16), so π_old matches π_θ at θ = θ_old.
  void set_autocast(bool on) { autocast_ = on; }
  void set_attention(model::AttentionKernel kernel) { model_->set_attention(kernel); }
  int64_t embedding_rows() const { return model_->config().vocab_size; }

 private:
  c10::DeviceType device_type() { return model_->output_weight().device().type(); }
  torch::ScalarType compute_dtype() const {
    return autocast_ ? torch::kBFloat16 : torch::ScalarType::Undefined;
  }
  model::Transformer model_;
  int64_t vocab_width_ = 0;
  int64_t chunk_rows_ = 0;
  bool autocast_ = false;
};

// A dtype name; "auto" = bfloat16 on a GPU, float32 on the CPU (where bfloat16 matmuls are far
// slower than float32).
torch::Dtype parse_dtype(const std::string& name, const std::string& device = "cpu");

// A model loaded for scoring only: eval mode, parameters frozen, weights in `dtype`, on
// `device` (a resolved name: "cpu", "cuda:N").
model::Transformer load_frozen(const std::string& path, const std::string& dtype,
                               const std::string& device = "cpu");

// Student, teachers and references must share the tokenizer: the same size (the embedding may
// be padded beyond it) and the same token strings. Exit 2 naming `other_path` otherwise.
void check_same_vocabulary(const tokenizer::Tokenizer& student, const std::string& student_path,
                           const std::string& other_path);

// The logits' common width when embeddings are padded to different widths (e.g. 151,936 vs
// 152,064 rows for one tokenizer): the tokenizer's size, so logits are compared over its ids
// only; 0 when every model has the same width. `widths`: model path → embedding rows.
int64_t shared_vocab_width(const std::map<std::string, int64_t>& widths, int64_t tokenizer_size);

}  // namespace gopd::scoring
