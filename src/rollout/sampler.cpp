// Implements truncated sampling by inverse CDF on each row's renormalised distribution with
// a uniform draw from the row's own generator.
#include "gopd/rollout/sampler.h"

namespace gopd::rollout {

torch::Tensor sampling_distribution(const torch::Tensor& logits, const SamplingParams& params) {
  const torch::Tensor scores = logits.to(torch::kFloat);  // (B, V)
  if (params.temperature <= 0.0) {
    return torch::zeros_like(scores).scatter_(1, scores.argmax(1, /*keepdim=*/true), 1.0);
  }
  torch::Tensor probabilities = torch::softmax(scores / params.temperature, -1);  // (B, V)
  const int64_t vocab = probabilities.size(1);
  torch::Tensor keep = torch::ones_like(probabilities, torch::kBool);  // (B, V)
  if (params.top_k > 0 && params.top_k < vocab) {
    const torch::Tensor kth =
        std::get<0>(probabilities.topk(params.top_k, 1)).narrow(1, params.top_k - 1, 1);
    keep &= probabilities >= kth;
  }
  if (params.min_p > 0.0) {
    keep &= probabilities >= params.min_p * std::get<0>(probabilities.max(1, /*keepdim=*/true));
  }
  if (params.top_p < 1.0) {
    // Keep the smallest prefix of tokens, by decreasing probability, whose mass reaches
    // top_p: a token stays if the mass strictly before it is below top_p.
    const auto sorted = probabilities.sort(1, /*descending=*/true);
    const torch::Tensor& sorted_probs = std::get<0>(sorted);
    const torch::Tensor before = sorted_probs.cumsum(1) - sorted_probs;  // (B, V)
    const torch::Tensor keep_sorted = before < params.top_p;
    keep &= torch::zeros_like(keep).scatter(1, std::get<1>(sorted), keep_sorted);
  }
  probabilities = probabilities.masked_fill(keep.logical_not(), 0.0);
  return probabilities / probabilities.sum(1, /*keepdim=*/true);
}

Sample sample_tokens(const torch::Tensor& logits, const SamplingParams& params,
                     std::vector<core::Rng*>& rngs) {
  const int64_t rows = logits.size(0);
  TORCH_CHECK(static_cast<int64_t>(rngs.size()) == rows, "one generator per row");
  // On the logits' device: only the uniforms (B) go there and the tokens (B) come back.
  const torch::Tensor distribution = sampling_distribution(logits, params);  // (B, V)
  torch::Tensor uniforms = torch::empty({rows, 1}, torch::kDouble);          // (B, 1)
  auto uniform = uniforms.accessor<double, 2>();
  for (int64_t i = 0; i < rows; ++i) uniform[i][0] = rngs[static_cast<size_t>(i)]->uniform01();
  // Inverse CDF in float64 so the draw is exact to the distribution's own precision.
  const torch::Tensor cdf = distribution.to(torch::kDouble).cumsum(1);  // (B, V)
  const torch::Tensor threshold = uniforms.to(cdf.device()) * cdf.narrow(1, cdf.size(1) - 1, 1);
  torch::Tensor tokens = (cdf <= threshold).sum(1).clamp_max(cdf.size(1) - 1);  // (B)
  // A zero-probability token can only be hit through rounding at the boundary; step back to
  // the last token with mass at or before it (token 0 when there is none), so truncated tokens
  // are never drawn: the running maximum of the ids with mass, read at the drawn id.
  const torch::Tensor ids = torch::arange(cdf.size(1), tokens.options()).unsqueeze(0);  // (1, V)
  const torch::Tensor last_with_mass =
      std::get<0>(torch::where(distribution > 0, ids, torch::zeros_like(ids)).cummax(1));
  tokens = last_with_mass.gather(1, tokens.unsqueeze(1)).squeeze(1);  // (B)
  const double temperature = params.temperature > 0.0 ? params.temperature : 1.0;
  const torch::Tensor logprobs = torch::log_softmax(logits.to(torch::kFloat) / temperature, -1)
                                     .gather(1, tokens.unsqueeze(1))
                                     .squeeze(1);
  return {tokens, logprobs};
}

}  // namespace gopd::rollout
