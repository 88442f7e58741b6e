// Boundary checks of the fused decode ops and the hand-off to kernels/cpu/decode_rows.cpp.
#include "gopd/kernels/decode_ops.h"

#include <sstream>
#include <stdexcept>
#include <string>

#include <ATen/record_function.h>

#include "cpu/decode_rows.h"

namespace gopd::kernels {
namespace {

[[noreturn]] void fail(const char* op, const std::string& message) {
  throw std::invalid_argument(std::string(op) + ": " + message);
}

void check_float(const char* op, const char* name, const torch::Tensor& tensor, bool contiguous = true) {
  if (!tensor.defined()) fail(op, std::string(name) + " is undefined");
  if (!tensor.device().is_cpu() || tensor.scalar_type() != torch::kFloat) {
    fail(op, std::string(name) + " must be a CPU fp32 tensor");
  }
  if (contiguous && !tensor.is_contiguous()) fail(op, std::string(name) + " must be contiguous");
}

void check_size(const char* op, const char* name, const torch::Tensor& tensor, int64_t expected) {
  if (tensor.numel() != expected) {
    std::ostringstream out;
    out << name << " has shape " << tensor.sizes() << ", expected " << expected << " elements";
    fail(op, out.str());
  }
}

int threads() { return at::get_num_threads(); }

}  // namespace

bool decode_fusable(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat && !torch::GradMode::is_enabled();
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const char* op = "rms_norm";
  RECORD_FUNCTION("gopd::rms_norm", std::vector<c10::IValue>());
  check_float(op, "x", x);
  check_float(op, "weight", weight);
  const int64_t width = x.size(-1);
  check_size(op, "weight", weight, width);
  torch::Tensor out = torch::empty_like(x);
  cpu::rms_norm_rows(x.data_ptr<float>(), weight.data_ptr<float>(), x.numel() / width, width,
                     static_cast<float>(eps), out.data_ptr<float>(), threads());
  return out;
}

torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up) {
  const char* op = "silu_mul";
  RECORD_FUNCTION("gopd::silu_mul", std::vector<c10::IValue>());
  check_float(op, "gate", gate);
  check_float(op, "up", up);
  if (gate.sizes() != up.sizes()) fail(op, "gate and up differ in shape");
  torch::Tensor out = torch::empty_like(gate);
  cpu::silu_mul(gate.data_ptr<float>(), up.data_ptr<float>(), gate.numel(), out.data_ptr<float>(),
                threads());
  return out;
}

torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& q_norm, const torch::Tensor& k_norm,
                               double norm_eps, const torch::Tensor& cos, const torch::Tensor& sin,
                               torch::Tensor& key_cache, torch::Tensor& value_cache, int64_t length,
                               const torch::Tensor& key_mask, int64_t heads) {
  const char* op = "decode_attention";
  RECORD_FUNCTION("gopd::decode_attention", std::vector<c10::IValue>());
  check_float(op, "key_cache", key_cache);
  check_float(op, "value_cache", value_cache);
  if (key_cache.dim() != 4 || value_cache.sizes() != key_cache.sizes()) {
    fail(op, "key_cache and value_cache must both be (B, Hkv, C, D)");
  }
  const int64_t batch = key_cache.size(0);
  const int64_t kv_heads = key_cache.size(1);
  const int64_t capacity = key_cache.size(2);
  const int64_t dim = key_cache.size(3);
  if (heads <= 0 || heads % kv_heads != 0) fail(op, "query heads must be a multiple of kv heads");
  if (dim % 2 != 0) fail(op, "head_dim must be even (rotary)");
  if (length < 0 || length >= capacity) fail(op, "no room in the cache for the new key");
  check_float(op, "q", q);
  check_float(op, "k", k);
  check_float(op, "v", v);
  check_float(op, "cos", cos);
  check_float(op, "sin", sin);
  check_size(op, "q", q, batch * heads * dim);
  check_size(op, "k", k, batch * kv_heads * dim);
  check_size(op, "v", v, batch * kv_heads * dim);
  check_size(op, "cos", cos, batch * dim);
  check_size(op, "sin", sin, batch * dim);
  for (const auto& [name, norm] : {std::pair{"q_norm", &q_norm}, std::pair{"k_norm", &k_norm}}) {
    if (norm->defined()) {
      check_float(op, name, *norm);
      check_size(op, name, *norm, dim);
    }
  }
  if (q_norm.defined() != k_norm.defined()) fail(op, "q_norm and k_norm go together");
  if (!key_mask.device().is_cpu() || key_mask.scalar_type() != torch::kBool || key_mask.dim() != 2 ||
      key_mask.size(0) != batch || key_mask.size(1) < length + 1 || key_mask.stride(1) != 1) {
    fail(op, "key_mask must be a CPU bool (B, >= length + 1) tensor with unit column stride");
  }
  torch::Tensor out = torch::empty({batch, heads * dim}, q.options());
  cpu::DecodeAttention step;
  step.batch = batch;
  step.heads = heads;
  step.kv_heads = kv_heads;
  step.head_dim = dim;
  step.capacity = capacity;
  step.length = length;
  step.norm_eps = static_cast<float>(norm_eps);
  step.q = q.data_ptr<float>();
  step.k = k.data_ptr<float>();
  step.v = v.data_ptr<float>();
  step.q_norm = q_norm.defined() ? q_norm.data_ptr<float>() : nullptr;
  step.k_norm = k_norm.defined() ? k_norm.data_ptr<float>() : nullptr;
  step.cos = cos.data_ptr<float>();
  step.sin = sin.data_ptr<float>();
  step.key_cache = key_cache.data_ptr<float>();
  step.value_cache = value_cache.data_ptr<float>();
  step.key_mask = key_mask.data_ptr<bool>();
  step.mask_stride = key_mask.stride(0);
  step.out = out.data_ptr<float>();
  cpu::decode_attention(step, threads());
  return out;
}

}  // namespace gopd::kernels
