// Fused CPU kernels of one decode step (one new token per row against the KV cache), fp32,
// inference only. They replace, per decoder layer, the ~60 small LibTorch ops of the reference
// path (RMSNorm, q/k norm, rotary, cache write, mask, softmax, two batched matmuls, SiLU·up)
// by three loops, which is what dominates a decode step at small batch. Same formulas as
// src/model/transformer.cpp's reference path; tests/parity/decode_fused_test.cpp compares them.
// No LibTorch here: this file is compiled with -O3 and OpenMP (the same libgomp pool LibTorch
// uses), each parallel loop over independent rows or (row, kv head) units.
#pragma once

#include <cstdint>

namespace gopd::kernels::cpu {

// out[r] = weight ⊙ x[r] / sqrt(mean(x[r]²) + eps) for rows r < rows; x and out (rows, width).
void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t width, float eps,
                   float* out, int threads);

// out = silu(gate) ⊙ up, n elements.
void silu_mul(const float* gate, const float* up, int64_t n, float* out, int threads);

struct DecodeAttention {
  int64_t batch = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t capacity = 0;  // cache positions per (row, kv head)
  int64_t length = 0;    // positions already cached; the new key goes to `length`
  float norm_eps = 0.0f;
  const float* q = nullptr;       // (B, Hq, D) the new queries, before q-norm and rotary
  const float* k = nullptr;       // (B, Hkv, D) the new keys, before k-norm and rotary
  const float* v = nullptr;       // (B, Hkv, D)
  const float* q_norm = nullptr;  // (D) or null (no qk-norm)
  const float* k_norm = nullptr;  // (D) or null
  const float* cos = nullptr;     // (B, D) at each row's position
  const float* sin = nullptr;     // (B, D)
  float* key_cache = nullptr;     // (B, Hkv, capacity, D)
  float* value_cache = nullptr;   // (B, Hkv, capacity, D)
  const bool* key_mask = nullptr; // row b's flags at key_mask[b * mask_stride + j], j ≤ length
  int64_t mask_stride = 0;
  float* out = nullptr;           // (B, Hq, D) attention context
};

// Writes each row's new key (normed, rotated) and value at position `length` of its cache and
// attends its query heads over positions 0..length where the mask is set; a row with no key
// set attends uniformly over all of them (the reference's lowest-finite masking).
void decode_attention(const DecodeAttention& step, int threads);

}  // namespace gopd::kernels::cpu
