// Implements sequence log-probabilities with a full forward pass and a gathered log-softmax.
#include "gopd/scoring/sequence_logprobs.h"

#include <algorithm>

#include "gopd/kernels/logit_head.h"
#include "gopd/scoring/sequences.h"

namespace gopd::scoring {

torch::Tensor gather_token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens,
                                    double temperature) {
  torch::Tensor scaled = logits.to(torch::kFloat);  // (B, T, V)
  if (temperature != 1.0) scaled = scaled / temperature;
  return torch::log_softmax(scaled, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1);  // (B, T)
}

torch::Tensor sequence_logprobs(model::Transformer& model, const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask, double temperature) {
  torch::NoGradGuard no_grad;
  const int64_t steps = input_ids.size(1);
  if (steps < 2) return torch::zeros({input_ids.size(0), 0}, torch::kFloat);
  const torch::Tensor logits = model->forward(input_ids, attention_mask);  // (B, T, V)
  const torch::Tensor targets = input_ids.narrow(1, 1, steps - 1);         // (B, T-1)
  torch::Tensor logprobs =
      gather_token_logprobs(logits.narrow(1, 0, steps - 1), targets, temperature);  // (B, T-1)
  const torch::Tensor valid = attention_mask.narrow(1, 1, steps - 1).to(torch::kBool) &
                              attention_mask.narrow(1, 0, steps - 1).to(torch::kBool);
  return logprobs.masked_fill(valid.logical_not(), 0.0);
}

torch::Tensor response_logprobs(model::Transformer& model, const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask, const torch::Tensor& targets,
                                int64_t prompt_length, double temperature, int64_t micro_batch,
                                int64_t vocab_width, int64_t chunk_rows, kernels::Impl impl,
                                torch::ScalarType compute_dtype) {
  torch::NoGradGuard no_grad;
  const int64_t rows = targets.size(0);
  const int64_t steps = targets.size(1);
  const int64_t micro = micro_batch > 0 ? micro_batch : std::max<int64_t>(rows, 1);
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < rows; begin += micro) {
    const int64_t end = std::min(rows, begin + micro);
    const kernels::LogitHead head = positions_head(
        model, input_ids.slice(0, begin, end), attention_mask.slice(0, begin, end),
        prompt_length - 1, steps, vocab_width, chunk_rows, compute_dtype);  // hidden (rows, T, H)
    parts.push_back(
        kernels::token_logprobs(head, targets.slice(0, begin, end), temperature, false, impl)
            .logprobs.to(targets.device()));
  }
  return parts.empty() ? torch::zeros({0, steps}, torch::kFloat) : torch::cat(parts, 0);
}

std::vector<std::vector<double>> prompt_logprobs(model::Transformer& model,
                                                 const std::vector<std::vector<int64_t>>& prompts, int64_t pad,
                                                 int64_t micro_batch, int64_t vocab_width) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<double>> result;
  const size_t micro = size_t(micro_batch > 0 ? micro_batch : std::max<int64_t>(int64_t(prompts.size()), 1));
  for (size_t begin = 0; begin < prompts.size(); begin += micro) {
    const size_t end = std::min(prompts.size(), begin + micro);
    int64_t longest = 1;
    for (size_t i = begin; i < end; ++i) longest = std::max<int64_t>(longest, int64_t(prompts[i].size()));
    const int64_t rows = int64_t(end - begin);
    torch::Tensor ids = torch::full({rows, longest}, pad, torch::kLong);      // (rows, L)
    torch::Tensor attention = torch::zeros({rows, longest}, torch::kLong);  // (rows, L)
    for (int64_t r = 0; r < rows; ++r) {
      const auto& prompt = prompts[begin + size_t(r)];
      const int64_t offset = longest - int64_t(prompt.size());  // left-padded, as in rollouts
      ids[r].narrow(0, offset, int64_t(prompt.size())).copy_(torch::tensor(prompt, torch::kLong));
      attention[r].narrow(0, offset, int64_t(prompt.size())).fill_(1);
    }
    const torch::Device device = model->output_weight().device();
    ids = ids.to(device);
    torch::Tensor logits = model->forward(ids, attention.to(device));  // (rows, L, V)
    if (vocab_width > 0) logits = logits.narrow(-1, 0, vocab_width);
    // Position p predicts token p + 1, at temperature 1 (the interference score compares the
    // models, not the sampler).
    const torch::Tensor logp = torch::log_softmax(logits.to(torch::kFloat), -1)
                                   .narrow(1, 0, longest - 1)
                                   .gather(-1, ids.narrow(1, 1, longest - 1).unsqueeze(-1))
                                   .squeeze(-1)
                                   .to(torch::kCPU)
                                   .to(torch::kDouble)
                                   .contiguous();  // (rows, L − 1)
    const auto values_of = logp.accessor<double, 2>();
    for (int64_t r = 0; r < rows; ++r) {
      const auto& prompt = prompts[begin + size_t(r)];
      const int64_t offset = longest - int64_t(prompt.size());
      std::vector<double> values(prompt.size(), 0.0);
      for (size_t j = 1; j < prompt.size(); ++j) values[j] = values_of[r][offset + int64_t(j) - 1];
      result.push_back(std::move(values));
    }
  }
  return result;
}

}  // namespace gopd::scoring
