// In-process scorers, frozen-model loading and vocabulary alignment: see scorer.h.
#include "gopd/scoring/scorer.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "gopd/core/error.h"
#include "gopd/model/autocast.h"
#include "gopd/model/model_io.h"
#include "gopd/scoring/sequence_logprobs.h"

namespace gopd::scoring {

std::function<torch::Tensor()> Scorer::start_token_logprobs(const TrainingSequences& sequences,
                                                            int64_t begin, int64_t end,
                                                            double temperature,
                                                            kernels::Impl impl) {
  torch::NoGradGuard no_grad;
  const torch::Tensor targets = sequences.targets.slice(0, begin, end);
  torch::Tensor logprobs =
      kernels::token_logprobs(target_head(sequences, begin, end), targets, temperature, false, impl)
          .logprobs.to(targets.device());
  return [logprobs] { return logprobs; };
}

kernels::LogitHead ModelScorer::target_head(const TrainingSequences& sequences, int64_t begin,
                                            int64_t end) {
  torch::NoGradGuard no_grad;
  const model::AutocastGuard autocast(device_type(), autocast_);
  const kernels::LogitHead head = scoring::target_head(model_, sequences, begin, end, vocab_width_,
                                                       chunk_rows_, compute_dtype());
  return kernels::frozen_head(head.hidden, head.weight, head.compute_dtype, head.chunk_rows);
}

torch::Tensor ModelScorer::response_logprobs(const TrainingSequences& sequences, double temperature,
                                             int64_t micro_batch, kernels::Impl impl) {
  const model::AutocastGuard autocast(device_type(), autocast_);
  return scoring::response_logprobs(model_, sequences.input_ids, sequences.attention_mask,
                                    sequences.targets, sequences.prompt_length, temperature,
                                    micro_batch, vocab_width_, chunk_rows_, impl, compute_dtype());
}

std::vector<std::vector<double>> ModelScorer::prompt_logprobs(
    const std::vector<std::vector<int64_t>>& prompts, int64_t pad, int64_t micro_batch) {
  const model::AutocastGuard autocast(device_type(), autocast_);
  return scoring::prompt_logprobs(model_, prompts, pad, micro_batch, vocab_width_);
}

torch::Dtype parse_dtype(const std::string& name, const std::string& device) {
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kHalf;
  if (name == "auto" && device.rfind("cuda", 0) == 0) return torch::kBFloat16;
  return torch::kFloat;
}

model::Transformer load_frozen(const std::string& path, const std::string& dtype,
                               const std::string& device) {
  model::Transformer model = model::load_model(path, parse_dtype(dtype, device));
  model->to(torch::Device(device));
  model->eval();
  for (torch::Tensor& parameter : model->parameters()) parameter.set_requires_grad(false);
  return model;
}

void check_same_vocabulary(const tokenizer::Tokenizer& student, const std::string& student_path,
                           const std::string& other_path) {
  const tokenizer::LoadedTokenizer other = tokenizer::load_tokenizer(other_path);
  const int64_t size = student.vocab_size();
  if (other.tokenizer->vocab_size() != size) {
    core::throw_bad_input(
        other_path + ": tokenizer has " + std::to_string(other.tokenizer->vocab_size()) +
        " tokens but the student's (" + student_path + ") has " + std::to_string(size) +
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

int64_t shared_vocab_width(const std::map<std::string, int64_t>& widths, int64_t tokenizer_size) {
  const auto [narrowest, widest] =
      std::minmax_element(widths.begin(), widths.end(),
                          [](const auto& a, const auto& b) { return a.second < b.second; });
  if (narrowest == widths.end() || narrowest->second == widest->second) return 0;
  if (tokenizer_size > narrowest->second) {
    core::throw_bad_input(narrowest->first + ": the model has " +
                          std::to_string(narrowest->second) +
                          " embedding rows, fewer than the tokenizer's " +
                          std::to_string(tokenizer_size) + " tokens");
  }
  spdlog::info(
      "embedding widths differ ({} has {} rows, {} has {}): logits are cut to the tokenizer's {} "
      "tokens",
      narrowest->first, narrowest->second, widest->first, widest->second, tokenizer_size);
  return tokenizer_size;
}

}  // namespace gopd::scoring
