// Implements sequence log-probabilities with a full forward pass and a gathered log-softmax.
#include "gopd/scoring/sequence_logprobs.h"

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

}  // namespace gopd::scoring
