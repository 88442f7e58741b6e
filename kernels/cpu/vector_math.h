// Inline helpers shared by the fused CPU kernels (no LibTorch): the target_clones attribute
// that builds an AVX2+FMA and a baseline version of an entry point, and an exp() the compiler
// can vectorise inside `omp simd` loops (libm's expf is an opaque call).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GOPD_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GOPD_VECTOR_CLONES
#endif
#define GOPD_INLINE inline __attribute__((always_inline))

namespace gopd::kernels::cpu {

GOPD_INLINE float bits_to_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// exp(x) with Cody–Waite range reduction and the degree-6 polynomial of Cephes' expf
// (≤ 2 ulp on the range used here). Exactly 0 below −87 and at −inf, so masked tokens get
// probability 0; arguments above 88 are clamped (they do not occur: arguments are x − max).
GOPD_INLINE float exp_approx(float x) {
  float clamped = x < -87.0f ? -87.0f : x;
  clamped = clamped > 88.0f ? 88.0f : clamped;
  // Round to nearest integer with the 1.5·2^23 trick (vectorises without SSE4.1).
  const float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const float scale = bits_to_float(uint32_t(int32_t(n) + 127) << 23);
  return x < -87.0f ? 0.0f : e * scale;
}

}  // namespace gopd::kernels::cpu
