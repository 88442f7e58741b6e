// Plain LibTorch reference implementations of the token-level ops: composite ops in fp32,
// gradients by autograd. They materialise several (N, V) tensors on purpose — they are the
// readable definition the fused kernels are tested and benchmarked against.
//
// Masked (−inf) entries are kept out of products with torch::where before multiplying, so that
// neither the values nor autograd ever form 0 · inf.
#include <limits>

#include "gopd/kernels/cuda_launchers.h"
#include "gopd/kernels/ops.h"

namespace gopd::kernels::reference {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// fp32 math (fp64 inputs stay fp64: the finite-difference tests run the reference in fp64).
torch::Tensor compute_precision(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? x : x.to(torch::kFloat);
}

torch::Tensor scaled_log_softmax(const torch::Tensor& logits, double temperature) {
  return torch::log_softmax(compute_precision(logits) / temperature, -1);
}

// Σ_v p_v · x_v over entries with p_v > 0 (x may be ±inf or NaN where p_v = 0).
torch::Tensor expectation(const torch::Tensor& p, const torch::Tensor& x) {
  const torch::Tensor positive = p > 0;
  return (p * torch::where(positive, x, torch::zeros_like(x))).sum(-1);
}

// λ·t + (1−λ)·r on log-probs, −inf where a model with a non-zero coefficient masks the token.
torch::Tensor combine_target(const torch::Tensor& teacher_lp, const torch::Tensor& reference_lp,
                             double lambda) {
  if (!reference_lp.defined()) return teacher_lp;
  const double teacher_coef = lambda;
  const double reference_coef = 1.0 - lambda;
  torch::Tensor value = torch::zeros_like(teacher_lp);
  torch::Tensor masked = torch::zeros_like(teacher_lp, torch::kBool);
  if (teacher_coef != 0.0) {
    const torch::Tensor is_masked = teacher_lp == kNegInf;
    value = value + teacher_coef * torch::where(is_masked, torch::zeros_like(value), teacher_lp);
    masked = masked | is_masked;
  }
  if (reference_coef != 0.0) {
    const torch::Tensor is_masked = reference_lp == kNegInf;
    value =
        value + reference_coef * torch::where(is_masked, torch::zeros_like(value), reference_lp);
    masked = masked | is_masked;
  }
  return torch::where(masked, torch::full_like(value, kNegInf), value);
}

torch::Tensor gather_last(const torch::Tensor& values, const torch::Tensor& index) {
  return values.gather(-1, index.unsqueeze(-1)).squeeze(-1);
}

// log(max(1 − Σ exp(lp), floor)) along the last dim, the sum taken in fp64.
torch::Tensor tail_log_mass(const torch::Tensor& logprobs) {
  const torch::Tensor mass = logprobs.to(torch::kDouble).exp().sum(-1, /*keepdim=*/true);
  return torch::log(torch::clamp_min(1.0 - mass, double(kTopkTailFloor))).to(logprobs.scalar_type());
}

}  // namespace

TokenLogprobs token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens,
                             double temperature, bool with_entropy) {
  const torch::Tensor log_p = scaled_log_softmax(logits, temperature);  // (..., V)
  TokenLogprobs result;
  result.logprobs = gather_last(log_p, tokens);
  if (with_entropy) result.entropy = -expectation(log_p.exp(), log_p);
  return result;
}

torch::Tensor gopd_kl(const torch::Tensor& student, const torch::Tensor& teacher,
                      const torch::Tensor& reference, double lambda, double temperature) {
  const torch::Tensor log_p = scaled_log_softmax(student, temperature);  // (..., V)
  torch::Tensor log_q;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor teacher_lp = scaled_log_softmax(teacher, temperature);
    const torch::Tensor reference_lp =
        reference.defined() ? scaled_log_softmax(reference, temperature) : torch::Tensor();
    log_q = torch::log_softmax(combine_target(teacher_lp, reference_lp, lambda), -1);
  }
  return expectation(log_p.exp(), log_p - log_q);
}

LogratioReward gopd_logratio_reward(const torch::Tensor& student, const torch::Tensor& teacher,
                                    const torch::Tensor& reference, const torch::Tensor& tokens,
                                    double lambda, double temperature) {
  torch::NoGradGuard no_grad;
  LogratioReward result;
  result.lp_student = gather_last(scaled_log_softmax(student, temperature), tokens);
  result.lp_teacher = gather_last(scaled_log_softmax(teacher, temperature), tokens);
  if (reference.defined()) {
    result.lp_reference = gather_last(scaled_log_softmax(reference, temperature), tokens);
    result.advantage = lambda * (result.lp_teacher - result.lp_reference) -
                       (result.lp_student - result.lp_reference);
  } else {
    result.advantage = result.lp_teacher - result.lp_student;
  }
  return result;
}

torch::Tensor gopd_kl_topk(const torch::Tensor& student, const torch::Tensor& teacher_ids,
                           const torch::Tensor& teacher_logprobs,
                           const torch::Tensor& reference_logprobs, double lambda,
                           double temperature) {
  const torch::Tensor scaled = compute_precision(student) / temperature;  // (..., V)
  const torch::Tensor row_lse = torch::logsumexp(scaled, -1, /*keepdim=*/true);
  const torch::Tensor id_lp = scaled.gather(-1, teacher_ids) - row_lse;  // (..., k)
  // Tail bucket: lse over the non-id tokens. Written with an explicit shift and a clamped log
  // so that an empty tail (every token an id) gives −inf without NaN gradients.
  const torch::Tensor tail_logits =
      scaled.scatter(-1, teacher_ids, torch::full_like(id_lp, kNegInf));
  torch::Tensor shift = std::get<0>(tail_logits.max(-1, /*keepdim=*/true)).detach();
  shift = torch::where(shift == kNegInf, torch::zeros_like(shift), shift);
  const torch::Tensor tail_sum = (tail_logits - shift).exp().sum(-1, /*keepdim=*/true);
  const torch::Tensor tail_lp =
      torch::where(tail_sum > 0, torch::log(tail_sum.clamp_min(1e-30)) + shift - row_lse,
                   torch::full_like(tail_sum, kNegInf));
  const torch::Tensor bucket_lp = torch::cat({id_lp, tail_lp}, -1);  // (..., k + 1)

  torch::Tensor log_q;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor teacher_lp = teacher_logprobs.to(scaled.scalar_type());
    const torch::Tensor teacher_buckets = torch::cat({teacher_lp, tail_log_mass(teacher_lp)}, -1);
    torch::Tensor reference_buckets;
    if (reference_logprobs.defined()) {
      const torch::Tensor reference_lp = reference_logprobs.to(scaled.scalar_type());
      reference_buckets = torch::cat({reference_lp, tail_log_mass(reference_lp)}, -1);
    }
    log_q = torch::log_softmax(combine_target(teacher_buckets, reference_buckets, lambda), -1);
  }
  return expectation(bucket_lp.exp(), bucket_lp - log_q);
}

}  // namespace gopd::kernels::reference
