// Fused CPU row kernels (formulas in include/gopd/kernels/cuda_launchers.h).
//
// Each row is read in chunks of kChunk elements that stay in L1: a chunk is converted to fp32
// (and divided by the temperature) into a small buffer, its max is taken, and its exponentials
// are added to a running (max, sum) pair that is rescaled when the max grows. So a row is
// streamed from memory once per pass, and no (rows × vocab) temporary exists: the only large
// write is the gradient a backward must return.
//
// Vectorisation: the inner loops are `omp simd` loops (compiled with -fopenmp-simd, no OpenMP
// runtime) over an exp() of our own that the compiler can vectorise (libm's expf is a call),
// built with -fno-trapping-math so the −inf selects if-convert, and the entry points are
// compiled twice with target_clones (x86-64-v3, i.e. AVX2+FMA, and baseline x86-64), picked
// once at load time by CPU features. Results are deterministic for a given machine: rows are
// independent, so thread count and row partition do not change any value.
#include "fused_rows.h"
#include "vector_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

namespace gopd::kernels::cpu {
namespace {

constexpr int64_t kChunk = 2048;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

using BFloat16Bits = uint16_t;  // bf16 storage: the top half of an fp32

GOPD_INLINE uint32_t float_to_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

GOPD_INLINE float to_float(float value) { return value; }
GOPD_INLINE float to_float(BFloat16Bits value) { return bits_to_float(uint32_t(value) << 16); }

// Round to nearest even, NaN stays NaN: the same rounding as c10::BFloat16.
GOPD_INLINE void store(float value, float* out) { *out = value; }
GOPD_INLINE void store(float value, BFloat16Bits* out) {
  const uint32_t bits = float_to_bits(value);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  *out = value != value ? BFloat16Bits(0x7FC0) : BFloat16Bits(rounded);
}

template <typename Elem>
GOPD_INLINE const Elem* row_pointer(Rows rows, int64_t row) {
  return static_cast<const Elem*>(rows.data) + row * rows.row_stride;
}

template <typename Elem>
GOPD_INLINE void load_scaled(const Elem* source, int64_t count, float temperature, float* out) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) out[i] = to_float(source[i]) / temperature;
}

// a_v = cT·t_v + cR·r_v, −inf where a model with a non-zero coefficient masks the token.
template <typename Elem, bool kHasReference>
GOPD_INLINE void load_target(const Elem* teacher, const Elem* reference, int64_t count,
                             float temperature, float teacher_coef, float reference_coef,
                             float* out) {
  if constexpr (kHasReference) {
    const bool use_teacher = teacher_coef != 0.0f;
    const bool use_reference = reference_coef != 0.0f;
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) {
      const float t = to_float(teacher[i]) / temperature;
      const float r = to_float(reference[i]) / temperature;
      const bool masked = (use_teacher && t == kNegInf) || (use_reference && r == kNegInf);
      const float value = (use_teacher ? teacher_coef * t : 0.0f) +
                          (use_reference ? reference_coef * r : 0.0f);
      out[i] = masked ? kNegInf : value;
    }
  } else {
    (void)reference;
    (void)teacher_coef;
    (void)reference_coef;
    load_scaled(teacher, count, temperature, out);
  }
}

GOPD_INLINE float chunk_max(const float* x, int64_t count) {
  float result = kNegInf;
#pragma omp simd reduction(max : result)
  for (int64_t i = 0; i < count; ++i) result = x[i] > result ? x[i] : result;
  return result;
}

GOPD_INLINE float sum_exp(const float* x, int64_t count, float shift) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < count; ++i) sum += exp_approx(x[i] - shift);
  return sum;
}

// Running log-sum-exp: value = max + log(sum).
struct OnlineLse {
  float max = kNegInf;
  float sum = 0.0f;

  // Moves the reference point to new_max if that is larger; returns the factor the old sum
  // (and any sum accumulated alongside it) was multiplied by.
  float rebase(float new_max) {
    if (!(new_max > max)) return 1.0f;
    const float factor = max == kNegInf ? 0.0f : std::exp(max - new_max);
    sum *= factor;
    max = new_max;
    return factor;
  }

  void add_chunk(const float* x, int64_t count) {
    rebase(chunk_max(x, count));
    if (max != kNegInf) sum += sum_exp(x, count, max);
  }

  float value() const { return max == kNegInf ? kNegInf : max + std::log(sum); }
};

float log_add_exp(float a, float b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  const float high = std::max(a, b);
  return high + std::log1p(std::exp(std::min(a, b) - high));
}

template <typename Elem>
float row_lse(const Elem* row, int64_t v, float temperature, float* buffer) {
  OnlineLse lse;
  for (int64_t start = 0; start < v; start += kChunk) {
    const int64_t count = std::min(kChunk, v - start);
    load_scaled(row + start, count, temperature, buffer);
    lse.add_chunk(buffer, count);
  }
  return lse.value();
}

std::pair<float, float> target_coefficients(bool has_reference, float lambda) {
  return has_reference ? std::make_pair(lambda, 1.0f - lambda) : std::make_pair(1.0f, 0.0f);
}

// ---------------------------------------------------------------------------------------
// token_logprobs

template <typename Elem>
GOPD_INLINE void token_logprobs_forward_body(Rows logits, int64_t v, const int64_t* tokens,
                                             float temperature, float* logprob, float* entropy,
                                             float* lse_out, RowRange range) {
  std::vector<float> buffer(kChunk);
  float* x = buffer.data();
  for (int64_t row = range.begin; row < range.end; ++row) {
    const Elem* z = row_pointer<Elem>(logits, row);
    OnlineLse lse;
    float shifted_sum = 0.0f;  // Σ e_v · (s_v − max): entropy = log(sum) − shifted_sum / sum
    for (int64_t start = 0; start < v; start += kChunk) {
      const int64_t count = std::min(kChunk, v - start);
      load_scaled(z + start, count, temperature, x);
      const float old_max = lse.max;
      const float old_sum = lse.sum;
      const float factor = lse.rebase(chunk_max(x, count));
      if (lse.max == kNegInf) continue;
      if (entropy != nullptr && factor != 1.0f) {
        shifted_sum = old_max == kNegInf
                          ? 0.0f
                          : factor * (shifted_sum + (old_max - lse.max) * old_sum);
      }
      const float shift = lse.max;
      float sum = 0.0f;
      float weighted = 0.0f;
      if (entropy != nullptr) {
#pragma omp simd reduction(+ : sum, weighted)
        for (int64_t i = 0; i < count; ++i) {
          const float e = exp_approx(x[i] - shift);
          sum += e;
          weighted += e > 0.0f ? e * (x[i] - shift) : 0.0f;
        }
      } else {
        sum = sum_exp(x, count, shift);
      }
      lse.sum += sum;
      shifted_sum += weighted;
    }
    const float row_lse = lse.value();
    lse_out[row] = row_lse;
    logprob[row] = to_float(z[tokens[row]]) / temperature - row_lse;
    if (entropy != nullptr) entropy[row] = std::log(lse.sum) - shifted_sum / lse.sum;
  }
}

template <typename Elem>
GOPD_INLINE void token_logprobs_backward_body(Rows logits, int64_t v, const int64_t* tokens,
                                              float temperature, const float* lse,
                                              const float* entropy, const float* grad_logprob,
                                              const float* grad_entropy, Elem* grad_logits,
                                              RowRange range) {
  std::vector<float> buffer(kChunk);
  float* x = buffer.data();
  const bool with_entropy = grad_entropy != nullptr && entropy != nullptr;
  for (int64_t row = range.begin; row < range.end; ++row) {
    const Elem* z = row_pointer<Elem>(logits, row);
    Elem* out = grad_logits + row * v;
    const float row_lse = lse[row];
    const float g_lp = grad_logprob != nullptr ? grad_logprob[row] / temperature : 0.0f;
    const float g_h = with_entropy ? grad_entropy[row] / temperature : 0.0f;
    const float h = with_entropy ? entropy[row] : 0.0f;
    const int64_t token = tokens[row];
    for (int64_t start = 0; start < v; start += kChunk) {
      const int64_t count = std::min(kChunk, v - start);
      load_scaled(z + start, count, temperature, x);
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) {
        const float log_p = x[i] - row_lse;
        const float p = exp_approx(log_p);
        const float grad = p > 0.0f ? -g_lp * p - g_h * p * (log_p + h) : 0.0f;
        store(grad, out + start + i);
      }
      if (token >= start && token < start + count) {
        const float log_p = x[token - start] - row_lse;
        const float p = exp_approx(log_p);
        const float grad = p > 0.0f ? g_lp * (1.0f - p) - g_h * p * (log_p + h) : g_lp;
        store(grad, out + token);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// gopd_kl

// The two operands of a gopd_kl row, chunk by chunk: s = the student's logits / T and a = the
// target's (the teacher's, extrapolated from the reference with λ), kChunk columns at a time.
template <typename Elem, bool kHasReference>
class KlRowChunks {
 public:
  KlRowChunks(Rows student, Rows teacher, Rows reference, float lambda, float temperature)
      : student_(student), teacher_(teacher), reference_(reference), temperature_(temperature),
        buffer_(2 * kChunk), s(buffer_.data()), a(s + kChunk) {
    const auto [teacher_coef, reference_coef] = target_coefficients(kHasReference, lambda);
    teacher_coef_ = teacher_coef;
    reference_coef_ = reference_coef;
  }
  GOPD_INLINE void start_row(int64_t row) {
    zs_ = row_pointer<Elem>(student_, row);
    zt_ = row_pointer<Elem>(teacher_, row);
    zr_ = kHasReference ? row_pointer<Elem>(reference_, row) : nullptr;
  }
  // Columns [start, start + count) of the row into s and a.
  GOPD_INLINE void load(int64_t start, int64_t count) {
    load_scaled(zs_ + start, count, temperature_, s);
    load_target<Elem, kHasReference>(zt_ + start, kHasReference ? zr_ + start : nullptr, count,
                                     temperature_, teacher_coef_, reference_coef_, a);
  }

 private:
  Rows student_, teacher_, reference_;
  float temperature_;
  float teacher_coef_ = 0.0f, reference_coef_ = 0.0f;
  std::vector<float> buffer_;
  const Elem* zs_ = nullptr;
  const Elem* zt_ = nullptr;
  const Elem* zr_ = nullptr;

 public:
  float* s;
  float* a;
};

template <typename Elem, bool kHasReference>
GOPD_INLINE void gopd_kl_forward_body(Rows student, Rows teacher, Rows reference, int64_t v,
                                      float lambda, float temperature, float* loss,
                                      float* lse_s_out, float* lse_a_out, RowRange range) {
  KlRowChunks<Elem, kHasReference> chunks(student, teacher, reference, lambda, temperature);
  float* s = chunks.s;
  const float* a = chunks.a;
  for (int64_t row = range.begin; row < range.end; ++row) {
    chunks.start_row(row);
    OnlineLse lse_s;
    OnlineLse lse_a;
    float cross = 0.0f;  // Σ e_v · (s_v − a_v) with e_v = exp(s_v − lse_s.max)
    for (int64_t start = 0; start < v; start += kChunk) {
      const int64_t count = std::min(kChunk, v - start);
      chunks.load(start, count);
      lse_a.add_chunk(a, count);
      cross *= lse_s.rebase(chunk_max(s, count));
      if (lse_s.max == kNegInf) continue;
      const float shift = lse_s.max;
      float sum = 0.0f;
      float chunk_cross = 0.0f;
#pragma omp simd reduction(+ : sum, chunk_cross)
      for (int64_t i = 0; i < count; ++i) {
        const float e = exp_approx(s[i] - shift);
        sum += e;
        chunk_cross += e > 0.0f ? e * (s[i] - a[i]) : 0.0f;
      }
      lse_s.sum += sum;
      cross += chunk_cross;
    }
    const float ls = lse_s.value();
    const float la = lse_a.value();
    lse_s_out[row] = ls;
    lse_a_out[row] = la;
    loss[row] = cross / lse_s.sum - ls + la;
  }
}

template <typename Elem, bool kHasReference>
GOPD_INLINE void gopd_kl_backward_body(Rows student, Rows teacher, Rows reference, int64_t v,
                                       float lambda, float temperature, const float* lse_s,
                                       const float* lse_a, const float* loss,
                                       const float* grad_loss, Elem* grad_student,
                                       RowRange range) {
  KlRowChunks<Elem, kHasReference> chunks(student, teacher, reference, lambda, temperature);
  const float* s = chunks.s;
  const float* a = chunks.a;
  for (int64_t row = range.begin; row < range.end; ++row) {
    chunks.start_row(row);
    Elem* out = grad_student + row * v;
    const float ls = lse_s[row];
    const float la = lse_a[row];
    const float row_loss = loss[row];
    const float g = grad_loss[row] / temperature;
    for (int64_t start = 0; start < v; start += kChunk) {
      const int64_t count = std::min(kChunk, v - start);
      chunks.load(start, count);
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) {
        const float log_p = s[i] - ls;
        const float p = exp_approx(log_p);
        const float grad = p > 0.0f ? g * p * ((log_p - (a[i] - la)) - row_loss) : 0.0f;
        store(grad, out + start + i);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// gopd_logratio_reward

template <typename Elem>
GOPD_INLINE void logratio_reward_body(Rows student, Rows teacher, Rows reference, int64_t v,
                                      const int64_t* tokens, float lambda, float temperature,
                                      float* advantage, float* lp_student, float* lp_teacher,
                                      float* lp_reference, RowRange range) {
  std::vector<float> buffer(kChunk);
  const bool has_reference = reference.data != nullptr;
  for (int64_t row = range.begin; row < range.end; ++row) {
    const int64_t token = tokens[row];
    const Elem* zs = row_pointer<Elem>(student, row);
    const Elem* zt = row_pointer<Elem>(teacher, row);
    const float lps = to_float(zs[token]) / temperature - row_lse(zs, v, temperature, buffer.data());
    const float lpt = to_float(zt[token]) / temperature - row_lse(zt, v, temperature, buffer.data());
    lp_student[row] = lps;
    lp_teacher[row] = lpt;
    if (has_reference) {
      const Elem* zr = row_pointer<Elem>(reference, row);
      const float lpr =
          to_float(zr[token]) / temperature - row_lse(zr, v, temperature, buffer.data());
      if (lp_reference != nullptr) lp_reference[row] = lpr;
      advantage[row] = lambda * (lpt - lpr) - (lps - lpr);
    } else {
      advantage[row] = lpt - lps;
    }
  }
}

// ---------------------------------------------------------------------------------------
// gopd_kl_topk

double tail_log_mass(const float* logprobs, int64_t k) {
  double mass = 0.0;
  for (int64_t b = 0; b < k; ++b) mass += std::exp(double(logprobs[b]));
  return std::log(std::max(1.0 - mass, double(kTopkTailFloor)));
}

double combine_one(double t, double r, double teacher_coef, double reference_coef) {
  const bool use_teacher = teacher_coef != 0.0;
  const bool use_reference = reference_coef != 0.0;
  if ((use_teacher && std::isinf(t) && t < 0) || (use_reference && std::isinf(r) && r < 0)) {
    return -std::numeric_limits<double>::infinity();
  }
  return (use_teacher ? teacher_coef * t : 0.0) + (use_reference ? reference_coef * r : 0.0);
}

template <typename Elem>
GOPD_INLINE void topk_forward_body(Rows student, int64_t v, const int64_t* teacher_ids,
                                   const float* teacher_logprobs, const float* ref_logprobs,
                                   int64_t k, float lambda, float temperature, float* loss,
                                   float* lse_out, float* d_out, RowRange range) {
  std::vector<float> buffer(kChunk);
  float* x = buffer.data();
  std::vector<int64_t> sorted_ids(k);
  std::vector<float> id_values(k);        // s at the ids, bucket order
  std::vector<double> bucket_lp(k + 1);  // student log P_b
  std::vector<double> target(k + 1);     // a_b, then d_b
  const bool has_reference = ref_logprobs != nullptr;
  const auto [teacher_coef, reference_coef] = target_coefficients(has_reference, lambda);
  for (int64_t row = range.begin; row < range.end; ++row) {
    const Elem* z = row_pointer<Elem>(student, row);
    const int64_t* ids = teacher_ids + row * k;
    std::copy(ids, ids + k, sorted_ids.begin());
    std::sort(sorted_ids.begin(), sorted_ids.end());
    // Tail: lse over every token that is not an id (ids masked out chunk by chunk).
    OnlineLse tail;
    auto next_id = sorted_ids.begin();
    for (int64_t start = 0; start < v; start += kChunk) {
      const int64_t count = std::min(kChunk, v - start);
      load_scaled(z + start, count, temperature, x);
      for (; next_id != sorted_ids.end() && *next_id < start + count; ++next_id) {
        x[*next_id - start] = kNegInf;
      }
      tail.add_chunk(x, count);
    }
    OnlineLse id_lse;
    for (int64_t b = 0; b < k; ++b) id_values[b] = to_float(z[ids[b]]) / temperature;
    id_lse.add_chunk(id_values.data(), k);
    const float row_lse = log_add_exp(tail.value(), id_lse.value());
    lse_out[row] = row_lse;
    for (int64_t b = 0; b < k; ++b) bucket_lp[b] = double(id_values[b]) - row_lse;
    // log P_tail: lse_tail − lse cancels catastrophically when the ids hold little mass (the
    // usual case for a student far from its teacher), so then take log1p(−P_ids) instead.
    const double id_mass = std::exp(double(id_lse.value()) - double(row_lse));
    bucket_lp[k] = id_mass < 0.5 ? std::log1p(-id_mass) : double(tail.value()) - row_lse;

    // The k + 1 bucket values are few: combine them in fp64, and save d_b − L rounded once
    // (the tail's d and L are close when the student is near the target).
    const float* tlp = teacher_logprobs + row * k;
    const float* rlp = has_reference ? ref_logprobs + row * k : nullptr;
    const double teacher_tail = tail_log_mass(tlp, k);
    const double reference_tail = has_reference ? tail_log_mass(rlp, k) : 0.0;
    double target_max = -std::numeric_limits<double>::infinity();
    for (int64_t b = 0; b <= k; ++b) {
      const double t = b < k ? tlp[b] : teacher_tail;
      const double r = has_reference ? (b < k ? double(rlp[b]) : reference_tail) : 0.0;
      target[b] = combine_one(t, r, teacher_coef, reference_coef);
      target_max = std::max(target_max, target[b]);
    }
    double target_sum = 0.0;
    for (int64_t b = 0; b <= k; ++b) target_sum += std::exp(target[b] - target_max);
    const double log_z = target_max + std::log(target_sum);
    double row_loss = 0.0;
    for (int64_t b = 0; b <= k; ++b) {
      target[b] = bucket_lp[b] - (target[b] - log_z);  // now d_b
      const double p = std::exp(bucket_lp[b]);
      if (p > 0.0) row_loss += p * target[b];
    }
    float* d = d_out + row * (k + 1);
    for (int64_t b = 0; b <= k; ++b) d[b] = float(target[b] - row_loss);
    loss[row] = float(row_loss);
  }
}

template <typename Elem>
GOPD_INLINE void topk_backward_body(Rows student, int64_t v, const int64_t* teacher_ids,
                                    int64_t k, float temperature, const float* lse,
                                    const float* d_in,
                                    const float* grad_loss, Elem* grad_student,
                                    RowRange range) {
  std::vector<float> buffer(kChunk);
  float* x = buffer.data();
  for (int64_t row = range.begin; row < range.end; ++row) {
    const Elem* z = row_pointer<Elem>(student, row);
    const int64_t* ids = teacher_ids + row * k;
    const float* d = d_in + row * (k + 1);
    Elem* out = grad_student + row * v;
    const float row_lse = lse[row];
    const float g = grad_loss[row] / temperature;
    const float tail_factor = d[k];
    for (int64_t start = 0; start < v; start += kChunk) {
      const int64_t count = std::min(kChunk, v - start);
      load_scaled(z + start, count, temperature, x);
#pragma omp simd
      for (int64_t i = 0; i < count; ++i) {
        const float p = exp_approx(x[i] - row_lse);
        store(p > 0.0f ? g * p * tail_factor : 0.0f, out + start + i);
      }
    }
    for (int64_t b = 0; b < k; ++b) {
      const float p = exp_approx(to_float(z[ids[b]]) / temperature - row_lse);
      store(p > 0.0f ? g * p * d[b] : 0.0f, out + ids[b]);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Entry points: one clone set per element type.

#define GOPD_DEFINE_ROW_KERNELS(Elem, suffix)                                                   \
  GOPD_VECTOR_CLONES void token_logprobs_forward_##suffix(                                     \
      Rows logits, int64_t v, const int64_t* tokens, float temperature, float* logprob,        \
      float* entropy, float* lse, RowRange range) {                                            \
    token_logprobs_forward_body<Elem>(logits, v, tokens, temperature, logprob, entropy, lse,   \
                                      range);                                                  \
  }                                                                                            \
  GOPD_VECTOR_CLONES void token_logprobs_backward_##suffix(                                    \
      Rows logits, int64_t v, const int64_t* tokens, float temperature, const float* lse,      \
      const float* entropy, const float* grad_logprob, const float* grad_entropy,              \
      void* grad_logits, RowRange range) {                                                     \
    token_logprobs_backward_body<Elem>(logits, v, tokens, temperature, lse, entropy,           \
                                       grad_logprob, grad_entropy,                             \
                                       static_cast<Elem*>(grad_logits), range);                \
  }                                                                                            \
  GOPD_VECTOR_CLONES void gopd_kl_forward_##suffix(Rows student, Rows teacher,                 \
                                                   Rows reference, int64_t v, float lambda,    \
                                                   float temperature, float* loss,             \
                                                   float* lse_s, float* lse_a,                 \
                                                   RowRange range) {                           \
    if (reference.data != nullptr) {                                                           \
      gopd_kl_forward_body<Elem, true>(student, teacher, reference, v, lambda, temperature,    \
                                       loss, lse_s, lse_a, range);                             \
    } else {                                                                                   \
      gopd_kl_forward_body<Elem, false>(student, teacher, reference, v, lambda, temperature,   \
                                        loss, lse_s, lse_a, range);                            \
    }                                                                                          \
  }                                                                                            \
  GOPD_VECTOR_CLONES void gopd_kl_backward_##suffix(                                           \
      Rows student, Rows teacher, Rows reference, int64_t v, float lambda, float temperature,  \
      const float* lse_s, const float* lse_a, const float* loss, const float* grad_loss,       \
      void* grad_student, RowRange range) {                                                    \
    if (reference.data != nullptr) {                                                           \
      gopd_kl_backward_body<Elem, true>(student, teacher, reference, v, lambda, temperature,   \
                                        lse_s, lse_a, loss, grad_loss,                         \
                                        static_cast<Elem*>(grad_student), range);              \
    } else {                                                                                   \
      gopd_kl_backward_body<Elem, false>(student, teacher, reference, v, lambda, temperature,  \
                                         lse_s, lse_a, loss, grad_loss,                        \
                                         static_cast<Elem*>(grad_student), range);             \
    }                                                                                          \
  }                                                                                            \
  GOPD_VECTOR_CLONES void logratio_reward_##suffix(                                            \
      Rows student, Rows teacher, Rows reference, int64_t v, const int64_t* tokens,            \
      float lambda, float temperature, float* advantage, float* lp_student, float* lp_teacher, \
      float* lp_reference, RowRange range) {                                                   \
    logratio_reward_body<Elem>(student, teacher, reference, v, tokens, lambda, temperature,    \
                               advantage, lp_student, lp_teacher, lp_reference, range);        \
  }                                                                                            \
  GOPD_VECTOR_CLONES void topk_forward_##suffix(                                               \
      Rows student, int64_t v, const int64_t* teacher_ids, const float* teacher_logprobs,      \
      const float* ref_logprobs, int64_t k, float lambda, float temperature, float* loss,      \
      float* lse_s, float* d, RowRange range) {                                                \
    topk_forward_body<Elem>(student, v, teacher_ids, teacher_logprobs, ref_logprobs, k,        \
                            lambda, temperature, loss, lse_s, d, range);                       \
  }                                                                                            \
  GOPD_VECTOR_CLONES void topk_backward_##suffix(                                              \
      Rows student, int64_t v, const int64_t* teacher_ids, int64_t k, float temperature,       \
      const float* lse_s, const float* d, const float* grad_loss, void* grad_student,          \
      RowRange range) {                                                                        \
    topk_backward_body<Elem>(student, v, teacher_ids, k, temperature, lse_s, d,                \
                             grad_loss, static_cast<Elem*>(grad_student), range);              \
  }

GOPD_DEFINE_ROW_KERNELS(float, f32)
GOPD_DEFINE_ROW_KERNELS(BFloat16Bits, bf16)

#undef GOPD_DEFINE_ROW_KERNELS

}  // namespace

void token_logprobs_forward(Rows logits, int64_t v, const int64_t* tokens, float temperature,
                            float* logprob, float* entropy, float* lse, RowRange rows) {
  if (logits.dtype == DType::bf16) {
    token_logprobs_forward_bf16(logits, v, tokens, temperature, logprob, entropy, lse, rows);
  } else {
    token_logprobs_forward_f32(logits, v, tokens, temperature, logprob, entropy, lse, rows);
  }
}

void token_logprobs_backward(Rows logits, int64_t v, const int64_t* tokens, float temperature,
                             const float* lse, const float* entropy, const float* grad_logprob,
                             const float* grad_entropy, void* grad_logits, RowRange rows) {
  if (logits.dtype == DType::bf16) {
    token_logprobs_backward_bf16(logits, v, tokens, temperature, lse, entropy, grad_logprob,
                                 grad_entropy, grad_logits, rows);
  } else {
    token_logprobs_backward_f32(logits, v, tokens, temperature, lse, entropy, grad_logprob,
                                grad_entropy, grad_logits, rows);
  }
}

void gopd_kl_forward(Rows student, Rows teacher, Rows reference, int64_t v, float lambda,
                     float temperature, float* loss, float* lse_s, float* lse_a, RowRange rows) {
  if (student.dtype == DType::bf16) {
    gopd_kl_forward_bf16(student, teacher, reference, v, lambda, temperature, loss, lse_s,
                         lse_a, rows);
  } else {
    gopd_kl_forward_f32(student, teacher, reference, v, lambda, temperature, loss, lse_s,
                        lse_a, rows);
  }
}

void gopd_kl_backward(Rows student, Rows teacher, Rows reference, int64_t v, float lambda,
                      float temperature, const float* lse_s, const float* lse_a,
                      const float* loss, const float* grad_loss, void* grad_student,
                      RowRange rows) {
  if (student.dtype == DType::bf16) {
    gopd_kl_backward_bf16(student, teacher, reference, v, lambda, temperature, lse_s, lse_a,
                          loss, grad_loss, grad_student, rows);
  } else {
    gopd_kl_backward_f32(student, teacher, reference, v, lambda, temperature, lse_s, lse_a,
                         loss, grad_loss, grad_student, rows);
  }
}

void gopd_logratio_reward(Rows student, Rows teacher, Rows reference, int64_t v,
                          const int64_t* tokens, float lambda, float temperature,
                          float* advantage, float* lp_student, float* lp_teacher,
                          float* lp_reference, RowRange rows) {
  if (student.dtype == DType::bf16) {
    logratio_reward_bf16(student, teacher, reference, v, tokens, lambda, temperature, advantage,
                         lp_student, lp_teacher, lp_reference, rows);
  } else {
    logratio_reward_f32(student, teacher, reference, v, tokens, lambda, temperature, advantage,
                        lp_student, lp_teacher, lp_reference, rows);
  }
}

void gopd_kl_topk_forward(Rows student, int64_t v, const int64_t* teacher_ids,
                          const float* teacher_logprobs, const float* ref_logprobs, int64_t k,
                          float lambda, float temperature, float* loss, float* lse_s, float* d,
                          RowRange rows) {
  if (student.dtype == DType::bf16) {
    topk_forward_bf16(student, v, teacher_ids, teacher_logprobs, ref_logprobs, k, lambda,
                      temperature, loss, lse_s, d, rows);
  } else {
    topk_forward_f32(student, v, teacher_ids, teacher_logprobs, ref_logprobs, k, lambda,
                     temperature, loss, lse_s, d, rows);
  }
}

void gopd_kl_topk_backward(Rows student, int64_t v, const int64_t* teacher_ids, int64_t k,
                           float temperature, const float* lse_s, const float* d,
                           const float* grad_loss, void* grad_student, RowRange rows) {
  if (student.dtype == DType::bf16) {
    topk_backward_bf16(student, v, teacher_ids, k, temperature, lse_s, d, grad_loss,
                       grad_student, rows);
  } else {
    topk_backward_f32(student, v, teacher_ids, k, temperature, lse_s, d, grad_loss,
                      grad_student, rows);
  }
}

}  // namespace gopd::kernels::cpu
