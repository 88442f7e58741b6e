// Implements the fused decode-step kernels of decode_rows.h.
#include "decode_rows.h"
#include "vector_math.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace gopd::kernels::cpu {
namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelWork = 1 << 15;

int threads_for(int64_t work, int threads) {
  return work < kParallelWork ? 1 : std::max(1, threads);
}

GOPD_INLINE void rms_norm_row(const float* x, const float* weight, int64_t width, float eps, float* out) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < width; ++i) sum += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(width) + eps);
#pragma omp simd
  for (int64_t i = 0; i < width; ++i) out[i] = weight[i] * (x[i] * scale);
}

// x (D) → out (D): optional RMSNorm over the head, then the rotary rotation
// out = x·cos + rotate_half(x)·sin with rotate_half(x) = (−x₂, x₁).
GOPD_INLINE void norm_rotate(const float* x, const float* norm, float eps, const float* cos,
                        const float* sin, int64_t dim, float* scratch, float* out) {
  const float* in = x;
  if (norm != nullptr) {
    rms_norm_row(x, norm, dim, eps, scratch);
    in = scratch;
  }
  const int64_t half = dim / 2;
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    out[i] = in[i] * cos[i] + (-in[i + half]) * sin[i];
    out[i + half] = in[i + half] * cos[i + half] + in[i] * sin[i + half];
  }
}

GOPD_INLINE float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// One (row, kv head): cache write, then its G query heads over the visible keys, all G in one
// pass over the cached keys and one over the values (each read once per step, not G times:
// at large batch the cache does not fit in any CPU cache and this loop is memory-bound).
GOPD_VECTOR_CLONES void attend_unit(const DecodeAttention& s, int64_t unit, std::vector<float>& buffer) {
  const int64_t b = unit / s.kv_heads;
  const int64_t g = unit % s.kv_heads;
  const int64_t dim = s.head_dim;
  const int64_t group = s.heads / s.kv_heads;
  const int64_t keys = s.length + 1;
  buffer.resize(static_cast<size_t>((1 + 2 * group) * dim + group * keys));
  float* scratch = buffer.data();
  float* queries = scratch + dim;              // (G, D)
  float* contexts = queries + group * dim;     // (G, D)
  float* scores = contexts + group * dim;      // (G, keys)
  const float* cos = s.cos + b * dim;
  const float* sin = s.sin + b * dim;
  float* key_cache = s.key_cache + (b * s.kv_heads + g) * s.capacity * dim;
  float* value_cache = s.value_cache + (b * s.kv_heads + g) * s.capacity * dim;
  norm_rotate(s.k + (b * s.kv_heads + g) * dim, s.k_norm, s.norm_eps, cos, sin, dim, scratch,
              key_cache + s.length * dim);
  std::copy_n(s.v + (b * s.kv_heads + g) * dim, dim, value_cache + s.length * dim);
  for (int64_t i = 0; i < group; ++i) {
    norm_rotate(s.q + (b * s.heads + g * group + i) * dim, s.q_norm, s.norm_eps, cos, sin, dim,
                scratch, queries + i * dim);
  }

  const bool* mask = s.key_mask + b * s.mask_stride;
  bool any = false;
  for (int64_t j = 0; j < keys; ++j) any = any || mask[j];
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)));
  constexpr float kMasked = -std::numeric_limits<float>::infinity();  // exp_approx → exactly 0
  for (int64_t j = 0; j < keys; ++j) {
    const float* key = key_cache + j * dim;
    for (int64_t i = 0; i < group; ++i) {
      // no visible key: every score is the same lowest value in the reference, so uniform
      scores[i * keys + j] = !any ? 0.0f : mask[j] ? dot(queries + i * dim, key, dim) * scale : kMasked;
    }
  }
  std::fill_n(contexts, group * dim, 0.0f);
  float inverse_storage[16];
  std::vector<float> spill;
  float* inverse = inverse_storage;
  if (group > 16) {
    spill.resize(static_cast<size_t>(group));
    inverse = spill.data();
  }
  for (int64_t i = 0; i < group; ++i) {
    float* row = scores + i * keys;
    float max = kMasked;
    for (int64_t j = 0; j < keys; ++j) max = std::max(max, row[j]);
    float total = 0.0f;
#pragma omp simd reduction(+ : total)
    for (int64_t j = 0; j < keys; ++j) {
      row[j] = exp_approx(row[j] - max);
      total += row[j];
    }
    inverse[i] = 1.0f / total;
  }
  for (int64_t j = 0; j < keys; ++j) {
    if (any && !mask[j]) continue;
    const float* value = value_cache + j * dim;
    for (int64_t i = 0; i < group; ++i) {
      const float weight = scores[i * keys + j];
      float* context = contexts + i * dim;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) context[d] += weight * value[d];
    }
  }
  for (int64_t i = 0; i < group; ++i) {
    float* out = s.out + (b * s.heads + g * group + i) * dim;
    const float* context = contexts + i * dim;
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) out[d] = context[d] * inverse[i];
  }
}

GOPD_VECTOR_CLONES void rms_norm_range(const float* x, const float* weight, int64_t begin,
                                      int64_t end, int64_t width, float eps, float* out) {
  for (int64_t r = begin; r < end; ++r) rms_norm_row(x + r * width, weight, width, eps, out + r * width);
}

GOPD_VECTOR_CLONES void silu_mul_range(const float* gate, const float* up, int64_t begin,
                                      int64_t end, float* out) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) out[i] = gate[i] / (1.0f + exp_approx(-gate[i])) * up[i];
}

}  // namespace

void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t width, float eps,
                   float* out, int threads) {
  const int team = threads_for(rows * width, threads);
#pragma omp parallel for num_threads(team) schedule(static) if (team > 1)
  for (int64_t r = 0; r < rows; ++r) rms_norm_range(x, weight, r, r + 1, width, eps, out);
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out, int threads) {
  const int team = threads_for(4 * n, threads);
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(team) schedule(static) if (team > 1)
  for (int64_t block = 0; block < blocks; ++block) {
    silu_mul_range(gate, up, block * kBlock, std::min(n, (block + 1) * kBlock), out);
  }
}

void decode_attention(const DecodeAttention& step, int threads) {
  const int64_t units = step.batch * step.kv_heads;
  if (units == 0) return;
  const int64_t work = step.batch * step.heads * (step.length + 1) * step.head_dim * 2;
  const int team = static_cast<int>(std::min<int64_t>(threads_for(work, threads), units));
#pragma omp parallel num_threads(team) if (team > 1)
  {
    std::vector<float> buffer;
#pragma omp for schedule(static)
    for (int64_t unit = 0; unit < units; ++unit) attend_unit(step, unit, buffer);
  }
}

}  // namespace gopd::kernels::cpu
