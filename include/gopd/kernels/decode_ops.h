// Fused inference ops of one decode step on the CPU in fp32 (kernels/cpu/decode_rows.h):
// the transformer takes this path for a KV-cache step of one token per row without gradients
// (TransformerImpl::set_decode_kernel), and keeps its plain LibTorch path as the reference.
// Each op checks its inputs and throws std::invalid_argument naming the op and the operand.
#pragma once

#include <torch/torch.h>

namespace gopd::kernels {

// True when `x` can go through the fused decode ops: a CPU fp32 tensor, gradients off.
bool decode_fusable(const torch::Tensor& x);

// weight ⊙ x / sqrt(mean(x², -1) + eps); x (..., H) contiguous, weight (H).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// silu(gate) ⊙ up, same shapes.
torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up);

// One token per row: q (B, Hq·D), k and v (B, Hkv·D) straight from the projections; q_norm and
// k_norm (D) or undefined; cos/sin (B, D) fp32 at each row's position; the layer's caches
// (B, Hkv, C, D) contiguous, into which the new key (normed, rotated) and value are written at
// `length`; key_mask (B, ≥ length + 1) bool, any row stride. Returns the context (B, Hq·D).
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& q_norm, const torch::Tensor& k_norm,
                               double norm_eps, const torch::Tensor& cos, const torch::Tensor& sin,
                               torch::Tensor& key_cache, torch::Tensor& value_cache, int64_t length,
                               const torch::Tensor& key_mask, int64_t heads);

}  // namespace gopd::kernels
