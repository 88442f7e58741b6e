// Token-level ops over vocabulary-sized logits, each with a plain LibTorch reference path and a
// fused path (CPU row kernels; CUDA kernels for CUDA tensors when LibTorch has CUDA) that never
// materialises a (tokens × vocab) temporary beyond the gradient it returns. Formulas, masking
// and temperature conventions: include/gopd/kernels/cuda_launchers.h and DESIGN.md
// ("Full-vocabulary G-OPD").
//
// Shapes: logits are (..., V) with any leading dims (flattened to N rows); tokens and outputs
// have the leading dims. Logits fp32 or bf16; outputs fp32; gradients flow into the student
// logits only (teacher, reference and top-k inputs are treated as constants).
#pragma once

#include <optional>
#include <string>

#include <torch/torch.h>

namespace gopd::kernels {

enum class Impl { fused, reference };

// "fused" | "reference" (the `kernels.impl` config key); anything else is std::invalid_argument.
Impl parse_impl(const std::string& name);
const char* impl_name(Impl impl);

struct TokenLogprobs {
  torch::Tensor logprobs;  // (...) fp32: log softmax(logits / T)[token]
  torch::Tensor entropy;   // (...) fp32 entropy of softmax(logits / T); undefined unless asked
};

TokenLogprobs token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens,
                             double temperature = 1.0, bool with_entropy = false,
                             Impl impl = Impl::fused);

// Per-row reverse KL(π_θ ‖ q), q ∝ π_T^λ · π_ref^(1−λ). An undefined `reference` means the
// plain reverse KL to the teacher (λ is then not used).
torch::Tensor gopd_kl(const torch::Tensor& student, const torch::Tensor& teacher,
                      const torch::Tensor& reference, double lambda, double temperature = 1.0,
                      Impl impl = Impl::fused);

struct LogratioReward {
  torch::Tensor advantage;     // (...) λ(log π_T − log π_ref) − (log π_θ − log π_ref) at y
  torch::Tensor lp_student;    // (...) log π_θ(y)
  torch::Tensor lp_teacher;    // (...) log π_T(y)
  torch::Tensor lp_reference;  // (...) log π_ref(y); undefined without a reference
};

// Detached: no gradient flows into any input. Without a reference: advantage = lp_T − lp_θ.
LogratioReward gopd_logratio_reward(const torch::Tensor& student, const torch::Tensor& teacher,
                                    const torch::Tensor& reference, const torch::Tensor& tokens,
                                    double lambda, double temperature = 1.0,
                                    Impl impl = Impl::fused);

// Top-k G-OPD KL: teacher_ids (..., k) int64 distinct token ids, teacher_logprobs (..., k) and
// reference_logprobs (..., k) (or undefined) the models' log-probabilities at those ids.
torch::Tensor gopd_kl_topk(const torch::Tensor& student, const torch::Tensor& teacher_ids,
                           const torch::Tensor& teacher_logprobs,
                           const torch::Tensor& reference_logprobs, double lambda,
                           double temperature = 1.0, Impl impl = Impl::fused);

// The plain LibTorch implementations (autograd through composite ops), for parity tests and
// benchmarks. Same contracts as above; they validate nothing beyond what LibTorch checks.
namespace reference {
TokenLogprobs token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens,
                             double temperature, bool with_entropy);
torch::Tensor gopd_kl(const torch::Tensor& student, const torch::Tensor& teacher,
                      const torch::Tensor& reference, double lambda, double temperature);
LogratioReward gopd_logratio_reward(const torch::Tensor& student, const torch::Tensor& teacher,
                                    const torch::Tensor& reference, const torch::Tensor& tokens,
                                    double lambda, double temperature);
torch::Tensor gopd_kl_topk(const torch::Tensor& student, const torch::Tensor& teacher_ids,
                           const torch::Tensor& teacher_logprobs,
                           const torch::Tensor& reference_logprobs, double lambda,
                           double temperature);
}  // namespace reference

}  // namespace gopd::kernels
