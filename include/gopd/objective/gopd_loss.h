// G-OPD / ExOPD objectives (DESIGN.md "On-policy distillation and G-OPD" and "Full-vocabulary
// G-OPD"), all three forms:
//
//   sampled_token  A_t = λ·(log π_T(y_t) − log π_ref(y_t)) − (log π_old(y_t) − log π_ref(y_t)),
//                  detached, then the policy-gradient loss −agg_t(w_t · A_t · log π_θ(y_t)) with
//                  w_t = min(exp(log π_old − log π_rollout), C) (or PPO-clipped, see
//                  policy_loss.h). This is the papers' estimator (official verl-based code).
//   full_vocab     L_t = KL(π_θ(·|s_t) ‖ q_t), log q_t = λ·log π_T + (1−λ)·log π_ref − log Z_t,
//                  exact over the vocabulary (kernels::gopd_kl, fused or reference).
//   top_k          the same KL over the teacher's k most likely tokens plus one tail bucket
//                  (kernels::gopd_kl_topk); teacher_top_k() prepares its inputs.
//
// Without a reference model (undefined log-probs / logits) λ must be 1 — standard OPD, where
// π_ref cancels — and the objectives reduce to plain reverse KL to the teacher.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "gopd/kernels/logit_head.h"
#include "gopd/kernels/ops.h"
#include "gopd/objective/loss_output.h"
#include "gopd/objective/policy_loss.h"

namespace gopd::objective {

// Per-token log-probabilities of the sampled tokens y_t, at the rollout temperature.
struct GopdTokenLogprobs {
  torch::Tensor teacher;    // (B, T) fp32 log π_T(y_t)
  torch::Tensor reference;  // (B, T) fp32 log π_ref(y_t), or undefined (λ must then be 1)
  torch::Tensor old;        // (B, T) fp32 log π_old(y_t): the sampling student, recomputed by
                            // the trainer before the first update
};

// A_t = λ_b·(lt − lr) − (lo − lr), computed as (λ_b·lt − lo) + (1 − λ_b)·lr so that λ = 1 gives
// exactly lt − lo whatever the reference. Without a reference every λ must be 1
// (std::invalid_argument otherwise; this check reads λ on the host) and A = lt − lo.
// Detached; 0 where mask = 0.
torch::Tensor gopd_advantage(const GopdTokenLogprobs& logprobs,
                             const torch::Tensor& lambda,  // (B) per-sequence λ (teacher
                                                           // overrides), a single value, or
                                                           // undefined (= 1)
                             const torch::Tensor& mask);   // (B, T) 0/1  -> (B, T) fp32

struct GopdLossOptions {
  LossAgg agg = LossAgg::token_mean;
  double importance_cap = 5.0;  // C of the truncated importance weight (gopd.importance_cap)
  bool clipped = false;         // PPO clipped surrogate (ppo_epochs > 1 or mini_batches > 1)
  double clip_low = 0.2;
  double clip_high = 0.2;
};

// Sampled-token G-OPD. An undefined logp_rollout means the trainer's log-probs are the sampler's
// (w = 1). Metrics: those of policy_gradient_loss plus, over response tokens,
// "gopd/advantage_mean", "gopd/advantage_std" (population std), "gopd/reverse_kl_estimate" =
// mean of (lo − lt) (the single-sample estimate of KL(π_old ‖ π_T)), and "gopd/reward_mean" =
// mean of λ·(lt − lr), the G-OPD reward; without a reference the reward is taken with
// π_ref = π_old, i.e. lt − lo (it then equals the advantage).
LossOutput gopd_sampled_token_loss(const torch::Tensor& logp,  // (B, T) fp32, requires grad
                                   const GopdTokenLogprobs& logprobs,
                                   const torch::Tensor& lambda,        // (B), see gopd_advantage
                                   const torch::Tensor& logp_rollout,  // (B, T) or undefined
                                   const torch::Tensor& mask,          // (B, T) 0/1
                                   const GopdLossOptions& options);

// Full-vocabulary G-OPD: per token L_t = kernels::gopd_kl(student, teacher, reference, λ, T),
// aggregated over the mask. Padding rows are computed (the kernel is row-wise; selecting rows
// would copy the logits) but get zero gradient. Metrics: "loss/gopd_kl".
LossOutput gopd_full_vocab_loss(const torch::Tensor& student_logits,    // (B, T, V) requires grad
                                const torch::Tensor& teacher_logits,    // (B, T, V)
                                const torch::Tensor& reference_logits,  // (B, T, V) or undefined
                                double lambda, double temperature,
                                const torch::Tensor& mask,  // (B, T) 0/1
                                LossAgg agg, kernels::Impl impl);

// The teacher's k most likely tokens per position and the log-probabilities of the teacher and
// the reference there, log-softmax at `temperature`. Computed one sequence at a time, so the
// largest temporary is (T, V) rather than (B, T, V). No gradient.
struct TopK {
  torch::Tensor ids;                 // (B, T, k) int64, most likely first
  torch::Tensor teacher_logprobs;    // (B, T, k) fp32
  torch::Tensor reference_logprobs;  // (B, T, k) fp32, undefined without reference logits
};

TopK teacher_top_k(const torch::Tensor& teacher_logits,    // (B, T, V)
                   const torch::Tensor& reference_logits,  // (B, T, V) or undefined
                   int64_t k, double temperature);

// Top-k G-OPD: per token L_t = kernels::gopd_kl_topk(...), aggregated over the mask. Metrics:
// "loss/gopd_kl" and "gopd/top_k_teacher_mass" (mean teacher probability inside the top k over
// response tokens: how much of the teacher the k buckets see).
LossOutput gopd_top_k_loss(const torch::Tensor& student_logits,      // (B, T, V) requires grad
                           const torch::Tensor& teacher_ids,         // (B, T, k) int64
                           const torch::Tensor& teacher_logprobs,    // (B, T, k) fp32
                           const torch::Tensor& reference_logprobs,  // (B, T, k) or undefined
                           double lambda, double temperature,
                           const torch::Tensor& mask,  // (B, T) 0/1
                           LossAgg agg, kernels::Impl impl);

// The vocabulary objectives fed from hidden states (kernels/logit_head.h): nothing of size
// tokens × vocabulary beyond one chunk of the student's rows. The micro-batch's rows are split
// into segments, each scored by one teacher with its λ and its reference head (undefined: none,
// λ must be 1); segments cover the rows [0, B) in order. The student head's hidden states are
// (B, T, H); a segment's teacher heads are (end − begin, T, H_teacher).
struct TeacherHeads {
  int64_t begin = 0;
  int64_t end = 0;
  double lambda = 1.0;
  kernels::LogitHead teacher;
  kernels::LogitHead reference;
  // A served teacher's top k instead of a teacher head (top_k objective only): ids and teacher
  // log-probs from the server, reference log-probs from `reference` (see served_top_k).
  TopK served;
};

// The TopK of a served teacher: its ids and log-probs, (rows, T, k), and the reference head's
// log-probs at those ids (undefined head: none), chunk by chunk.
TopK served_top_k(torch::Tensor ids, torch::Tensor teacher_logprobs,
                  const kernels::LogitHead& reference, double temperature);

// Same loss and metrics as gopd_full_vocab_loss above.
LossOutput gopd_full_vocab_loss(const kernels::LogitHead& student,
                                const std::vector<TeacherHeads>& teachers, double temperature,
                                const torch::Tensor& mask, LossAgg agg, kernels::Impl impl);

// teacher_top_k from heads, chunk by chunk (the teacher's chunking).
TopK teacher_top_k(const kernels::LogitHead& teacher, const kernels::LogitHead& reference,
                   int64_t k, double temperature);

// teacher_top_k of each segment, then the same loss and metrics as gopd_top_k_loss above.
LossOutput gopd_top_k_loss(const kernels::LogitHead& student,
                           const std::vector<TeacherHeads>& teachers, int64_t k,
                           double temperature, const torch::Tensor& mask, LossAgg agg,
                           kernels::Impl impl);

}  // namespace gopd::objective
