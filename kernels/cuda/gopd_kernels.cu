// CUDA kernels of the fused row ops declared in include/gopd/kernels/cuda_launchers.h (the
// math and conventions live there). Every op streams its (N, V) logits rows once per pass and
// never materialises softmax: one thread block per row, 16-byte vector loads in the body of
// each row, an online log-sum-exp per thread (running max + rescaled sum), merged across the
// block with warp shuffles and shared memory. Inputs are fp32 or bf16, arithmetic is fp32,
// gradients are written in the logits' dtype.
//
// Departures from a textbook implementation, and why:
//   * Rows are read as x = z · log2(e) / T and every running max/sum is kept in base 2
//     (l = Σ 2^(x−m)), so each element costs one exp2f (a single MUFU.EX2, 2 ulp) instead of
//     expf's range reduction; that keeps the bf16 loops near the memory bound. Only per-row
//     results are converted back with ln 2. The rounding of x is the same one that z / T has.
//   * The KL forward keeps S = Σ 2^(x−m_s)·(x − a) per thread and returns
//     L = ln2 · (S/l_s − (m_s − m_a) + log2(l_a / l_s)), which equals Σ p (log p − log q) because
//     Σ p = 1, and loses less to cancellation than S/l_s − lse(s) + lse(a) when the student
//     is close to the target.
//   * The entropy keeps S = Σ 2^(x−m)·(x − m), so H = ln2 · (log2 l − S/l) is a sum of two
//     non-negative terms (no cancellation for peaked rows).
//   * Top-k: the student's tail lse is an fp32 pass over the non-id tokens (a shared-memory
//     bitmap of the ids); all O(k) bucket arithmetic is fp64, as the header specifies, and the
//     backward writes every token with the tail factor, then (after a barrier) the k ids.
//   * A token id outside [0, V) (sampled token or top-k id) gives NaN outputs rather than an
//     out-of-bounds read; the boundary is expected to validate them.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>

#include "gopd/kernels/cuda_launchers.h"

namespace gopd::kernels::cuda {
namespace {

constexpr int kBlock = 256;  // threads per row (one block per row)
constexpr int kWarps = kBlock / 32;
static_assert((kWarps & (kWarps - 1)) == 0, "the block reduction needs a power-of-two warp count");
// Largest top-k id bitmap kept in shared memory (the block reductions need ~2 KB besides);
// 40 KB covers V ≤ 327680, rows with a larger V test membership by scanning the ids.
constexpr int64_t kMaxBitmapBytes = 40 * 1024;

constexpr float kNegInf = -INFINITY;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---------------------------------------------------------------------------------------
// Element loads and stores (fp32 / bf16 ↔ fp32 in registers)

template <typename T>
struct VecWidth;
template <>
struct VecWidth<float> {
  static constexpr int value = 4;
};
template <>
struct VecWidth<__nv_bfloat16> {
  static constexpr int value = 8;
};

__device__ __forceinline__ float load_scalar(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load_scalar(const __nv_bfloat16* p) {
  const unsigned short bits = __ldg(reinterpret_cast<const unsigned short*>(p));
  return __uint_as_float(static_cast<unsigned int>(bits) << 16);
}

__device__ __forceinline__ void store_scalar(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_scalar(__nv_bfloat16* p, float x) {
  *p = __float2bfloat16_rn(x);
}

__device__ __forceinline__ void unpack16(const uint4& raw, float (&out)[4]) {
  out[0] = __uint_as_float(raw.x);
  out[1] = __uint_as_float(raw.y);
  out[2] = __uint_as_float(raw.z);
  out[3] = __uint_as_float(raw.w);
}
// bf16 is the high half of an fp32: element 2j is the low half of word j (little endian).
__device__ __forceinline__ void unpack16(const uint4& raw, float (&out)[8]) {
  const unsigned int words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    out[2 * j] = __uint_as_float(words[j] << 16);
    out[2 * j + 1] = __uint_as_float(words[j] & 0xffff0000u);
  }
}

__device__ __forceinline__ uint4 pack16(const float (&in)[4]) {
  return make_uint4(__float_as_uint(in[0]), __float_as_uint(in[1]), __float_as_uint(in[2]),
                    __float_as_uint(in[3]));
}
__device__ __forceinline__ unsigned int bf16_bits(float x) {
  return static_cast<unsigned int>(__bfloat16_as_ushort(__float2bfloat16_rn(x)));
}
__device__ __forceinline__ uint4 pack16(const float (&in)[8]) {
  unsigned int words[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) words[j] = bf16_bits(in[2 * j]) | (bf16_bits(in[2 * j + 1]) << 16);
  return make_uint4(words[0], words[1], words[2], words[3]);
}

// ---------------------------------------------------------------------------------------
// Row traversal: calls op(index, x, y) for chunks of consecutive elements of one row, where
// x[stream][j] = row_stream[index + j] · scale (scale = log2(e) / T) and (when kWrite) y[j] is
// stored to out[index + j].
// Chunks are whole 16-byte vectors in the body and single elements in the head (until the
// pointers are 16-byte aligned) and the tail. The vector path needs every pointer at the same
// offset modulo 16 bytes; a row where they differ is traversed element by element.

template <typename T>
__device__ __forceinline__ unsigned int misalignment(const T* p) {
  return static_cast<unsigned int>(reinterpret_cast<uintptr_t>(p) & 15u);
}

template <typename T, int kStreams, bool kWrite, typename Op>
__device__ __forceinline__ void visit_row(const T* const (&rows)[kStreams], T* out, int v,
                                          float scale, Op& op) {
  constexpr int kWidth = VecWidth<T>::value;
  constexpr int kUnroll = kStreams == 1 ? 4 : 2;  // 16-byte loads in flight per thread/stream
  const int tid = threadIdx.x;

  const unsigned int offset = misalignment(rows[0]);
  bool same = true;
#pragma unroll
  for (int s = 1; s < kStreams; ++s) same = same && misalignment(rows[s]) == offset;
  if constexpr (kWrite) same = same && misalignment(out) == offset;
  int head = v;
  if (same) {
    const int to_aligned = static_cast<int>(((16u - offset) & 15u) / sizeof(T));
    head = to_aligned < v ? to_aligned : v;
  }
  const int vectors = (v - head) / kWidth;
  const int body_end = head + vectors * kWidth;

  auto scalar = [&](int j) {
    float x[kStreams][1];
#pragma unroll
    for (int s = 0; s < kStreams; ++s) x[s][0] = load_scalar(rows[s] + j) * scale;
    float y[1];
    op(j, x, y);
    if constexpr (kWrite) store_scalar(out + j, y[0]);
  };

  for (int j = tid; j < head; j += kBlock) scalar(j);

  const uint4* vec_rows[kStreams];
#pragma unroll
  for (int s = 0; s < kStreams; ++s) vec_rows[s] = reinterpret_cast<const uint4*>(rows[s] + head);
  uint4* vec_out = kWrite ? reinterpret_cast<uint4*>(out + head) : nullptr;

  auto process = [&](int vec, const uint4(&raw)[kStreams]) {
    float x[kStreams][kWidth];
#pragma unroll
    for (int s = 0; s < kStreams; ++s) {
      unpack16(raw[s], x[s]);
#pragma unroll
      for (int j = 0; j < kWidth; ++j) x[s][j] *= scale;
    }
    float y[kWidth];
    op(head + vec * kWidth, x, y);
    if constexpr (kWrite) __stcs(vec_out + vec, pack16(y));
  };

  int vec = tid;
  for (; vec + (kUnroll - 1) * kBlock < vectors; vec += kUnroll * kBlock) {
    uint4 raw[kUnroll][kStreams];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int s = 0; s < kStreams; ++s) raw[u][s] = __ldg(vec_rows[s] + vec + u * kBlock);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) process(vec + u * kBlock, raw[u]);
  }
  for (; vec < vectors; vec += kBlock) {
    uint4 raw[kStreams];
#pragma unroll
    for (int s = 0; s < kStreams; ++s) raw[s] = __ldg(vec_rows[s] + vec);
    process(vec, raw);
  }

  for (int j = body_end + tid; j < v; j += kBlock) scalar(j);
}

// ---------------------------------------------------------------------------------------
// Online log-sum-exp pieces, base 2: a state (m, l) stands for log2 Σ 2^x = m + log2 l. An
// empty state is (m = −inf, l = 0); a chunk whose values are all −inf leaves a state unchanged,
// and no code path evaluates exp2(−inf − (−inf)).

template <int kCount>
__device__ __forceinline__ float chunk_max(const float (&x)[kCount]) {
  float m = x[0];
#pragma unroll
  for (int j = 1; j < kCount; ++j) m = fmaxf(m, x[j]);
  return m;
}

struct Lse {
  float m = kNegInf;
  float l = 0.0f;

  template <int kCount>
  __device__ __forceinline__ void add(const float (&x)[kCount]) {
    const float top = chunk_max(x);
    if (top > m) {
      l *= exp2f(m - top);  // m = −inf: l = 0 · 0
      m = top;
    }
    if (m == kNegInf) return;
#pragma unroll
    for (int j = 0; j < kCount; ++j) l += exp2f(x[j] - m);
  }
};

// Rescale factor of a state with max `from` to the max `to` ≥ from (to finite).
__device__ __forceinline__ float rescale(float from, float to) {
  return from == kNegInf ? 0.0f : exp2f(from - to);
}

__device__ __forceinline__ void merge_lse(float& m, float& l, float m2, float l2) {
  const float top = fmaxf(m, m2);
  if (top == kNegInf) return;
  l = l * rescale(m, top) + l2 * rescale(m2, top);
  m = top;
}

// ---------------------------------------------------------------------------------------
// Block all-reduce of K scalars with a combine function; every thread gets the result.

template <typename Scalar, int K>
struct Pack {
  Scalar v[K];
};

template <typename Scalar, int K, typename Combine>
__device__ __forceinline__ Pack<Scalar, K> block_allreduce(Pack<Scalar, K> x, Combine combine) {
  __shared__ Pack<Scalar, K> scratch[kWarps + 1];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    Pack<Scalar, K> other;
#pragma unroll
    for (int j = 0; j < K; ++j) other.v[j] = __shfl_xor_sync(0xffffffffu, x.v[j], offset);
    x = combine(x, other);
  }
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  if (warp == 0) {
    // Lanes ≥ kWarps hold copies; the butterfly over offsets < kWarps keeps groups separate.
    x = scratch[lane & (kWarps - 1)];
#pragma unroll
    for (int offset = kWarps / 2; offset > 0; offset >>= 1) {
      Pack<Scalar, K> other;
#pragma unroll
      for (int j = 0; j < K; ++j) other.v[j] = __shfl_xor_sync(0xffffffffu, x.v[j], offset);
      x = combine(x, other);
    }
    if (lane == 0) scratch[kWarps] = x;
  }
  __syncthreads();
  // Safe without a trailing barrier: the next call writes scratch[kWarps] only after its own
  // first barrier, which every thread reaches after reading this result.
  return scratch[kWarps];
}

struct CombineLse {  // Pack<float, 2 * pairs>: (m, l) pairs
  template <int K>
  __device__ __forceinline__ Pack<float, K> operator()(Pack<float, K> a,
                                                       const Pack<float, K>& b) const {
#pragma unroll
    for (int j = 0; j < K; j += 2) merge_lse(a.v[j], a.v[j + 1], b.v[j], b.v[j + 1]);
    return a;
  }
};

struct CombineSum {
  template <typename Scalar, int K>
  __device__ __forceinline__ Pack<Scalar, K> operator()(Pack<Scalar, K> a,
                                                        const Pack<Scalar, K>& b) const {
#pragma unroll
    for (int j = 0; j < K; ++j) a.v[j] += b.v[j];
    return a;
  }
};

// ---------------------------------------------------------------------------------------
// token_logprobs

// (m, l, S) with l = Σ 2^(x−m), S = Σ 2^(x−m)·(x − m) (x = s · log2 e):
// lse = ln2 · (m + log2 l), H = lse − Σ p s = ln2 · (log2 l − S/l).
struct EntropyState {
  float m = kNegInf;
  float l = 0.0f;
  float s = 0.0f;

  template <int kCount>
  __device__ __forceinline__ void operator()(int, const float (&x)[1][kCount], float (&)[kCount]) {
    const float top = chunk_max(x[0]);
    if (top > m) {
      if (m != kNegInf) {
        const float c = exp2f(m - top);
        s = c * (s + (m - top) * l);
        l = c * l;
      }
      m = top;
    }
    if (m == kNegInf) return;
#pragma unroll
    for (int j = 0; j < kCount; ++j) {
      const float shifted = x[0][j] - m;
      const float e = exp2f(shifted);
      if (e > 0.0f) {  // skips −inf (p = 0 contributes 0, never 0 · inf)
        l += e;
        s += e * shifted;
      }
    }
  }
};

struct CombineEntropy {
  __device__ __forceinline__ Pack<float, 3> operator()(Pack<float, 3> a,
                                                       const Pack<float, 3>& b) const {
    const float top = fmaxf(a.v[0], b.v[0]);
    if (top == kNegInf) return a;
    Pack<float, 3> r;
    r.v[0] = top;
    r.v[1] = 0.0f;
    r.v[2] = 0.0f;
    if (a.v[0] != kNegInf) {
      const float c = exp2f(a.v[0] - top);
      r.v[1] += c * a.v[1];
      r.v[2] += c * (a.v[2] + (a.v[0] - top) * a.v[1]);
    }
    if (b.v[0] != kNegInf) {
      const float c = exp2f(b.v[0] - top);
      r.v[1] += c * b.v[1];
      r.v[2] += c * (b.v[2] + (b.v[0] - top) * b.v[1]);
    }
    return r;
  }
};

template <typename T>
__global__ void __launch_bounds__(kBlock)
    token_logprobs_forward_kernel(const T* __restrict__ logits, int64_t stride, int64_t n, int v,
                                  const int64_t* __restrict__ tokens, float scale,
                                  float* __restrict__ logprob, float* __restrict__ entropy,
                                  float* __restrict__ lse) {
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* rows[1] = {logits + row * stride};
    // Thread 0 fetches the sampled logit up front so its latency overlaps the row pass.
    float token_logit = NAN;
    if (threadIdx.x == 0) {
      const int64_t y = tokens[row];
      if (y >= 0 && y < v) token_logit = load_scalar(rows[0] + y) * scale;
    }
    EntropyState state;
    visit_row<T, 1, false>(rows, static_cast<T*>(nullptr), v, scale, state);
    const Pack<float, 3> total =
        block_allreduce(Pack<float, 3>{{state.m, state.l, state.s}}, CombineEntropy{});
    if (threadIdx.x == 0) {
      const float m = total.v[0], l = total.v[1], s = total.v[2];
      const float row_lse2 = m + log2f(l);
      lse[row] = kLn2 * row_lse2;
      if (logprob != nullptr) logprob[row] = kLn2 * (token_logit - row_lse2);
      if (entropy != nullptr) entropy[row] = l > 0.0f ? kLn2 * (log2f(l) - s / l) : NAN;
    }
  }
}

struct TokenBackwardOp {
  float row_lse2;  // lse(s) · log2 e
  float entropy;
  float grad_logprob;
  float grad_entropy;
  float inv_t;
  int64_t token;

  template <int kCount>
  __device__ __forceinline__ void operator()(int index, const float (&x)[1][kCount],
                                             float (&y)[kCount]) const {
#pragma unroll
    for (int j = 0; j < kCount; ++j) {
      const float log2_p = x[0][j] - row_lse2;
      const float p = exp2f(log2_p);  // s = −inf → 0
      const float delta = (index + j == token) ? 1.0f : 0.0f;
      float g = grad_logprob * (delta - p);
      if (p > 0.0f) g -= grad_entropy * p * (kLn2 * log2_p + entropy);
      y[j] = g * inv_t;
    }
  }
};

template <typename T>
__global__ void __launch_bounds__(kBlock)
    token_logprobs_backward_kernel(const T* __restrict__ logits, int64_t stride, int64_t n, int v,
                                   const int64_t* __restrict__ tokens, float scale, float inv_t,
                                   const float* __restrict__ lse, const float* __restrict__ entropy,
                                   const float* __restrict__ grad_logprob,
                                   const float* __restrict__ grad_entropy,
                                   T* __restrict__ grad_logits) {
  const bool has_entropy = entropy != nullptr && grad_entropy != nullptr;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* rows[1] = {logits + row * stride};
    TokenBackwardOp op;
    op.row_lse2 = lse[row] * kLog2e;
    op.entropy = has_entropy ? entropy[row] : 0.0f;
    op.grad_logprob = grad_logprob != nullptr ? grad_logprob[row] : 0.0f;
    op.grad_entropy = has_entropy ? grad_entropy[row] : 0.0f;
    op.inv_t = inv_t;
    op.token = tokens[row];  // out of range: no δ term
    visit_row<T, 1, true>(rows, grad_logits + row * static_cast<int64_t>(v), v, scale, op);
  }
}

// ---------------------------------------------------------------------------------------
// gopd_kl: the target a = c1·x1 (+ c2·x2). kTargets = 1 means one model with coefficient 1
// (no reference, λ = 1 or λ = 0; the other coefficient is zero and its rows are not read).

template <int kTargets, int kCount>
__device__ __forceinline__ void target_logits(const float (&x)[1 + kTargets][kCount], float c1,
                                              float c2, float (&a)[kCount]) {
#pragma unroll
  for (int j = 0; j < kCount; ++j) {
    if constexpr (kTargets == 1) {
      a[j] = c1 * x[1][j];
    } else {
      const float t = x[1][j];
      const float r = x[2][j];
      a[j] = (t == kNegInf || r == kNegInf) ? kNegInf : fmaf(c1, t, c2 * r);
    }
  }
}

// Student (m_s, l_s), S = Σ e^(s−m_s)·(s − a) over tokens with finite a, a flag for a token
// with s > −inf and a = −inf (then L = +inf), and the target's (m_a, l_a).
template <int kTargets>
struct KlForwardState {
  float c1, c2;
  float m_s = kNegInf, l_s = 0.0f, s = 0.0f, infinite = 0.0f;
  float m_a = kNegInf, l_a = 0.0f;

  template <int kCount>
  __device__ __forceinline__ void operator()(int, const float (&x)[1 + kTargets][kCount],
                                             float (&)[kCount]) {
    float a[kCount];
    target_logits<kTargets>(x, c1, c2, a);

    const float top = chunk_max(x[0]);
    if (top > m_s) {
      const float c = rescale(m_s, top);
      l_s *= c;
      s *= c;
      m_s = top;
    }
    if (m_s != kNegInf) {
#pragma unroll
      for (int j = 0; j < kCount; ++j) {
        const float e = exp2f(x[0][j] - m_s);
        l_s += e;
        if (a[j] == kNegInf) {
          if (x[0][j] != kNegInf) infinite = 1.0f;
        } else if (e > 0.0f) {
          s += e * (x[0][j] - a[j]);
        }
      }
    }

    Lse target{m_a, l_a};
    target.add(a);
    m_a = target.m;
    l_a = target.l;
  }
};

struct CombineKl {  // (m_s, l_s, S, infinite, m_a, l_a)
  __device__ __forceinline__ Pack<float, 6> operator()(Pack<float, 6> a,
                                                       const Pack<float, 6>& b) const {
    const float top = fmaxf(a.v[0], b.v[0]);
    if (top != kNegInf) {
      const float ca = rescale(a.v[0], top), cb = rescale(b.v[0], top);
      a.v[1] = a.v[1] * ca + b.v[1] * cb;
      a.v[2] = a.v[2] * ca + b.v[2] * cb;
      a.v[0] = top;
    }
    a.v[3] = fmaxf(a.v[3], b.v[3]);
    merge_lse(a.v[4], a.v[5], b.v[4], b.v[5]);
    return a;
  }
};

// Row `row` of the gopd_kl operands: the student, then the target's one or two logit rows.
template <typename T, int kTargets>
__device__ __forceinline__ void kl_row_pointers(const T* (&rows)[1 + kTargets], int64_t row, const T* student,
                                                int64_t student_stride, const T* target1, int64_t target1_stride,
                                                const T* target2, int64_t target2_stride) {
  rows[0] = student + row * student_stride;
  rows[1] = target1 + row * target1_stride;
  if constexpr (kTargets == 2) rows[2] = target2 + row * target2_stride;
}

template <typename T, int kTargets>
__global__ void __launch_bounds__(kBlock)
    gopd_kl_forward_kernel(const T* __restrict__ student, int64_t student_stride,
                           const T* __restrict__ target1, int64_t target1_stride,
                           const T* __restrict__ target2, int64_t target2_stride, int64_t n, int v,
                           float c1, float c2, float scale, float* __restrict__ loss,
                           float* __restrict__ lse_s, float* __restrict__ lse_a) {
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* rows[1 + kTargets];
    kl_row_pointers<T, kTargets>(rows, row, student, student_stride, target1, target1_stride, target2,
                                 target2_stride);
    KlForwardState<kTargets> state;
    state.c1 = c1;
    state.c2 = c2;
    visit_row<T, 1 + kTargets, false>(rows, static_cast<T*>(nullptr), v, scale, state);
    const Pack<float, 6> total = block_allreduce(
        Pack<float, 6>{{state.m_s, state.l_s, state.s, state.infinite, state.m_a, state.l_a}},
        CombineKl{});
    if (threadIdx.x == 0) {
      const float m_s = total.v[0], l_s = total.v[1], s = total.v[2];
      const float m_a = total.v[4], l_a = total.v[5];
      lse_s[row] = kLn2 * (m_s + log2f(l_s));
      lse_a[row] = kLn2 * (m_a + log2f(l_a));
      // Σ p (s − a) = ln2 · S / l_s and L = Σ p (s − a) − lse(s) + lse(a).
      loss[row] = total.v[3] != 0.0f ? INFINITY : kLn2 * (s / l_s - (m_s - m_a) + log2f(l_a / l_s));
    }
  }
}

template <int kTargets>
struct KlBackwardOp {
  float c1, c2;
  float row_lse_s2, row_lse_a2;  // lse(s) · log2 e, lse(a) · log2 e
  float row_loss, grad_scale;    // L, g / T

  template <int kCount>
  __device__ __forceinline__ void operator()(int, const float (&x)[1 + kTargets][kCount],
                                             float (&y)[kCount]) const {
    float a[kCount];
    target_logits<kTargets>(x, c1, c2, a);
#pragma unroll
    for (int j = 0; j < kCount; ++j) {
      const float log2_p = x[0][j] - row_lse_s2;
      const float p = exp2f(log2_p);
      const float log_ratio = kLn2 * (log2_p - (a[j] - row_lse_a2));  // log p − log q
      y[j] = p > 0.0f ? grad_scale * p * (log_ratio - row_loss) : 0.0f;
    }
  }
};

template <typename T, int kTargets>
__global__ void __launch_bounds__(kBlock)
    gopd_kl_backward_kernel(const T* __restrict__ student, int64_t student_stride,
                            const T* __restrict__ target1, int64_t target1_stride,
                            const T* __restrict__ target2, int64_t target2_stride, int64_t n, int v,
                            float c1, float c2, float scale, float inv_t,
                            const float* __restrict__ lse_s, const float* __restrict__ lse_a,
                            const float* __restrict__ loss, const float* __restrict__ grad_loss,
                            T* __restrict__ grad_student) {
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* rows[1 + kTargets];
    kl_row_pointers<T, kTargets>(rows, row, student, student_stride, target1, target1_stride, target2,
                                 target2_stride);
    KlBackwardOp<kTargets> op;
    op.c1 = c1;
    op.c2 = c2;
    op.row_lse_s2 = lse_s[row] * kLog2e;
    op.row_lse_a2 = lse_a[row] * kLog2e;
    op.row_loss = loss[row];
    op.grad_scale = grad_loss[row] * inv_t;
    visit_row<T, 1 + kTargets, true>(rows, grad_student + row * static_cast<int64_t>(v), v, scale,
                                     op);
  }
}

// ---------------------------------------------------------------------------------------
// gopd_logratio_reward: lse of each model and its logit at the sampled token.

template <int kModels>
struct LseState {
  Lse lse[kModels];

  template <int kCount>
  __device__ __forceinline__ void operator()(int, const float (&x)[kModels][kCount],
                                             float (&)[kCount]) {
#pragma unroll
    for (int s = 0; s < kModels; ++s) lse[s].add(x[s]);
  }
};

template <typename T, int kModels>
__global__ void __launch_bounds__(kBlock)
    logratio_reward_kernel(const T* __restrict__ student, int64_t student_stride,
                           const T* __restrict__ teacher, int64_t teacher_stride,
                           const T* __restrict__ reference, int64_t reference_stride, int64_t n,
                           int v, const int64_t* __restrict__ tokens, float lambda, float scale,
                           float* __restrict__ advantage, float* __restrict__ lp_student,
                           float* __restrict__ lp_teacher, float* __restrict__ lp_reference) {
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* rows[kModels];
    rows[0] = student + row * student_stride;
    rows[1] = teacher + row * teacher_stride;
    if constexpr (kModels == 3) rows[2] = reference + row * reference_stride;
    float token_logit[kModels];
#pragma unroll
    for (int s = 0; s < kModels; ++s) token_logit[s] = NAN;
    if (threadIdx.x == 0) {
      const int64_t y = tokens[row];
      if (y >= 0 && y < v) {
#pragma unroll
        for (int s = 0; s < kModels; ++s) token_logit[s] = load_scalar(rows[s] + y) * scale;
      }
    }
    LseState<kModels> state;
    visit_row<T, kModels, false>(rows, static_cast<T*>(nullptr), v, scale, state);
    Pack<float, 2 * kModels> pack;
#pragma unroll
    for (int s = 0; s < kModels; ++s) {
      pack.v[2 * s] = state.lse[s].m;
      pack.v[2 * s + 1] = state.lse[s].l;
    }
    const Pack<float, 2 * kModels> total = block_allreduce(pack, CombineLse{});
    if (threadIdx.x == 0) {
      float lp[kModels];
#pragma unroll
      for (int s = 0; s < kModels; ++s)
        lp[s] = kLn2 * (token_logit[s] - (total.v[2 * s] + log2f(total.v[2 * s + 1])));
      if (lp_student != nullptr) lp_student[row] = lp[0];
      if (lp_teacher != nullptr) lp_teacher[row] = lp[1];
      float adv = lp[1] - lp[0];
      if constexpr (kModels == 3) {
        const float lp_r = lp[2];
        if (lp_reference != nullptr) lp_reference[row] = lp_r;
        adv = lambda * (lp[1] - lp_r) - (lp[0] - lp_r);
      }
      if (advantage != nullptr) advantage[row] = adv;
    }
  }
}

// ---------------------------------------------------------------------------------------
// gopd_kl_topk

// Online lse over the tokens that are not among the row's ids. kBitmap: membership from a
// shared-memory bitmap of V bits; otherwise by scanning the k ids (rows with a huge V).
template <bool kBitmap>
struct TailLseState {
  const uint32_t* bitmap;
  const int64_t* ids;
  int k;
  Lse lse;

  __device__ __forceinline__ bool is_id(int index) const {
    if constexpr (kBitmap) {
      return ((bitmap[index >> 5] >> (index & 31)) & 1u) != 0u;
    } else {
      for (int b = 0; b < k; ++b) {
        if (ids[b] == index) return true;
      }
      return false;
    }
  }

  template <int kCount>
  __device__ __forceinline__ void operator()(int index, const float (&x)[1][kCount],
                                             float (&)[kCount]) {
    float tail[kCount];
#pragma unroll
    for (int j = 0; j < kCount; ++j) tail[j] = is_id(index + j) ? kNegInf : x[0][j];
    lse.add(tail);
  }
};

// The O(k) bucket arithmetic runs in fp64 (as the header specifies); only the V-long tail pass
// is fp32. Its lse's are two-pass (a max reduction, then a sum reduction of exponentials
// relative to the max) so that the block reductions combine with fmax and + alone: an online
// (m, l) merge would cost an fp64 exp2 per shuffle step, and this phase is serial per row.

struct CombineMax {
  template <int K>
  __device__ __forceinline__ Pack<double, K> operator()(Pack<double, K> a,
                                                        const Pack<double, K>& b) const {
#pragma unroll
    for (int j = 0; j < K; ++j) a.v[j] = fmax(a.v[j], b.v[j]);
    return a;
  }
};

__device__ __forceinline__ double topk_target(double t, double r, double c_t, double c_r) {
  if ((c_t != 0.0 && t == -HUGE_VAL) || (c_r != 0.0 && r == -HUGE_VAL)) return -HUGE_VAL;
  return (c_t != 0.0 ? c_t * t : 0.0) + (c_r != 0.0 ? c_r * r : 0.0);
}

// x = z · scale at the id of bucket b (NaN for an id outside [0, V)).
template <typename T>
__device__ __forceinline__ float id_logit(const T* row, const int64_t* ids, int b, int v,
                                          float scale) {
  const int64_t id = ids[b];
  return (id >= 0 && id < v) ? load_scalar(row + id) * scale : NAN;
}

// log2 of m-relative sum: m + log2(sum), −inf for an empty sum.
__device__ __forceinline__ double log2_total(double m, double sum) {
  return sum > 0.0 ? m + log2(sum) : -HUGE_VAL;
}

template <typename T, bool kBitmap>
__global__ void __launch_bounds__(kBlock)
    topk_forward_kernel(const T* __restrict__ student, int64_t stride, int64_t n, int v,
                        const int64_t* __restrict__ teacher_ids,
                        const float* __restrict__ teacher_logprobs,
                        const float* __restrict__ ref_logprobs, int k, double c_t, double c_r,
                        float scale, float* __restrict__ loss, float* __restrict__ lse_s,
                        float* __restrict__ excess) {
  extern __shared__ __align__(16) unsigned char dynamic_smem[];
  uint32_t* bitmap = reinterpret_cast<uint32_t*>(dynamic_smem);
  const int words = (v + 31) / 32;
  const bool has_ref = ref_logprobs != nullptr;
  constexpr double kLn2d = 0.69314718055994530942;
  const int b0 = threadIdx.x;  // this thread's first bucket; its inputs are fetched up front

  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* rows[1] = {student + row * stride};
    const int64_t* ids = teacher_ids + row * k;
    const float* tlp = teacher_logprobs + row * k;
    const float* rlp = has_ref ? ref_logprobs + row * k : nullptr;

    // Issued before the tail pass so that their latency overlaps it.
    float x0 = 0.0f, t0 = 0.0f, r0 = 0.0f;
    if (b0 < k) {
      x0 = id_logit(rows[0], ids, b0, v, scale);
      t0 = tlp[b0];
      r0 = has_ref ? rlp[b0] : 0.0f;
    }
    // Inputs of id bucket b < k: x = z_id · scale, T_b, R_b.
    auto id_inputs = [&](int b, double& x, double& t, double& r) {
      if (b == b0) {
        x = x0;
        t = t0;
        r = r0;
      } else {
        x = id_logit(rows[0], ids, b, v, scale);
        t = tlp[b];
        r = has_ref ? rlp[b] : 0.0f;
      }
    };

    if constexpr (kBitmap) {
      for (int w = threadIdx.x; w < words; w += kBlock) bitmap[w] = 0u;
      __syncthreads();
      for (int b = threadIdx.x; b < k; b += kBlock) {
        const int64_t id = ids[b];
        if (id >= 0 && id < v) atomicOr(&bitmap[id >> 5], 1u << (id & 31));
      }
      __syncthreads();
    }

    TailLseState<kBitmap> tail_state;
    tail_state.bitmap = bitmap;
    tail_state.ids = ids;
    tail_state.k = k;
    visit_row<T, 1, false>(rows, static_cast<T*>(nullptr), v, scale, tail_state);

    // Pass 1: maxima of the tail (base 2), of the ids' x and of the id targets a_b.
    double id_max = -HUGE_VAL, target_max = -HUGE_VAL;
    for (int b = threadIdx.x; b < k; b += kBlock) {
      double x, t, r;
      id_inputs(b, x, t, r);
      id_max = fmax(id_max, x);
      target_max = fmax(target_max, topk_target(t, r, c_t, c_r));
    }
    const Pack<double, 3> maxima = block_allreduce(
        Pack<double, 3>{{static_cast<double>(tail_state.lse.m), id_max, target_max}}, CombineMax{});

    // Pass 2: sums relative to the maxima, and the teacher/reference mass of the ids.
    const float tail_l = tail_state.lse.l;
    double tail_sum = 0.0, id_sum = 0.0, mass_t = 0.0, mass_r = 0.0;
    if (tail_l > 0.0f) {
      tail_sum =
          static_cast<double>(tail_l) * exp2(static_cast<double>(tail_state.lse.m) - maxima.v[0]);
    }
    for (int b = threadIdx.x; b < k; b += kBlock) {
      double x, t, r;
      id_inputs(b, x, t, r);
      if (x != -HUGE_VAL) id_sum += exp2(x - maxima.v[1]);  // maxima.v[1] finite here
      mass_t += exp(t);
      if (has_ref) mass_r += exp(r);
    }
    const Pack<double, 4> sums =
        block_allreduce(Pack<double, 4>{{tail_sum, id_sum, mass_t, mass_r}}, CombineSum{});
    const double tail_lse2 = log2_total(maxima.v[0], sums.v[0]);
    const double id_lse2 = log2_total(maxima.v[1], sums.v[1]);
    const double top = fmax(tail_lse2, id_lse2);
    const double row_lse2 =  // lse(s) · log2 e (−inf only for a row with every token masked)
        top == -HUGE_VAL ? top : top + log2(exp2(tail_lse2 - top) + exp2(id_lse2 - top));
    // log P_k: log1p(−P_ids) while the ids hold under half the mass (the difference
    // lse_tail − lse(s) cancels there), else that difference (−inf with no tail token).
    const double id_mass = exp2(id_lse2 - row_lse2);
    const double log_tail = id_mass < 0.5 ? log1p(-id_mass) : kLn2d * (tail_lse2 - row_lse2);
    const double tail_floor = static_cast<double>(kTopkTailFloor);
    const double tail_t = log(fmax(1.0 - sums.v[2], tail_floor));
    const double tail_r = has_ref ? log(fmax(1.0 - sums.v[3], tail_floor)) : 0.0;
    const double tail_target = topk_target(tail_t, tail_r, c_t, c_r);
    const double target_top = fmax(maxima.v[2], tail_target);

    // Bucket b ∈ [0, k]: student log P_b and target a_b (natural logs).
    auto bucket = [&](int b, double& log_p, double& a) {
      if (b < k) {
        double x, t, r;
        id_inputs(b, x, t, r);
        log_p = kLn2d * (x - row_lse2);
        a = topk_target(t, r, c_t, c_r);
      } else {
        log_p = log_tail;
        a = tail_target;
      }
    };

    // Pass 3: Σ_b exp(a_b − max a) for log Z, and Σ_b P_b (log P_b − a_b); as Σ_b P_b = 1,
    // L = Σ_b P_b d_b = Σ_b P_b (log P_b − a_b) + log Z (fp64 keeps the cancellation harmless).
    double z_sum = 0.0, weighted = 0.0;
    for (int b = threadIdx.x; b <= k; b += kBlock) {
      double log_p, a;
      bucket(b, log_p, a);
      if (a != -HUGE_VAL) z_sum += exp(a - target_top);  // target_top finite here
      const double p = exp(log_p);
      if (p > 0.0) weighted += p * (log_p - a);
    }
    const Pack<double, 2> totals =
        block_allreduce(Pack<double, 2>{{z_sum, weighted}}, CombineSum{});
    const double log_z = totals.v[0] > 0.0 ? target_top + log(totals.v[0]) : -HUGE_VAL;
    const double row_loss = totals.v[1] + log_z;

    float* excess_row = excess + row * static_cast<int64_t>(k + 1);
    for (int b = threadIdx.x; b <= k; b += kBlock) {
      double log_p, a;
      bucket(b, log_p, a);
      excess_row[b] = static_cast<float>(log_p - (a - log_z) - row_loss);  // e_b = d_b − L
    }
    if (threadIdx.x == 0) {
      loss[row] = static_cast<float>(row_loss);
      lse_s[row] = static_cast<float>(kLn2d * row_lse2);
    }
    // The next row resets the bitmap only after its threads pass the barriers of this row's
    // reductions, which every thread reaches after its last bitmap read.
  }
}

struct TopkTailGradOp {
  float row_lse2;    // lse(s) · log2 e
  float factor;      // e_k = d_k − L
  float grad_scale;  // g / T

  template <int kCount>
  __device__ __forceinline__ void operator()(int, const float (&x)[1][kCount],
                                             float (&y)[kCount]) const {
#pragma unroll
    for (int j = 0; j < kCount; ++j) {
      const float p = exp2f(x[0][j] - row_lse2);
      y[j] = p > 0.0f ? grad_scale * p * factor : 0.0f;
    }
  }
};

// Writes every token with the tail bucket's factor, then (after a barrier, so the block's own
// earlier stores are ordered before) overwrites the k id tokens with their buckets' factors.
template <typename T>
__global__ void __launch_bounds__(kBlock)
    topk_backward_kernel(const T* __restrict__ student, int64_t stride, int64_t n, int v,
                         const int64_t* __restrict__ teacher_ids, int k, float scale, float inv_t,
                         const float* __restrict__ lse_s, const float* __restrict__ excess,
                         const float* __restrict__ grad_loss, T* __restrict__ grad_student) {
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* rows[1] = {student + row * stride};
    const int64_t* ids = teacher_ids + row * k;
    const float* excess_row = excess + row * static_cast<int64_t>(k + 1);
    T* out = grad_student + row * static_cast<int64_t>(v);
    TopkTailGradOp op;
    op.row_lse2 = lse_s[row] * kLog2e;
    op.factor = excess_row[k];
    op.grad_scale = grad_loss[row] * inv_t;
    visit_row<T, 1, true>(rows, out, v, scale, op);
    __syncthreads();
    for (int b = threadIdx.x; b < k; b += kBlock) {
      const int64_t id = ids[b];
      if (id < 0 || id >= v) continue;
      const float p = exp2f(load_scalar(rows[0] + id) * scale - op.row_lse2);
      store_scalar(out + id, p > 0.0f ? op.grad_scale * p * excess_row[b] : 0.0f);
    }
    // The next row writes other addresses, so it needs no barrier here.
  }
}

// ---------------------------------------------------------------------------------------
// Launch helpers

bool valid_shape(int64_t n, int64_t v) { return n >= 0 && v >= 1 && v <= INT_MAX; }
bool valid_temperature(float temperature) {
  return std::isfinite(temperature) && temperature > 0.0f;
}
bool valid_dtype(DType dtype) { return dtype == DType::f32 || dtype == DType::bf16; }

unsigned int grid_for(int64_t n) {
  constexpr int64_t kMaxGrid = 1 << 30;
  return static_cast<unsigned int>(n < kMaxGrid ? n : kMaxGrid);
}

template <typename T>
const T* typed(const Rows& rows) {
  return static_cast<const T*>(rows.data);
}

int launch_status() { return static_cast<int>(cudaGetLastError()); }
constexpr int kInvalid = static_cast<int>(cudaErrorInvalidValue);

// x = z · scale with scale = log2(e) / T (the kernels' base-2 units); inv_t = 1 / T for the
// gradients. Each is rounded once, from double.
struct Temperature {
  float scale;
  float inv_t;
};

Temperature temperature_factors(float temperature) {
  const double t = static_cast<double>(temperature);
  return Temperature{static_cast<float>(1.4426950408889634 / t), static_cast<float>(1.0 / t)};
}

// Target coefficients (cT, cR) and which rows feed a = c1·x1 (+ c2·x2).
struct Target {
  int count;  // 1 or 2
  Rows first, second;
  float c1, c2;
};

Target make_target(const Rows& teacher, const Rows& reference, float lambda) {
  const bool has_ref = reference.data != nullptr;
  const float c_t = has_ref ? lambda : 1.0f;
  const float c_r = has_ref ? 1.0f - lambda : 0.0f;
  if (c_t != 0.0f && c_r != 0.0f) return Target{2, teacher, reference, c_t, c_r};
  if (c_t != 0.0f) return Target{1, teacher, teacher, c_t, 0.0f};
  return Target{1, reference, reference, c_r, 0.0f};
}

bool same_dtype(const Rows& student, const Target& target) {
  return valid_dtype(student.dtype) && target.first.dtype == student.dtype &&
         target.second.dtype == student.dtype;
}

template <typename T>
void launch_token_forward(const Rows& logits, int64_t n, int v, const int64_t* tokens,
                          Temperature temp, float* logprob, float* entropy, float* lse,
                          cudaStream_t s) {
  token_logprobs_forward_kernel<T><<<grid_for(n), kBlock, 0, s>>>(
      typed<T>(logits), logits.row_stride, n, v, tokens, temp.scale, logprob, entropy, lse);
}

template <typename T>
void launch_token_backward(const Rows& logits, int64_t n, int v, const int64_t* tokens,
                           Temperature temp, const float* lse, const float* entropy,
                           const float* grad_logprob, const float* grad_entropy, void* grad_logits,
                           cudaStream_t s) {
  token_logprobs_backward_kernel<T><<<grid_for(n), kBlock, 0, s>>>(
      typed<T>(logits), logits.row_stride, n, v, tokens, temp.scale, temp.inv_t, lse, entropy,
      grad_logprob, grad_entropy, static_cast<T*>(grad_logits));
}

template <typename T, int kTargets>
void launch_kl_forward(const Rows& student, const Target& target, int64_t n, int v,
                       Temperature temp, float* loss, float* lse_s, float* lse_a, cudaStream_t s) {
  gopd_kl_forward_kernel<T, kTargets><<<grid_for(n), kBlock, 0, s>>>(
      typed<T>(student), student.row_stride, typed<T>(target.first), target.first.row_stride,
      typed<T>(target.second), target.second.row_stride, n, v, target.c1, target.c2, temp.scale,
      loss, lse_s, lse_a);
}

template <typename T, int kTargets>
void launch_kl_backward(const Rows& student, const Target& target, int64_t n, int v,
                        Temperature temp, const float* lse_s, const float* lse_a, const float* loss,
                        const float* grad_loss, void* grad_student, cudaStream_t s) {
  gopd_kl_backward_kernel<T, kTargets><<<grid_for(n), kBlock, 0, s>>>(
      typed<T>(student), student.row_stride, typed<T>(target.first), target.first.row_stride,
      typed<T>(target.second), target.second.row_stride, n, v, target.c1, target.c2, temp.scale,
      temp.inv_t, lse_s, lse_a, loss, grad_loss, static_cast<T*>(grad_student));
}

template <typename T>
void launch_kl_forward_any(const Rows& student, const Target& target, int64_t n, int v,
                           Temperature temp, float* loss, float* lse_s, float* lse_a,
                           cudaStream_t s) {
  if (target.count == 2) {
    launch_kl_forward<T, 2>(student, target, n, v, temp, loss, lse_s, lse_a, s);
  } else {
    launch_kl_forward<T, 1>(student, target, n, v, temp, loss, lse_s, lse_a, s);
  }
}

template <typename T>
void launch_kl_backward_any(const Rows& student, const Target& target, int64_t n, int v,
                            Temperature temp, const float* lse_s, const float* lse_a,
                            const float* loss, const float* grad_loss, void* grad_student,
                            cudaStream_t s) {
  if (target.count == 2) {
    launch_kl_backward<T, 2>(student, target, n, v, temp, lse_s, lse_a, loss, grad_loss,
                             grad_student, s);
  } else {
    launch_kl_backward<T, 1>(student, target, n, v, temp, lse_s, lse_a, loss, grad_loss,
                             grad_student, s);
  }
}

template <typename T>
void launch_logratio(const Rows& student, const Rows& teacher, const Rows& reference, int64_t n,
                     int v, const int64_t* tokens, float lambda, Temperature temp, float* advantage,
                     float* lp_student, float* lp_teacher, float* lp_reference, cudaStream_t s) {
  if (reference.data != nullptr) {
    logratio_reward_kernel<T, 3><<<grid_for(n), kBlock, 0, s>>>(
        typed<T>(student), student.row_stride, typed<T>(teacher), teacher.row_stride,
        typed<T>(reference), reference.row_stride, n, v, tokens, lambda, temp.scale, advantage,
        lp_student, lp_teacher, lp_reference);
  } else {
    logratio_reward_kernel<T, 2><<<grid_for(n), kBlock, 0, s>>>(
        typed<T>(student), student.row_stride, typed<T>(teacher), teacher.row_stride,
        typed<T>(teacher), teacher.row_stride, n, v, tokens, 1.0f, temp.scale, advantage,
        lp_student, lp_teacher, nullptr);
  }
}

template <typename T>
void launch_topk_forward(const Rows& student, int64_t n, int v, const int64_t* teacher_ids,
                         const float* teacher_logprobs, const float* ref_logprobs, int k,
                         double c_t, double c_r, Temperature temp, float* loss, float* lse_s,
                         float* d, cudaStream_t s) {
  const int64_t bitmap_bytes = static_cast<int64_t>((v + 31) / 32) * 4;
  if (bitmap_bytes <= kMaxBitmapBytes) {
    topk_forward_kernel<T, true><<<grid_for(n), kBlock, static_cast<size_t>(bitmap_bytes), s>>>(
        typed<T>(student), student.row_stride, n, v, teacher_ids, teacher_logprobs, ref_logprobs, k,
        c_t, c_r, temp.scale, loss, lse_s, d);
  } else {
    topk_forward_kernel<T, false><<<grid_for(n), kBlock, 0, s>>>(
        typed<T>(student), student.row_stride, n, v, teacher_ids, teacher_logprobs, ref_logprobs, k,
        c_t, c_r, temp.scale, loss, lse_s, d);
  }
}

template <typename T>
void launch_topk_backward(const Rows& student, int64_t n, int v, const int64_t* teacher_ids, int k,
                          Temperature temp, const float* lse_s, const float* d,
                          const float* grad_loss, void* grad_student, cudaStream_t s) {
  topk_backward_kernel<T><<<grid_for(n), kBlock, 0, s>>>(
      typed<T>(student), student.row_stride, n, v, teacher_ids, k, temp.scale, temp.inv_t, lse_s, d,
      grad_loss, static_cast<T*>(grad_student));
}

// What every launcher hands its typed launch: the stream, T's factors and V as an int.
struct Launch {
  cudaStream_t stream;
  Temperature temp;
  int v;
};

template <typename T>
struct ElemTag {
  using type = T;
};
template <typename Tag>
using ElemOf = typename Tag::type;

// The common part of the launchers after validation: nothing to launch for n = 0; otherwise
// `launch(ElemTag<element type>, Launch)` for the operands' dtype, then the launch status.
template <typename Fn>
int launch_rows(DType dtype, int64_t n, int64_t v, float temperature, void* stream, Fn&& launch) {
  if (n == 0) return 0;
  const Launch l{static_cast<cudaStream_t>(stream), temperature_factors(temperature),
                 static_cast<int>(v)};
  if (dtype == DType::f32) {
    launch(ElemTag<float>{}, l);
  } else {
    launch(ElemTag<__nv_bfloat16>{}, l);
  }
  return launch_status();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Launchers: validate, pick the dtype (and target / reference) instantiation, launch.

int device_properties(int index, char* name, int size, int* major, int* minor) {
  cudaDeviceProp properties{};
  const cudaError_t status = cudaGetDeviceProperties(&properties, index);
  if (status != cudaSuccess) return static_cast<int>(status);
  if (size > 0) {
    int i = 0;
    for (; i + 1 < size && properties.name[i] != '\0'; ++i) name[i] = properties.name[i];
    name[i] = '\0';
  }
  *major = properties.major;
  *minor = properties.minor;
  return 0;
}

int token_logprobs_forward(Rows logits, int64_t n, int64_t v, const int64_t* tokens,
                           float temperature, float* logprob, float* entropy, float* lse,
                           void* stream) {
  if (!valid_shape(n, v) || !valid_temperature(temperature) || !valid_dtype(logits.dtype)) {
    return kInvalid;
  }
  return launch_rows(logits.dtype, n, v, temperature, stream, [&](auto tag, const Launch& l) {
    launch_token_forward<ElemOf<decltype(tag)>>(logits, n, l.v, tokens, l.temp, logprob, entropy,
                                                lse, l.stream);
  });
}

int token_logprobs_backward(Rows logits, int64_t n, int64_t v, const int64_t* tokens,
                            float temperature, const float* lse, const float* entropy,
                            const float* grad_logprob, const float* grad_entropy, void* grad_logits,
                            void* stream) {
  if (!valid_shape(n, v) || !valid_temperature(temperature) || !valid_dtype(logits.dtype)) {
    return kInvalid;
  }
  return launch_rows(logits.dtype, n, v, temperature, stream, [&](auto tag, const Launch& l) {
    launch_token_backward<ElemOf<decltype(tag)>>(logits, n, l.v, tokens, l.temp, lse, entropy,
                                                 grad_logprob, grad_entropy, grad_logits, l.stream);
  });
}

int gopd_kl_forward(Rows student, Rows teacher, Rows reference, int64_t n, int64_t v, float lambda,
                    float temperature, float* loss, float* lse_s, float* lse_a, void* stream) {
  const Target target = make_target(teacher, reference, lambda);
  if (!valid_shape(n, v) || !valid_temperature(temperature) || !same_dtype(student, target)) {
    return kInvalid;
  }
  return launch_rows(student.dtype, n, v, temperature, stream, [&](auto tag, const Launch& l) {
    launch_kl_forward_any<ElemOf<decltype(tag)>>(student, target, n, l.v, l.temp, loss, lse_s,
                                                 lse_a, l.stream);
  });
}

int gopd_kl_backward(Rows student, Rows teacher, Rows reference, int64_t n, int64_t v, float lambda,
                     float temperature, const float* lse_s, const float* lse_a, const float* loss,
                     const float* grad_loss, void* grad_student, void* stream) {
  const Target target = make_target(teacher, reference, lambda);
  if (!valid_shape(n, v) || !valid_temperature(temperature) || !same_dtype(student, target)) {
    return kInvalid;
  }
  return launch_rows(student.dtype, n, v, temperature, stream, [&](auto tag, const Launch& l) {
    launch_kl_backward_any<ElemOf<decltype(tag)>>(student, target, n, l.v, l.temp, lse_s, lse_a,
                                                  loss, grad_loss, grad_student, l.stream);
  });
}

int gopd_logratio_reward(Rows student, Rows teacher, Rows reference, int64_t n, int64_t v,
                         const int64_t* tokens, float lambda, float temperature, float* advantage,
                         float* lp_student, float* lp_teacher, float* lp_reference, void* stream) {
  const bool has_ref = reference.data != nullptr;
  if (!valid_shape(n, v) || !valid_temperature(temperature) || !valid_dtype(student.dtype) ||
      teacher.dtype != student.dtype || (has_ref && reference.dtype != student.dtype)) {
    return kInvalid;
  }
  return launch_rows(student.dtype, n, v, temperature, stream, [&](auto tag, const Launch& l) {
    launch_logratio<ElemOf<decltype(tag)>>(student, teacher, reference, n, l.v, tokens, lambda,
                                           l.temp, advantage, lp_student, lp_teacher, lp_reference,
                                           l.stream);
  });
}

int gopd_kl_topk_forward(Rows student, int64_t n, int64_t v, const int64_t* teacher_ids,
                         const float* teacher_logprobs, const float* ref_logprobs, int64_t k,
                         float lambda, float temperature, float* loss, float* lse_s, float* d,
                         void* stream) {
  if (!valid_shape(n, v) || !valid_temperature(temperature) || !valid_dtype(student.dtype) ||
      k < 0 || k > v) {
    return kInvalid;
  }
  const bool has_ref = ref_logprobs != nullptr;
  // cR = 1 − λ rounded to fp32 as gopd_kl forms it (λ = 1 gives exactly cR = 0).
  const double c_t = has_ref ? static_cast<double>(lambda) : 1.0;
  const double c_r = has_ref ? static_cast<double>(1.0f - lambda) : 0.0;
  const int ki = static_cast<int>(k);
  return launch_rows(student.dtype, n, v, temperature, stream, [&](auto tag, const Launch& l) {
    launch_topk_forward<ElemOf<decltype(tag)>>(student, n, l.v, teacher_ids, teacher_logprobs,
                                               ref_logprobs, ki, c_t, c_r, l.temp, loss, lse_s, d,
                                               l.stream);
  });
}

int gopd_kl_topk_backward(Rows student, int64_t n, int64_t v, const int64_t* teacher_ids, int64_t k,
                          float temperature, const float* lse_s, const float* d,
                          const float* grad_loss, void* grad_student, void* stream) {
  if (!valid_shape(n, v) || !valid_temperature(temperature) || !valid_dtype(student.dtype) ||
      k < 0 || k > v) {
    return kInvalid;
  }
  const int ki = static_cast<int>(k);
  return launch_rows(student.dtype, n, v, temperature, stream, [&](auto tag, const Launch& l) {
    launch_topk_backward<ElemOf<decltype(tag)>>(student, n, l.v, teacher_ids, ki, l.temp, lse_s, d,
                                                grad_loss, grad_student, l.stream);
  });
}

}  // namespace gopd::kernels::cuda
