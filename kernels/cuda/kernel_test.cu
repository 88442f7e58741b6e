// Standalone test and bandwidth benchmark of the CUDA fused row kernels (gopd_kernels.cu),
// CUDA runtime only (no LibTorch).
//
//   gopd_cuda_kernel_test                 parity against a plain double CPU reference written
//                                         from the formulas in cuda_launchers.h; one line per
//                                         failing case, then "N cases, M failed"; exit 0 / 1
//   gopd_cuda_kernel_test --bench [--peak-gbps X]
//                                         one JSON line per (op, dtype, V) at N = 4096: time,
//                                         achieved GB/s and the fraction of the peak bandwidth
//
// Exit 77 (skipped) when there is no CUDA device.
//
// Tolerances. Values (log-probs, entropy, lse, losses, advantages, top-k e = d − L):
// |got − ref| ≤ 1e-5 · scale with scale = max(1, |ref|, the magnitude of the row's lse terms the
// value is computed from), for fp32 and bf16 alike: bf16 only rounds the inputs, which the
// reference sees rounded too, and all arithmetic is fp32. Gradients, per row and element:
// |got − ref| ≤ 1e-5 · max_row |ref| + 1e-7 + c_v for fp32; for bf16 the reference gradient is
// rounded to bf16 first and the bound is 1e-2 · max_row |ref| + 1e-7 + c_v (one bf16 ulp is
// 2^-8 relative). c_v is the fp32 conditioning of the element: every gradient is
// (g/T) · p_v · (bracket), and the bracket is a difference of fp32 terms that the interface
// rounds (s_v, lse(s), lse(a), L, e_b, each stored or computed in fp32); in a peaked row the
// bracket of the top token nearly cancels (e.g. log p − log q − L with p ≈ 1), so its relative
// error is unbounded however exact the kernel is. c_v = |g/T| · p_v · 1e-6 · (4 + Σ |terms|),
// i.e. ~16 fp32 ulps of each term plus 4e-6 for the lse sums, far below any real bug (a wrong
// bucket, factor or sign is O(|g/T| · p_v · |bracket|)).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gopd/kernels/cuda_launchers.h"

namespace {

namespace cuda_ops = gopd::kernels::cuda;
using cuda_ops::DType;
using cuda_ops::Rows;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kNegInfF = -std::numeric_limits<float>::infinity();
constexpr double kValueTolerance = 1e-5;
constexpr double kGradTolerance32 = 1e-5;
constexpr double kGradTolerance16 = 1e-2;
constexpr double kGradFloor = 1e-7;
constexpr double kConditioning = 1e-6;  // per unit magnitude of the fp32 terms of a bracket
constexpr double kLseTerms = 4.0;       // the lse sums' own error, in the same units

class TestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw TestError(std::string(what) + ": " + cudaGetErrorString(status));
  }
}

void check_launch(int status, const char* what) {
  if (status != 0) {
    throw TestError(std::string(what) + " returned " + std::to_string(status) + " (" +
                    cudaGetErrorString(static_cast<cudaError_t>(status)) + ")");
  }
}

// ---------------------------------------------------------------------------------------
// bf16 on the host (round to nearest even, as __float2bfloat16_rn)

uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_value(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

float round_to(DType dtype, float x) { return dtype == DType::bf16 ? bf16_value(bf16_bits(x)) : x; }

size_t element_size(DType dtype) { return dtype == DType::bf16 ? 2 : 4; }
const char* dtype_name(DType dtype) { return dtype == DType::bf16 ? "bf16" : "f32"; }

// ---------------------------------------------------------------------------------------
// Device memory

class DeviceBytes {
 public:
  DeviceBytes() = default;
  explicit DeviceBytes(size_t bytes) : bytes_(bytes) {
    if (bytes > 0) check_cuda(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  }
  ~DeviceBytes() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  DeviceBytes(DeviceBytes&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
    other.ptr_ = nullptr;
    other.bytes_ = 0;
  }
  DeviceBytes& operator=(DeviceBytes&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  void* get() const { return ptr_; }
  void upload(const void* host, size_t bytes) {
    check_cuda(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }
  void download(void* host, size_t bytes) const {
    check_cuda(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t count)
      : count_(count), bytes_(std::max<size_t>(count, 1) * sizeof(T)) {}
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) {
    if (!host.empty()) bytes_.upload(host.data(), host.size() * sizeof(T));
  }
  T* get() const { return static_cast<T*>(bytes_.get()); }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    if (count_ > 0) bytes_.download(host.data(), count_ * sizeof(T));
    return host;
  }

 private:
  size_t count_ = 0;
  DeviceBytes bytes_;
};

// Dense (N, V) gradient in `dtype` → fp32 on the host.
std::vector<float> download_logits(const DeviceBytes& buffer, int64_t count, DType dtype) {
  std::vector<float> out(static_cast<size_t>(count));
  if (dtype == DType::f32) {
    buffer.download(out.data(), out.size() * 4);
  } else {
    std::vector<uint16_t> raw(out.size());
    buffer.download(raw.data(), raw.size() * 2);
    for (size_t i = 0; i < raw.size(); ++i) out[i] = bf16_value(raw[i]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Test problems: three models' logits with a layout, masks and sampled tokens

enum class MaskMode { none, mixed, teacher_only };
const char* mask_name(MaskMode mode) {
  switch (mode) {
    case MaskMode::none:
      return "none";
    case MaskMode::mixed:
      return "mixed";
    case MaskMode::teacher_only:
      return "teacher_only";
  }
  return "?";
}

struct Layout {
  const char* name;
  int64_t extra_stride[3];  // row_stride = V + extra, per model (student, teacher, reference)
  int64_t offset[3];        // first element's offset from the allocation, per model
};
constexpr Layout kDense{"dense", {0, 0, 0}, {0, 0, 0}};
constexpr Layout kMisaligned{"misaligned", {3, 3, 3}, {1, 1, 1}};  // same misalignment
constexpr Layout kMixed{"mixed", {0, 3, 5}, {0, 1, 2}};            // differing misalignment

struct Problem {
  int64_t n = 0, v = 0;
  DType dtype = DType::f32;
  Layout layout = kDense;
  MaskMode mask = MaskMode::none;
  std::vector<float> z[3];      // (N, V) dense, the values the kernels see (bf16-rounded for bf16)
  std::vector<int64_t> tokens;  // (N) sampled tokens, finite in all three models
  std::vector<float> grad_a, grad_b;  // (N) upstream gradients
  DeviceBytes device[3];              // padded (N, stride) storage, NaN outside rows
  Rows rows[3];
  DeviceArray<int64_t> device_tokens;
  DeviceArray<float> device_grad_a, device_grad_b;

  std::string label() const {
    return "shape=(" + std::to_string(n) + "," + std::to_string(v) +
           ") dtype=" + dtype_name(dtype) + " layout=" + layout.name + " mask=" + mask_name(mask);
  }
};

std::unique_ptr<Problem> make_problem(int64_t n, int64_t v, DType dtype, const Layout& layout,
                                      MaskMode mask) {
  auto p = std::make_unique<Problem>();
  p->n = n;
  p->v = v;
  p->dtype = dtype;
  p->layout = layout;
  p->mask = mask;
  // The values do not depend on the dtype or layout (bf16 rounds the same draws).
  std::mt19937_64 rng(0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(n * 1000003 + v) ^
                      (static_cast<uint64_t>(mask) << 40));
  std::normal_distribution<float> logit(0.0f, 3.0f);
  std::normal_distribution<float> grad(0.0f, 1.0f);
  std::bernoulli_distribution masked(0.1);
  for (auto& z : p->z) {
    z.resize(static_cast<size_t>(n * v));
    for (float& x : z) x = logit(rng);
  }
  p->tokens.resize(static_cast<size_t>(n));
  p->grad_a.resize(static_cast<size_t>(n));
  p->grad_b.resize(static_cast<size_t>(n));
  for (int64_t row = 0; row < n; ++row) {
    // Row kinds: 0 no mask, 1 mask shared by all models, 2 student-only, 3 teacher-only.
    int kind = 0;
    if (v >= 4 && mask == MaskMode::mixed) kind = static_cast<int>(row % 3);
    if (v >= 4 && mask == MaskMode::teacher_only) kind = row % 2 == 1 ? 3 : 0;
    for (int64_t j = 0; j < v; ++j) {
      if (kind == 0 || !masked(rng)) continue;
      const size_t at = static_cast<size_t>(row * v + j);
      if (kind == 1) p->z[0][at] = p->z[1][at] = p->z[2][at] = kNegInfF;
      if (kind == 2) p->z[0][at] = kNegInfF;
      if (kind == 3) p->z[1][at] = kNegInfF;
    }
    std::vector<int64_t> open;
    for (int64_t j = 0; j < v; ++j) {
      const size_t at = static_cast<size_t>(row * v + j);
      if (std::isfinite(p->z[0][at]) && std::isfinite(p->z[1][at]) && std::isfinite(p->z[2][at])) {
        open.push_back(j);
      }
    }
    if (open.empty()) {
      const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(v));
      for (auto& z : p->z) z[static_cast<size_t>(row * v + j)] = logit(rng);
      open.push_back(j);
    }
    p->tokens[static_cast<size_t>(row)] = open[rng() % open.size()];
    p->grad_a[static_cast<size_t>(row)] = grad(rng);
    p->grad_b[static_cast<size_t>(row)] = grad(rng);
  }
  for (auto& z : p->z) {
    for (float& x : z) x = round_to(dtype, x);
  }

  const size_t esize = element_size(dtype);
  for (int m = 0; m < 3; ++m) {
    const int64_t stride = v + layout.extra_stride[m];
    const int64_t offset = layout.offset[m];
    const size_t elements = static_cast<size_t>(offset + n * stride);
    p->device[m] = DeviceBytes(elements * esize);
    if (dtype == DType::f32) {
      std::vector<float> host(elements, std::numeric_limits<float>::quiet_NaN());
      for (int64_t row = 0; row < n; ++row) {
        std::copy_n(p->z[m].begin() + row * v, v, host.begin() + offset + row * stride);
      }
      p->device[m].upload(host.data(), elements * esize);
    } else {
      std::vector<uint16_t> host(elements, 0x7fc0);
      for (int64_t row = 0; row < n; ++row) {
        for (int64_t j = 0; j < v; ++j) {
          host[static_cast<size_t>(offset + row * stride + j)] =
              bf16_bits(p->z[m][static_cast<size_t>(row * v + j)]);
        }
      }
      p->device[m].upload(host.data(), elements * esize);
    }
    p->rows[m].data = static_cast<const unsigned char*>(p->device[m].get()) + offset * esize;
    p->rows[m].row_stride = stride;
    p->rows[m].dtype = dtype;
  }
  p->device_tokens = DeviceArray<int64_t>(p->tokens);
  p->device_grad_a = DeviceArray<float>(p->grad_a);
  p->device_grad_b = DeviceArray<float>(p->grad_b);
  return p;
}

// ---------------------------------------------------------------------------------------
// Double CPU reference, straight from the formulas in cuda_launchers.h

// Row of a model divided by T.
std::vector<double> scaled_row(const Problem& p, int model, int64_t row, double temperature) {
  std::vector<double> s(static_cast<size_t>(p.v));
  for (int64_t j = 0; j < p.v; ++j) {
    s[static_cast<size_t>(j)] =
        static_cast<double>(p.z[model][static_cast<size_t>(row * p.v + j)]) / temperature;
  }
  return s;
}

double lse(const std::vector<double>& x) {
  double top = -kInf;
  for (double value : x) top = std::max(top, value);
  if (top == -kInf) return -kInf;
  double sum = 0.0;
  for (double value : x) {
    if (value != -kInf) sum += std::exp(value - top);
  }
  return top + std::log(sum);
}

std::pair<double, double> target_coefficients(bool has_ref, double lambda) {
  return has_ref ? std::make_pair(lambda, 1.0 - lambda) : std::make_pair(1.0, 0.0);
}

double combine(double t, double r, double c_t, double c_r) {
  if ((c_t != 0.0 && t == -kInf) || (c_r != 0.0 && r == -kInf)) return -kInf;
  return (c_t != 0.0 ? c_t * t : 0.0) + (c_r != 0.0 ? c_r * r : 0.0);
}

// ---------------------------------------------------------------------------------------
// Comparison and reporting

struct Case {
  std::string description;
  bool ok = true;
  double worst_ratio = 0.0;  // max |got − ref| / allowed
  std::string worst;         // what and where the worst error was

  void value(const char* what, int64_t row, double ref, float got, double scale) {
    const double g = static_cast<double>(got);
    double ratio;
    if (!std::isfinite(ref)) {
      ratio = (std::isnan(ref) ? std::isnan(g) : g == ref) ? 0.0 : kInf;
    } else {
      ratio = std::fabs(g - ref) / (kValueTolerance * std::max({1.0, std::fabs(ref), scale}));
      if (std::isnan(g)) ratio = kInf;
    }
    note(ratio,
         std::string(what) + "[" + std::to_string(row) + "] ref=" + fmt(ref) + " got=" + fmt(g));
  }

  // ref: (V) double reference gradient of one row; got: (V) kernel output (fp32).
  // conditioning: (V) the c_v above.
  void gradient(int64_t row, const std::vector<double>& ref, const float* got, DType dtype,
                const std::vector<double>& conditioning) {
    double ref_max = 0.0;
    std::vector<double> rounded(ref.size());
    for (size_t j = 0; j < ref.size(); ++j) {
      rounded[j] =
          dtype == DType::bf16 ? bf16_value(bf16_bits(static_cast<float>(ref[j]))) : ref[j];
      if (std::isfinite(rounded[j])) ref_max = std::max(ref_max, std::fabs(rounded[j]));
    }
    const double base =
        (dtype == DType::bf16 ? kGradTolerance16 : kGradTolerance32) * ref_max + kGradFloor;
    double worst_ratio = 0.0;
    size_t worst_at = 0;
    for (size_t j = 0; j < ref.size(); ++j) {
      const double g = static_cast<double>(got[j]);
      double ratio;
      if (!std::isfinite(rounded[j])) {
        ratio = (std::isnan(rounded[j]) ? std::isnan(g) : g == rounded[j]) ? 0.0 : kInf;
      } else {
        ratio = std::isnan(g) ? kInf : std::fabs(g - rounded[j]) / (base + conditioning[j]);
      }
      if (ratio > worst_ratio || j == 0) {
        worst_ratio = ratio;
        worst_at = j;
      }
    }
    note(worst_ratio,
         "grad[" + std::to_string(row) + "," + std::to_string(worst_at) +
             "] ref=" + fmt(rounded[worst_at]) + " got=" + fmt(static_cast<double>(got[worst_at])) +
             " row_max=" + fmt(ref_max) + " allowed=" + fmt(base + conditioning[worst_at]));
  }

  void require(bool condition, const std::string& what) { note(condition ? 0.0 : kInf, what); }

  void note(double ratio, const std::string& what) {
    if (!(ratio <= 1.0)) ok = false;
    if (!(ratio <= worst_ratio) || worst.empty()) {
      worst_ratio = std::isnan(ratio) ? kInf : ratio;
      worst = what;
    }
  }

  static std::string fmt(double x) {
    char buffer[48];
    std::snprintf(buffer, sizeof(buffer), "%.9g", x);
    return buffer;
  }
};

struct Tally {
  int cases = 0;
  int failed = 0;
  void add(const Case& c) {
    ++cases;
    if (!c.ok) {
      ++failed;
      std::printf("FAIL %s: max_err/tol=%.3g at %s\n", c.description.c_str(), c.worst_ratio,
                  c.worst.c_str());
      std::fflush(stdout);
    }
  }
};

std::string config(const char* op, const Problem& p, double temperature, bool has_ref,
                   double lambda, int64_t k = -1) {
  char buffer[128];
  std::snprintf(buffer, sizeof(buffer), " T=%g ref=%d lambda=%g", temperature, has_ref ? 1 : 0,
                has_ref ? lambda : 1.0);
  std::string s = std::string("op=") + op + " " + p.label() + buffer;
  if (k >= 0) s += " k=" + std::to_string(k);
  return s;
}

// ---------------------------------------------------------------------------------------
// token_logprobs

void test_token_logprobs(const Problem& p, float temperature, bool with_entropy,
                         cudaStream_t stream, Tally& tally) {
  const int64_t n = p.n, v = p.v;
  const double t = static_cast<double>(temperature);
  Case c;
  c.description =
      config(with_entropy ? "token_logprobs(+entropy)" : "token_logprobs", p, t, false, 1.0);
  DeviceArray<float> logprob(n), entropy(n), row_lse(n);
  DeviceBytes grad(static_cast<size_t>(n * v) * element_size(p.dtype));
  check_launch(cuda_ops::token_logprobs_forward(
                   p.rows[0], n, v, p.device_tokens.get(), temperature, logprob.get(),
                   with_entropy ? entropy.get() : nullptr, row_lse.get(), stream),
               "token_logprobs_forward");
  check_launch(cuda_ops::token_logprobs_backward(
                   p.rows[0], n, v, p.device_tokens.get(), temperature, row_lse.get(),
                   with_entropy ? entropy.get() : nullptr, p.device_grad_a.get(),
                   with_entropy ? p.device_grad_b.get() : nullptr, grad.get(), stream),
               "token_logprobs_backward");
  check_cuda(cudaStreamSynchronize(stream), "token_logprobs");
  const std::vector<float> got_lp = logprob.download(), got_h = entropy.download(),
                           got_lse = row_lse.download();
  const std::vector<float> got_grad = download_logits(grad, n * v, p.dtype);

  for (int64_t row = 0; row < n; ++row) {
    const std::vector<double> s = scaled_row(p, 0, row, t);
    const double l = lse(s);
    double expect_ps = 0.0;
    std::vector<double> prob(s.size());
    for (size_t j = 0; j < s.size(); ++j) {
      prob[j] = s[j] == -kInf ? 0.0 : std::exp(s[j] - l);
      if (prob[j] > 0.0) expect_ps += prob[j] * s[j];
    }
    const double h = l - expect_ps;
    const int64_t y = p.tokens[static_cast<size_t>(row)];
    const double lp = s[static_cast<size_t>(y)] - l;
    c.value("lse", row, l, got_lse[static_cast<size_t>(row)], 0.0);
    c.value("logprob", row, lp, got_lp[static_cast<size_t>(row)], std::fabs(l));
    if (with_entropy) c.value("entropy", row, h, got_h[static_cast<size_t>(row)], std::fabs(l));

    const double g_lp = p.grad_a[static_cast<size_t>(row)];
    const double g_h = with_entropy ? p.grad_b[static_cast<size_t>(row)] : 0.0;
    std::vector<double> ref(s.size()), conditioning(s.size());
    for (size_t j = 0; j < s.size(); ++j) {
      const double delta = static_cast<int64_t>(j) == y ? 1.0 : 0.0;
      double g = g_lp * (delta - prob[j]);
      if (prob[j] > 0.0) g -= g_h * prob[j] * (s[j] - l + h);
      ref[j] = g / t;
      const double terms = prob[j] > 0.0 ? std::fabs(s[j]) + std::fabs(l) + std::fabs(h) : 0.0;
      conditioning[j] =
          (std::fabs(g_lp) + std::fabs(g_h)) / t * prob[j] * kConditioning * (kLseTerms + terms);
    }
    c.gradient(row, ref, got_grad.data() + row * v, p.dtype, conditioning);
  }
  tally.add(c);
}

// ---------------------------------------------------------------------------------------
// gopd_kl

void test_gopd_kl(const Problem& p, float temperature, bool has_ref, float lambda, bool backward,
                  cudaStream_t stream, Tally& tally) {
  const int64_t n = p.n, v = p.v;
  const double t = static_cast<double>(temperature);
  Case c;
  c.description = config(backward ? "gopd_kl" : "gopd_kl(forward)", p, t, has_ref, lambda);
  Rows reference = p.rows[2];
  if (!has_ref) reference.data = nullptr;
  DeviceArray<float> loss(n), lse_s(n), lse_a(n);
  DeviceBytes grad(static_cast<size_t>(n * v) * element_size(p.dtype));
  check_launch(cuda_ops::gopd_kl_forward(p.rows[0], p.rows[1], reference, n, v, lambda, temperature,
                                         loss.get(), lse_s.get(), lse_a.get(), stream),
               "gopd_kl_forward");
  if (backward) {
    check_launch(cuda_ops::gopd_kl_backward(p.rows[0], p.rows[1], reference, n, v, lambda,
                                            temperature, lse_s.get(), lse_a.get(), loss.get(),
                                            p.device_grad_a.get(), grad.get(), stream),
                 "gopd_kl_backward");
  }
  check_cuda(cudaStreamSynchronize(stream), "gopd_kl");
  const std::vector<float> got_loss = loss.download(), got_lse_s = lse_s.download(),
                           got_lse_a = lse_a.download();
  const std::vector<float> got_grad =
      backward ? download_logits(grad, n * v, p.dtype) : std::vector<float>();

  const auto [c_t, c_r] = target_coefficients(has_ref, lambda);
  for (int64_t row = 0; row < n; ++row) {
    const std::vector<double> s = scaled_row(p, 0, row, t);
    const std::vector<double> tt = scaled_row(p, 1, row, t);
    const std::vector<double> rr = scaled_row(p, 2, row, t);
    std::vector<double> a(s.size());
    for (size_t j = 0; j < s.size(); ++j) a[j] = combine(tt[j], rr[j], c_t, c_r);
    const double ls = lse(s), la = lse(a);
    double kl = 0.0;
    std::vector<double> prob(s.size()), log_ratio(s.size());
    for (size_t j = 0; j < s.size(); ++j) {
      prob[j] = s[j] == -kInf ? 0.0 : std::exp(s[j] - ls);
      if (prob[j] > 0.0) {
        log_ratio[j] = (s[j] - ls) - (a[j] - la);  // +inf when a = −inf
        kl += prob[j] * log_ratio[j];
      }
    }
    const double scale = std::max(std::fabs(ls), std::fabs(la));
    c.value("lse_s", row, ls, got_lse_s[static_cast<size_t>(row)], 0.0);
    c.value("lse_a", row, la, got_lse_a[static_cast<size_t>(row)], 0.0);
    c.value("loss", row, kl, got_loss[static_cast<size_t>(row)], scale);
    if (!backward) continue;
    const double g = p.grad_a[static_cast<size_t>(row)] / t;
    std::vector<double> ref(s.size()), conditioning(s.size());
    for (size_t j = 0; j < s.size(); ++j) {
      ref[j] = prob[j] > 0.0 ? g * prob[j] * (log_ratio[j] - kl) : 0.0;
      const double terms =
          prob[j] > 0.0
              ? std::fabs(s[j]) + std::fabs(ls) + (c_t != 0.0 ? std::fabs(c_t * tt[j]) : 0.0) +
                    (c_r != 0.0 ? std::fabs(c_r * rr[j]) : 0.0) + std::fabs(la) + std::fabs(kl)
              : 0.0;
      conditioning[j] = std::fabs(g) * prob[j] * kConditioning * (kLseTerms + terms);
    }
    c.gradient(row, ref, got_grad.data() + row * v, p.dtype, conditioning);
  }
  tally.add(c);
}

// ---------------------------------------------------------------------------------------
// gopd_logratio_reward

void test_logratio(const Problem& p, float temperature, bool has_ref, float lambda,
                   cudaStream_t stream, Tally& tally) {
  const int64_t n = p.n;
  const double t = static_cast<double>(temperature);
  Case c;
  c.description = config("gopd_logratio_reward", p, t, has_ref, lambda);
  Rows reference = p.rows[2];
  if (!has_ref) reference.data = nullptr;
  constexpr float kSentinel = 12345.0f;
  DeviceArray<float> advantage(n), lp_s(n), lp_t(n);
  DeviceArray<float> lp_r(std::vector<float>(static_cast<size_t>(n), kSentinel));
  check_launch(cuda_ops::gopd_logratio_reward(
                   p.rows[0], p.rows[1], reference, n, p.v, p.device_tokens.get(), lambda,
                   temperature, advantage.get(), lp_s.get(), lp_t.get(), lp_r.get(), stream),
               "gopd_logratio_reward");
  check_cuda(cudaStreamSynchronize(stream), "gopd_logratio_reward");
  const std::vector<float> got_adv = advantage.download(), got_s = lp_s.download(),
                           got_t = lp_t.download(), got_r = lp_r.download();
  for (int64_t row = 0; row < n; ++row) {
    const size_t y = static_cast<size_t>(p.tokens[static_cast<size_t>(row)]);
    const std::vector<double> s = scaled_row(p, 0, row, t);
    const std::vector<double> tt = scaled_row(p, 1, row, t);
    const std::vector<double> rr = scaled_row(p, 2, row, t);
    const double ls = lse(s), lt = lse(tt), lr = lse(rr);
    const double lps = s[y] - ls, lpt = tt[y] - lt, lpr = rr[y] - lr;
    const double adv = has_ref ? lambda * (lpt - lpr) - (lps - lpr) : lpt - lps;
    const double scale = (1.0 + std::fabs(static_cast<double>(lambda))) *
                         std::max({std::fabs(ls), std::fabs(lt), has_ref ? std::fabs(lr) : 0.0});
    c.value("lp_student", row, lps, got_s[static_cast<size_t>(row)], std::fabs(ls));
    c.value("lp_teacher", row, lpt, got_t[static_cast<size_t>(row)], std::fabs(lt));
    if (has_ref) {
      c.value("lp_reference", row, lpr, got_r[static_cast<size_t>(row)], std::fabs(lr));
    } else {
      c.require(got_r[static_cast<size_t>(row)] == kSentinel,
                "lp_reference written without a reference");
    }
    c.value("advantage", row, adv, got_adv[static_cast<size_t>(row)], scale);
  }
  tally.add(c);
}

// ---------------------------------------------------------------------------------------
// gopd_kl_topk

struct TopkInputs {
  int64_t k = 0;
  std::vector<int64_t> ids;  // (N, k) the teacher's top-k, shuffled
  std::vector<float> tlp;    // (N, k) teacher log-softmax at the ids
  std::vector<float> rlp;    // (N, k) reference log-softmax at the ids
};

TopkInputs make_topk(const Problem& p, double temperature, int64_t k) {
  TopkInputs in;
  in.k = k;
  in.ids.resize(static_cast<size_t>(p.n * k));
  in.tlp.resize(in.ids.size());
  in.rlp.resize(in.ids.size());
  std::mt19937_64 rng(0x51ed2701ull + static_cast<uint64_t>(k) * 7919u);
  for (int64_t row = 0; row < p.n; ++row) {
    const std::vector<double> tt = scaled_row(p, 1, row, temperature);
    const std::vector<double> rr = scaled_row(p, 2, row, temperature);
    const double lt = lse(tt), lr = lse(rr);
    std::vector<int64_t> order(static_cast<size_t>(p.v));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t x, int64_t y) {
      const double a = tt[static_cast<size_t>(x)], b = tt[static_cast<size_t>(y)];
      return a > b || (a == b && x < y);
    });
    std::shuffle(order.begin(), order.begin() + k, rng);
    for (int64_t b = 0; b < k; ++b) {
      const size_t at = static_cast<size_t>(row * k + b);
      const size_t id = static_cast<size_t>(order[static_cast<size_t>(b)]);
      in.ids[at] = static_cast<int64_t>(id);
      in.tlp[at] = static_cast<float>(tt[id] - lt);
      in.rlp[at] = static_cast<float>(rr[id] - lr);
    }
  }
  return in;
}

void test_topk(const Problem& p, const TopkInputs& in, float temperature, bool has_ref,
               float lambda, cudaStream_t stream, Tally& tally) {
  const int64_t n = p.n, v = p.v, k = in.k;
  const double t = static_cast<double>(temperature);
  Case c;
  c.description = config("gopd_kl_topk", p, t, has_ref, lambda, k);
  const DeviceArray<int64_t> ids(in.ids);
  const DeviceArray<float> tlp(in.tlp), rlp(in.rlp);
  DeviceArray<float> loss(n), lse_s(n), excess(static_cast<size_t>(n * (k + 1)));  // e = d − L
  DeviceBytes grad(static_cast<size_t>(n * v) * element_size(p.dtype));
  check_launch(cuda_ops::gopd_kl_topk_forward(p.rows[0], n, v, ids.get(), tlp.get(),
                                              has_ref ? rlp.get() : nullptr, k, lambda, temperature,
                                              loss.get(), lse_s.get(), excess.get(), stream),
               "gopd_kl_topk_forward");
  check_launch(
      cuda_ops::gopd_kl_topk_backward(p.rows[0], n, v, ids.get(), k, temperature, lse_s.get(),
                                      excess.get(), p.device_grad_a.get(), grad.get(), stream),
      "gopd_kl_topk_backward");
  check_cuda(cudaStreamSynchronize(stream), "gopd_kl_topk");
  const std::vector<float> got_loss = loss.download(), got_lse = lse_s.download(),
                           got_excess = excess.download();
  const std::vector<float> got_grad = download_logits(grad, n * v, p.dtype);

  const auto [c_t, c_r] = target_coefficients(has_ref, lambda);
  const double floor = static_cast<double>(gopd::kernels::kTopkTailFloor);
  for (int64_t row = 0; row < n; ++row) {
    const std::vector<double> s = scaled_row(p, 0, row, t);
    const int64_t* row_ids = in.ids.data() + row * k;
    const float* row_tlp = in.tlp.data() + row * k;
    const float* row_rlp = in.rlp.data() + row * k;
    std::vector<int64_t> bucket_of(s.size(), k);
    for (int64_t b = 0; b < k; ++b) bucket_of[static_cast<size_t>(row_ids[b])] = b;
    std::vector<double> tail_values;
    for (size_t j = 0; j < s.size(); ++j) {
      if (bucket_of[j] == k) tail_values.push_back(s[j]);
    }
    const double ls = lse(s);
    const double tail_lse = lse(tail_values);  // −inf when every token is an id
    double id_mass = 0.0;                      // P_ids
    for (int64_t b = 0; b < k; ++b) {
      const double x = s[static_cast<size_t>(row_ids[b])];
      if (x != -kInf) id_mass += std::exp(x - ls);
    }
    double mass_t = 0.0, mass_r = 0.0;
    for (int64_t b = 0; b < k; ++b) {
      mass_t += std::exp(static_cast<double>(row_tlp[b]));
      mass_r += std::exp(static_cast<double>(row_rlp[b]));
    }
    std::vector<double> log_p(static_cast<size_t>(k + 1)), a(static_cast<size_t>(k + 1));
    std::vector<double> target_terms(static_cast<size_t>(k + 1));  // |cT·T_b| + |cR·R_b|
    for (int64_t b = 0; b <= k; ++b) {
      const size_t at = static_cast<size_t>(b);
      double tb, rb;
      if (b < k) {
        log_p[at] = s[static_cast<size_t>(row_ids[b])] - ls;
        tb = row_tlp[b];
        rb = row_rlp[b];
      } else {
        log_p[at] = id_mass < 0.5 ? std::log1p(-id_mass) : tail_lse - ls;
        tb = std::log(std::max(1.0 - mass_t, floor));
        rb = std::log(std::max(1.0 - mass_r, floor));
      }
      a[at] = combine(tb, rb, c_t, c_r);
      target_terms[at] =
          (c_t != 0.0 ? std::fabs(c_t * tb) : 0.0) + (c_r != 0.0 ? std::fabs(c_r * rb) : 0.0);
    }
    const double log_z = lse(a);
    std::vector<double> dd(static_cast<size_t>(k + 1));
    double kl = 0.0, d_scale = 0.0;
    for (size_t b = 0; b < dd.size(); ++b) {
      dd[b] = log_p[b] - (a[b] - log_z);
      const double prob = std::exp(log_p[b]);
      if (prob > 0.0) kl += prob * dd[b];
      if (std::isfinite(dd[b])) d_scale = std::max(d_scale, std::fabs(dd[b]));
    }
    c.value("lse_s", row, ls, got_lse[static_cast<size_t>(row)], 0.0);
    c.value("loss", row, kl, got_loss[static_cast<size_t>(row)], std::max(std::fabs(ls), d_scale));
    for (size_t b = 0; b < dd.size(); ++b) {
      if (log_p[b] == -kInf) continue;  // e of an empty bucket is not used
      c.value("e", row * (k + 1) + static_cast<int64_t>(b), dd[b] - kl,
              got_excess[static_cast<size_t>(row * (k + 1)) + b], std::max(std::fabs(ls), d_scale));
    }
    const double g = p.grad_a[static_cast<size_t>(row)] / t;
    std::vector<double> ref(s.size()), conditioning(s.size());
    for (size_t j = 0; j < s.size(); ++j) {
      const double prob = s[j] == -kInf ? 0.0 : std::exp(s[j] - ls);
      const size_t b = static_cast<size_t>(bucket_of[j]);
      ref[j] = prob > 0.0 ? g * prob * (dd[b] - kl) : 0.0;
      const double terms = prob > 0.0 ? std::fabs(s[j]) + std::fabs(ls) + target_terms[b] +
                                            std::fabs(log_z) + std::fabs(kl) + std::fabs(dd[b])
                                      : 0.0;
      conditioning[j] = std::fabs(g) * prob * kConditioning * (kLseTerms + terms);
    }
    c.gradient(row, ref, got_grad.data() + row * v, p.dtype, conditioning);
  }
  tally.add(c);
}

// ---------------------------------------------------------------------------------------
// Launcher argument checks

void test_launcher_arguments(cudaStream_t stream, Tally& tally) {
  Case c;
  c.description = "op=launcher_arguments";
  DeviceArray<float> logits(16), out(4);
  DeviceArray<int64_t> tokens(std::vector<int64_t>(4, 0));
  Rows rows{logits.get(), 4, DType::f32};
  Rows none{};
  c.require(cuda_ops::token_logprobs_forward(rows, 0, 4, tokens.get(), 1.0f, out.get(), nullptr,
                                             out.get(), stream) == 0,
            "n = 0 must return 0");
  c.require(cuda_ops::gopd_kl_forward(rows, rows, none, 0, 4, 1.0f, 1.0f, out.get(), out.get(),
                                      out.get(), stream) == 0,
            "gopd_kl n = 0 must return 0");
  c.require(cuda_ops::token_logprobs_forward(rows, 1, 0, tokens.get(), 1.0f, out.get(), nullptr,
                                             out.get(), stream) != 0,
            "v = 0 must fail");
  c.require(cuda_ops::token_logprobs_forward(rows, -1, 4, tokens.get(), 1.0f, out.get(), nullptr,
                                             out.get(), stream) != 0,
            "n < 0 must fail");
  c.require(cuda_ops::gopd_kl_forward(rows, Rows{logits.get(), 4, DType::bf16}, none, 1, 4, 1.0f,
                                      1.0f, out.get(), out.get(), out.get(), stream) != 0,
            "mixed dtypes must fail");
  check_cuda(cudaStreamSynchronize(stream), "launcher arguments");
  cudaGetLastError();  // the rejected calls launched nothing; clear nothing sticky
  tally.add(c);
}

// ---------------------------------------------------------------------------------------

int run_tests() {
  cudaStream_t stream;
  // A blocking stream: it waits for the legacy-stream cudaMemcpy uploads.
  check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
  Tally tally;
  test_launcher_arguments(stream, tally);

  const float lambdas[] = {0.0f, 0.5f, 1.0f, 1.25f, 2.0f};
  const float temperatures[] = {1.0f, 0.7f};
  const DType dtypes[] = {DType::f32, DType::bf16};
  struct Shape {
    int64_t n, v;
    bool odd_layouts;
  };
  const Shape shapes[] = {
      {1, 1, false}, {3, 7, true}, {47, 123, true}, {64, 32000, true}, {5, 151936, false}};

  for (const Shape& shape : shapes) {
    for (const Layout* layout : {&kDense, &kMisaligned, &kMixed}) {
      if (layout != &kDense && !shape.odd_layouts) continue;
      for (MaskMode mask : {MaskMode::none, MaskMode::mixed}) {
        if (layout != &kDense && mask == MaskMode::none) continue;
        if (shape.v < 4 && mask != MaskMode::none) continue;
        for (DType dtype : dtypes) {
          const auto p = make_problem(shape.n, shape.v, dtype, *layout, mask);
          for (float temperature : temperatures) {
            test_token_logprobs(*p, temperature, true, stream, tally);
            test_token_logprobs(*p, temperature, false, stream, tally);
            test_gopd_kl(*p, temperature, false, 1.0f, true, stream, tally);
            test_logratio(*p, temperature, false, 1.0f, stream, tally);
            for (float lambda : lambdas) {
              test_gopd_kl(*p, temperature, true, lambda, true, stream, tally);
              test_logratio(*p, temperature, true, lambda, stream, tally);
            }
            std::vector<int64_t> ks;  // {1, 8, 64} ∩ [1, V], plus k = V (no tail) when V ≤ 64
            for (int64_t k : {1, 8, 64}) {
              if (k <= shape.v) ks.push_back(k);
            }
            if (shape.v <= 64 && ks.back() != shape.v) ks.push_back(shape.v);
            for (int64_t k : ks) {
              const TopkInputs in = make_topk(*p, temperature, k);
              test_topk(*p, in, temperature, false, 1.0f, stream, tally);
              for (float lambda : lambdas)
                test_topk(*p, in, temperature, true, lambda, stream, tally);
            }
          }
        }
      }
    }
  }

  // A teacher that masks tokens the student keeps: L = +inf wherever the teacher enters with a
  // non-zero coefficient (every λ but 0 with a reference), finite otherwise.
  for (DType dtype : dtypes) {
    const auto p = make_problem(47, 123, dtype, kDense, MaskMode::teacher_only);
    test_gopd_kl(*p, 1.0f, false, 1.0f, false, stream, tally);
    for (float lambda : lambdas) test_gopd_kl(*p, 1.0f, true, lambda, false, stream, tally);
  }

  // V too large for the shared-memory id bitmap: the top-k forward scans the ids instead.
  for (DType dtype : dtypes) {
    const auto p = make_problem(2, 400000, dtype, kMisaligned, MaskMode::mixed);
    const TopkInputs in = make_topk(*p, 0.7, 8);
    test_topk(*p, in, 0.7f, false, 1.0f, stream, tally);
    test_topk(*p, in, 0.7f, true, 0.5f, stream, tally);
  }

  check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  std::printf("gopd_cuda_kernel_test: %d cases, %d failed\n", tally.cases, tally.failed);
  return tally.failed == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------
// Benchmark

__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// Pseudo-random logits, roughly uniform in [−6, 6) (std ≈ 3.5).
__global__ void fill_logits_kernel(void* data, int64_t count, int bf16, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = mix64(seed ^ mix64(static_cast<uint64_t>(i)));
    const float x = static_cast<float>(h >> 40) * (12.0f / 16777216.0f) - 6.0f;
    if (bf16 != 0) {
      static_cast<uint16_t*>(data)[i] = static_cast<uint16_t>(__float_as_uint(x) >> 16);
    } else {
      static_cast<float*>(data)[i] = x;
    }
  }
}

__global__ void fill_rows_kernel(int64_t n, int64_t v, int64_t k, int64_t* tokens, int64_t* ids,
                                 float* tlp, float* rlp, float* ones) {
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < n;
       row += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = mix64(static_cast<uint64_t>(row) + 17);
    tokens[row] = static_cast<int64_t>(h % static_cast<uint64_t>(v));
    ones[row] = 1.0f;
    // Distinct ids: b · step < V for every b < k.
    const int64_t step = v / k;
    for (int64_t b = 0; b < k; ++b) {
      ids[row * k + b] = (static_cast<int64_t>(h % static_cast<uint64_t>(v)) + b * step) % v;
      tlp[row * k + b] = logf(0.9f / static_cast<float>(k));
      rlp[row * k + b] = logf(0.8f / static_cast<float>(k));
    }
  }
}

template <typename Launch>
double time_ms(Launch launch, cudaStream_t stream, int iterations) {
  for (int i = 0; i < 3; ++i) launch();
  check_cuda(cudaStreamSynchronize(stream), "warm-up");
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  check_cuda(cudaEventRecord(start, stream), "cudaEventRecord");
  for (int i = 0; i < iterations; ++i) launch();
  check_cuda(cudaEventRecord(stop, stream), "cudaEventRecord");
  check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float total = 0.0f;
  check_cuda(cudaEventElapsedTime(&total, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return static_cast<double>(total) / iterations;
}

int run_bench(double peak_override) {
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  cudaDeviceProp prop;
  check_cuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  int clock_khz = 0, bus_bits = 0;
  check_cuda(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device),
             "cudaDevAttrMemoryClockRate");
  check_cuda(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device),
             "cudaDevAttrGlobalMemoryBusWidth");
  const double peak =
      peak_override > 0.0 ? peak_override : 2.0 * clock_khz * 1000.0 * bus_bits / 8.0 / 1e9;
  std::string device_name;
  for (const char* ch = prop.name; *ch != '\0'; ++ch) {
    if (*ch == '"' || *ch == '\\') device_name += '\\';
    device_name += *ch;
  }

  cudaStream_t stream;
  // A blocking stream: it waits for the legacy-stream cudaMemcpy uploads.
  check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
  constexpr int64_t n = 4096;
  constexpr int64_t k = 64;
  constexpr int kIterations = 20;
  constexpr float kLambda = 0.5f;
  constexpr float kTemperature = 1.0f;

  for (int64_t v : {int64_t{32000}, int64_t{151936}}) {
    for (DType dtype : {DType::f32, DType::bf16}) {
      const size_t esize = element_size(dtype);
      const size_t matrix_bytes = static_cast<size_t>(n * v) * esize;
      DeviceBytes logits[3] = {DeviceBytes(matrix_bytes), DeviceBytes(matrix_bytes),
                               DeviceBytes(matrix_bytes)};
      DeviceBytes grad(matrix_bytes);
      Rows rows[3];
      for (int m = 0; m < 3; ++m) {
        fill_logits_kernel<<<4096, 256, 0, stream>>>(
            logits[m].get(), n * v, dtype == DType::bf16 ? 1 : 0, 0x1234567ull * (m + 1));
        check_cuda(cudaGetLastError(), "fill_logits_kernel");
        rows[m] = Rows{logits[m].get(), v, dtype};
      }
      DeviceArray<int64_t> tokens(n), ids(static_cast<size_t>(n * k));
      DeviceArray<float> tlp(static_cast<size_t>(n * k)), rlp(static_cast<size_t>(n * k));
      DeviceArray<float> ones(n), out_a(n), out_b(n), out_c(n), out_d(n);
      DeviceArray<float> d(static_cast<size_t>(n * (k + 1)));
      fill_rows_kernel<<<(n + 255) / 256, 256, 0, stream>>>(n, v, k, tokens.get(), ids.get(),
                                                            tlp.get(), rlp.get(), ones.get());
      check_cuda(cudaGetLastError(), "fill_rows_kernel");
      check_cuda(cudaStreamSynchronize(stream), "bench init");

      // Forwards first so the backwards read their saved values.
      check_launch(cuda_ops::token_logprobs_forward(rows[0], n, v, tokens.get(), kTemperature,
                                                    out_a.get(), out_b.get(), out_c.get(), stream),
                   "token_logprobs_forward");
      // matrices: (N, V) matrices read or written per call (per-row arrays are ignored).
      auto report = [&](const char* op, double matrices, double ms) {
        const double gbps = matrices * static_cast<double>(matrix_bytes) / (ms * 1e-3) / 1e9;
        std::printf(
            "{\"bench\":\"cuda_kernels\",\"op\":\"%s\",\"dtype\":\"%s\",\"n\":%lld,\"v\":%lld,"
            "\"ms\":%.4f,\"gbps\":%.1f,\"peak_gbps\":%.1f,\"fraction_of_peak\":%.3f,"
            "\"device\":\"%s\"}\n",
            op, dtype_name(dtype), static_cast<long long>(n), static_cast<long long>(v), ms, gbps,
            peak, gbps / peak, device_name.c_str());
        std::fflush(stdout);
      };

      report("token_logprobs_fwd", 1.0,
             time_ms(
                 [&] {
                   check_launch(cuda_ops::token_logprobs_forward(rows[0], n, v, tokens.get(),
                                                                 kTemperature, out_a.get(),
                                                                 out_b.get(), out_c.get(), stream),
                                "token_logprobs_forward");
                 },
                 stream, kIterations));
      report("token_logprobs_bwd", 2.0,
             time_ms(
                 [&] {
                   check_launch(cuda_ops::token_logprobs_backward(
                                    rows[0], n, v, tokens.get(), kTemperature, out_c.get(),
                                    out_b.get(), ones.get(), ones.get(), grad.get(), stream),
                                "token_logprobs_backward");
                 },
                 stream, kIterations));
      report("gopd_kl_fwd", 3.0,
             time_ms(
                 [&] {
                   check_launch(cuda_ops::gopd_kl_forward(rows[0], rows[1], rows[2], n, v, kLambda,
                                                          kTemperature, out_a.get(), out_b.get(),
                                                          out_c.get(), stream),
                                "gopd_kl_forward");
                 },
                 stream, kIterations));
      report("gopd_kl_bwd", 4.0,
             time_ms(
                 [&] {
                   check_launch(
                       cuda_ops::gopd_kl_backward(rows[0], rows[1], rows[2], n, v, kLambda,
                                                  kTemperature, out_b.get(), out_c.get(),
                                                  out_a.get(), ones.get(), grad.get(), stream),
                       "gopd_kl_backward");
                 },
                 stream, kIterations));
      report("logratio_reward", 3.0,
             time_ms(
                 [&] {
                   check_launch(cuda_ops::gopd_logratio_reward(rows[0], rows[1], rows[2], n, v,
                                                               tokens.get(), kLambda, kTemperature,
                                                               out_a.get(), out_b.get(),
                                                               out_c.get(), out_d.get(), stream),
                                "gopd_logratio_reward");
                 },
                 stream, kIterations));
      report("gopd_kl_topk_fwd_bwd", 3.0,
             time_ms(
                 [&] {
                   check_launch(cuda_ops::gopd_kl_topk_forward(
                                    rows[0], n, v, ids.get(), tlp.get(), rlp.get(), k, kLambda,
                                    kTemperature, out_a.get(), out_b.get(), d.get(), stream),
                                "gopd_kl_topk_forward");
                   check_launch(cuda_ops::gopd_kl_topk_backward(rows[0], n, v, ids.get(), k,
                                                                kTemperature, out_b.get(), d.get(),
                                                                ones.get(), grad.get(), stream),
                                "gopd_kl_topk_backward");
                 },
                 stream, kIterations));
      check_cuda(cudaStreamSynchronize(stream), "bench");
    }
  }
  check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool bench = false;
  double peak_override = 0.0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--bench") {
      bench = true;
    } else if (arg == "--peak-gbps" && i + 1 < argc) {
      peak_override = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--bench [--peak-gbps X]]\n", argv[0]);
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    std::printf("gopd_cuda_kernel_test: skipped: no CUDA device\n");
    return 77;
  }
  try {
    return bench ? run_bench(peak_override) : run_tests();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "gopd_cuda_kernel_test: error: %s\n", error.what());
    return 1;
  }
}
