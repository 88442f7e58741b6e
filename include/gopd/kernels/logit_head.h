// The token-level ops of ops.h fed from hidden states instead of logits: a LogitHead is the
// final hidden states of the positions to score and the output matrix that turns them into
// logits, and the ops below apply it `chunk_rows` rows at a time — lm_head on a chunk, the op,
// the chunk's logits released — so no (tokens × vocab) tensor exists beyond one chunk. The
// gradient is taken the same way: backward recomputes each chunk's logits, back-propagates the
// op through them, and accumulates the hidden states' and the output matrix's gradients (fp32).
// Teacher and reference heads are constants, recomputed per chunk.
//
// chunk_rows ≤ 0, or at least the row count, is the plain path: the whole logits at once with
// ordinary autograd (the reference the chunked path is tested against).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "gopd/kernels/ops.h"

namespace gopd::kernels {

struct LogitHead {
  torch::Tensor hidden;  // (..., H) final hidden states (after the last norm)
  torch::Tensor weight;  // (V, H) lm_head.weight or the tied embedding, possibly cut to V' rows
  // The matmul's dtype: bf16 under mixed precision, otherwise the weight's. Logits are fp32.
  torch::ScalarType compute_dtype = torch::kFloat;
  int64_t chunk_rows = 0;  // rows per lm_head matmul; ≤ 0 = all rows at once

  bool defined() const { return hidden.defined(); }
  int64_t rows() const;  // the product of hidden's leading dims
  // fp32 logits (end − begin, V) of rows [begin, end) of the flattened hidden states.
  torch::Tensor logits(int64_t begin, int64_t end) const;
  // Every row at once, shaped (..., V): the plain path.
  torch::Tensor all_logits() const;
};

// A head whose hidden states and weight are detached and whose chunking is `chunk_rows`: the
// form teachers and references take.
LogitHead frozen_head(const torch::Tensor& hidden, const torch::Tensor& weight,
                      torch::ScalarType compute_dtype, int64_t chunk_rows);

// What an op does to one chunk: fp32 logits (n, V) of the flattened rows [begin, end) → per-row
// outputs (n) each; the first carries the gradient, the others are statistics (detached).
using RowOp = std::function<std::vector<torch::Tensor>(const torch::Tensor& logits, int64_t begin,
                                                       int64_t end)>;

// The op over every row of `head`, chunked as the head says; outputs shaped like the head's
// leading dims. The ops below are this with an op of ops.h.
std::vector<torch::Tensor> map_rows(const LogitHead& head, RowOp op);

// ops.h's token_logprobs from a head: logprobs (...) with the gradient of hidden and weight;
// entropy (when asked) detached.
TokenLogprobs token_logprobs(const LogitHead& head, const torch::Tensor& tokens, double temperature,
                             bool with_entropy, Impl impl);

// ops.h's gopd_kl from heads; an undefined reference head is "no reference" (λ unused). The
// chunking is the student's.
torch::Tensor gopd_kl(const LogitHead& student, const LogitHead& teacher,
                      const LogitHead& reference, double lambda, double temperature, Impl impl);

// ops.h's gopd_kl_topk with the student from a head (teacher_ids etc. shaped like its rows).
torch::Tensor gopd_kl_topk(const LogitHead& student, const torch::Tensor& teacher_ids,
                           const torch::Tensor& teacher_logprobs,
                           const torch::Tensor& reference_logprobs, double lambda,
                           double temperature, Impl impl);

}  // namespace gopd::kernels
