// Fused CPU row kernels: the same ops and formulas as the CUDA launchers (see
// include/gopd/kernels/cuda_launchers.h for the math), computed one row at a time with an
// online log-sum-exp over cache-sized chunks. Each function processes rows [begin, end) and
// allocates only a few chunk buffers, so callers can run row ranges on several threads.
// No LibTorch here: this file is compiled with vectorisation flags of its own.
#pragma once

#include <cstdint>

#include "gopd/kernels/cuda_launchers.h"

namespace gopd::kernels::cpu {

using cuda::DType;
using cuda::Rows;

struct RowRange {
  int64_t begin = 0;
  int64_t end = 0;
};

void token_logprobs_forward(Rows logits, int64_t v, const int64_t* tokens, float temperature,
                            float* logprob, float* entropy, float* lse, RowRange rows);

void token_logprobs_backward(Rows logits, int64_t v, const int64_t* tokens, float temperature,
                             const float* lse, const float* entropy, const float* grad_logprob,
                             const float* grad_entropy, void* grad_logits, RowRange rows);

void gopd_kl_forward(Rows student, Rows teacher, Rows reference, int64_t v, float lambda,
                     float temperature, float* loss, float* lse_s, float* lse_a, RowRange rows);

void gopd_kl_backward(Rows student, Rows teacher, Rows reference, int64_t v, float lambda,
                      float temperature, const float* lse_s, const float* lse_a,
                      const float* loss, const float* grad_loss, void* grad_student,
                      RowRange rows);

void gopd_logratio_reward(Rows student, Rows teacher, Rows reference, int64_t v,
                          const int64_t* tokens, float lambda, float temperature,
                          float* advantage, float* lp_student, float* lp_teacher,
                          float* lp_reference, RowRange rows);

void gopd_kl_topk_forward(Rows student, int64_t v, const int64_t* teacher_ids,
                          const float* teacher_logprobs, const float* ref_logprobs, int64_t k,
                          float lambda, float temperature, float* loss, float* lse_s, float* d,
                          RowRange rows);

void gopd_kl_topk_backward(Rows student, int64_t v, const int64_t* teacher_ids, int64_t k,
                           float temperature, const float* lse_s, const float* d,
                           const float* grad_loss, void* grad_student, RowRange rows);

}  // namespace gopd::kernels::cpu
