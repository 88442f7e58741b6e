// Raw-pointer launchers of the CUDA kernels (kernels/cuda/*.cu). No LibTorch, no CUDA headers:
// the standalone CUDA test program and the LibTorch dispatch both call these.
//
// Shared conventions (the CPU fused path and the LibTorch reference follow the same ones):
//   * A "rows" argument is an (N, V) matrix: row i starts at data + i * row_stride elements,
//     the V elements of a row are contiguous. dtype is fp32 or bf16; all arithmetic is fp32,
//     all outputs are fp32 except gradients into logits, which have the logits' dtype.
//   * Temperature T: every model's logits are divided by T first (s = z_student / T,
//     t = z_teacher / T, r = z_reference / T). Gradients are with respect to the raw student
//     logits z, so they carry the factor 1 / T.
//   * −inf logits are masked tokens (probability 0). Terms with probability 0 contribute 0
//     (never 0 · inf = NaN). The G-OPD target of a token is masked when the token is masked in
//     any model that enters with a non-zero coefficient.
//   * lse(x) = log Σ_v exp(x_v), computed online (running max + rescaled sum).
//
// token_logprobs, for row i with token y:
//   lp = s_y − lse(s);  H = lse(s) − Σ_v p_v s_v  (p = softmax(s), terms with p_v = 0 skipped)
//   backward: dz_v = (1/T) · [ g_lp · (δ_{v,y} − p_v) − g_H · p_v · (s_v − lse(s) + H) ]
//
// gopd_kl (reverse KL from the student to q ∝ π_T^λ · π_ref^(1−λ)), per row:
//   cT = λ, cR = 1 − λ with a reference; cT = 1, cR = 0 without one (plain reverse KL).
//   a_v = cT · t_v + cR · r_v (a term with coefficient 0 is skipped; a_v = −inf when a term
//         with non-zero coefficient is −inf)
//   log q_v = a_v − lse(a),  log p_v = s_v − lse(s)
//   L = Σ_v p_v · (log p_v − log q_v)
//   backward: dz_v = (g / T) · p_v · ((log p_v − log q_v) − L)
//   Saved by the forward for the backward: lse(s), lse(a), L (N floats each).
//
// gopd_logratio_reward (no gradient), per row with sampled token y:
//   lp_s = s_y − lse(s), lp_t = t_y − lse(t), lp_r = r_y − lse(r)
//   with a reference:    adv = λ · (lp_t − lp_r) − (lp_s − lp_r)
//   without a reference: adv = lp_t − lp_s   (λ = 1; lp_r is not written)
//
// gopd_kl_topk, per row with the teacher's k token ids (distinct), the teacher's log-probs at
// them and optionally the reference's log-probs at them (all fp32, (N, k) contiguous):
//   buckets b = 0..k−1 are the ids, bucket k ("tail") is every other token.
//   student: P_b = p_{id_b} for b < k, P_k = Σ_{v ∉ ids} p_v. With P_ids = Σ_b P_b:
//            log P_k = log1p(−P_ids) when P_ids < 0.5 (lse_tail − lse(s) cancels there),
//            else lse over the non-id tokens − lse(s) (−inf when every token is an id).
//   teacher: T_b = tlp_b, T_k = log(max(1 − Σ_b exp(tlp_b), kTopkTailFloor)); same for R.
//   a_b = cT · T_b + cR · R_b (same coefficient and masking rules as gopd_kl),
//   log q_b = a_b − lse over the k + 1 buckets of a,
//   d_b = log P_b − log q_b,  L = Σ_b P_b · d_b  (terms with P_b = 0 skipped)
//   backward: dz_v = (g / T) · p_v · (d_{bucket(v)} − L)
//   Saved by the forward for the backward: lse(s) (N floats) and e_b = d_b − L (N × (k + 1)
//   floats), the difference taken before rounding to fp32 (near the optimum d_k ≈ L).
//   The O(k) bucket arithmetic is done in fp64.
#pragma once

#include <cstdint>

namespace gopd::kernels {

// Probability floor of a top-k tail bucket given as log-probs (fp32 sums of k probabilities
// are uncertain at about this level).
inline constexpr float kTopkTailFloor = 1e-6f;

namespace cuda {

enum class DType : int { f32 = 0, bf16 = 1 };

struct Rows {
  const void* data = nullptr;  // (N, V) logits
  int64_t row_stride = 0;      // elements between row starts (≥ V)
  DType dtype = DType::f32;
};

// All launchers return 0 on success or the cudaError_t value of the first failure, and run on
// `stream` (a cudaStream_t; nullptr = legacy default stream). Pointers are device pointers.
// Nothing is synchronised.

int token_logprobs_forward(Rows logits, int64_t n, int64_t v, const int64_t* tokens,
                           float temperature, float* logprob, float* entropy /* nullable */,
                           float* lse /* saved */, void* stream);

// grad_entropy and entropy may be null (no entropy term). grad_logits has the logits' dtype and
// is written densely as (N, V) contiguous.
int token_logprobs_backward(Rows logits, int64_t n, int64_t v, const int64_t* tokens,
                            float temperature, const float* lse, const float* entropy,
                            const float* grad_logprob, const float* grad_entropy,
                            void* grad_logits, void* stream);

// reference.data == nullptr → no reference. All three Rows share one dtype.
int gopd_kl_forward(Rows student, Rows teacher, Rows reference, int64_t n, int64_t v,
                    float lambda, float temperature, float* loss, float* lse_s, float* lse_a,
                    void* stream);

int gopd_kl_backward(Rows student, Rows teacher, Rows reference, int64_t n, int64_t v,
                     float lambda, float temperature, const float* lse_s, const float* lse_a,
                     const float* loss, const float* grad_loss, void* grad_student,
                     void* stream);

int gopd_logratio_reward(Rows student, Rows teacher, Rows reference, int64_t n, int64_t v,
                         const int64_t* tokens, float lambda, float temperature,
                         float* advantage, float* lp_student, float* lp_teacher,
                         float* lp_reference /* nullable; ignored without a reference */,
                         void* stream);

// Name and compute capability of CUDA device `index` into `name` (NUL-terminated, at most
// `size` bytes) and *major / *minor; 0 on success, else the CUDA error code.
int device_properties(int index, char* name, int size, int* major, int* minor);

// ref_logprobs == nullptr → no reference. d is (N, k + 1) contiguous.
int gopd_kl_topk_forward(Rows student, int64_t n, int64_t v, const int64_t* teacher_ids,
                         const float* teacher_logprobs, const float* ref_logprobs, int64_t k,
                         float lambda, float temperature, float* loss, float* lse_s, float* d,
                         void* stream);

// d is the forward's e = d − L; dz_v = (g / T) · p_v · e_{bucket(v)}.
int gopd_kl_topk_backward(Rows student, int64_t n, int64_t v, const int64_t* teacher_ids,
                          int64_t k, float temperature, const float* lse_s, const float* d,
                          const float* grad_loss, void* grad_student, void* stream);

}  // namespace cuda
}  // namespace gopd::kernels
