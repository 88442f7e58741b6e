// The public token-level ops: boundary checks, dispatch between the reference path and the
// fused path, and the autograd functions of the fused path. A fused op hands its kernels a
// plain Rows view of each (N, V) operand (flash-attention's "validate once, then a params
// struct"): the CPU row kernels run on at::parallel_for row ranges, CUDA tensors go to the
// CUDA launchers when LibTorch was built with CUDA (GOPD_TORCH_CUDA).
#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gopd/kernels/cuda_launchers.h"
#include "gopd/kernels/ops.h"

#include <ATen/record_function.h>
#include "cpu/fused_rows.h"

#if GOPD_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace gopd::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ---------------------------------------------------------------------------------------
// Boundary checks

[[noreturn]] void fail(const char* op, const std::string& message) {
  throw std::invalid_argument(std::string(op) + ": " + message);
}

std::string shape_of(const torch::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes();
  return out.str();
}

// fp64 is accepted by the reference path only (the finite-difference tests use it).
void check_logits(const char* op, const char* name, const torch::Tensor& logits, Impl impl) {
  if (!logits.defined()) fail(op, std::string(name) + " is undefined");
  if (logits.dim() < 1 || logits.size(-1) < 1) {
    fail(op, std::string(name) + " must have a non-empty last (vocabulary) dimension, got shape " +
                 shape_of(logits));
  }
  const torch::ScalarType dtype = logits.scalar_type();
  const bool reference_fp64 = impl == Impl::reference && dtype == torch::kDouble;
  if (dtype != torch::kFloat && dtype != torch::kBFloat16 && !reference_fp64) {
    fail(op, std::string(name) + " must be fp32 or bf16, got " +
                 std::string(c10::toString(logits.scalar_type())));
  }
}

void check_same_shape(const char* op, const char* name, const torch::Tensor& tensor,
                      const torch::Tensor& student) {
  if (tensor.sizes() != student.sizes()) {
    fail(op, std::string(name) + " has shape " + shape_of(tensor) + " but student has " +
                 shape_of(student));
  }
  if (tensor.device() != student.device()) {
    fail(op, std::string(name) + " is on " + tensor.device().str() + " but student is on " +
                 student.device().str());
  }
}

// Student, teacher and (when defined) reference logits of one shape.
void check_three_logits(const char* op, const torch::Tensor& student, const torch::Tensor& teacher,
                        const torch::Tensor& reference, Impl impl) {
  check_logits(op, "student", student, impl);
  check_logits(op, "teacher", teacher, impl);
  check_same_shape(op, "teacher", teacher, student);
  if (reference.defined()) {
    check_logits(op, "reference", reference, impl);
    check_same_shape(op, "reference", reference, student);
  }
}

void check_temperature(const char* op, double temperature) {
  if (!(temperature > 0.0) || !std::isfinite(temperature)) {
    fail(op, "temperature must be a finite number > 0, got " + std::to_string(temperature));
  }
}

void check_tokens(const char* op, const torch::Tensor& tokens, const torch::Tensor& logits) {
  if (!tokens.defined() || tokens.scalar_type() != torch::kLong) {
    fail(op, "tokens must be an int64 tensor");
  }
  if (tokens.sizes() != logits.sizes().slice(0, logits.dim() - 1)) {
    fail(op, "tokens have shape " + shape_of(tokens) + " but logits " + shape_of(logits) +
                 " need the logits' leading dimensions");
  }
  if (tokens.device() != logits.device()) fail(op, "tokens and logits are on different devices");
  if (tokens.numel() > 0 && tokens.is_cpu()) {
    const int64_t low = tokens.min().item<int64_t>();
    const int64_t high = tokens.max().item<int64_t>();
    if (low < 0 || high >= logits.size(-1)) {
      fail(op, "token ids must lie in [0, " + std::to_string(logits.size(-1)) + "), got " +
                   std::to_string(low < 0 ? low : high));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Row views

// An (N, V) view whose rows are contiguous; copies only when the input cannot be viewed so.
torch::Tensor as_rows(const torch::Tensor& logits) {
  torch::Tensor rows = logits.stride(-1) == 1 ? logits : logits.contiguous();
  if (rows.dim() == 2) return rows;
  return rows.reshape({-1, rows.size(-1)});
}

cuda::Rows rows_view(const torch::Tensor& rows) {
  cuda::Rows view;
  if (!rows.defined()) return view;
  view.data = rows.data_ptr();
  view.row_stride = rows.size(0) > 1 ? rows.stride(0) : rows.size(1);
  view.dtype = rows.scalar_type() == torch::kBFloat16 ? cuda::DType::bf16 : cuda::DType::f32;
  return view;
}

const float* float_data(const torch::Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr<float>() : nullptr;
}

float* float_data_mutable(const torch::Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr<float>() : nullptr;
}

torch::Tensor row_floats(const torch::Tensor& like, int64_t n) {
  return torch::empty({n}, like.options().dtype(torch::kFloat));
}

// Gradient of an incoming output: fp32 contiguous, or undefined when that output was unused.
torch::Tensor incoming(const torch::Tensor& grad) {
  return grad.defined() ? grad.to(torch::kFloat).contiguous() : grad;
}

// Rows are independent: split them into one contiguous range per thread (LibTorch's intra-op
// thread count), each range at least ~32k elements. Plain std::threads rather than
// at::parallel_for: that one is an inline OpenMP region, and runs serially in code built
// without -fopenmp, as gopd is.
template <typename Fn>
void for_row_ranges(int64_t n, int64_t v, const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(v, 1));
  const int64_t tasks = std::min<int64_t>(at::get_num_threads(), (n + grain - 1) / grain);
  if (tasks <= 1) {
    fn(cpu::RowRange{0, n});
    return;
  }
  std::vector<std::thread> workers;
  const int64_t per_task = (n + tasks - 1) / tasks;
  for (int64_t task = 1; task < tasks; ++task) {
    const cpu::RowRange range{task * per_task, std::min(n, (task + 1) * per_task)};
    if (range.begin < range.end) workers.emplace_back([&fn, range] { fn(range); });
  }
  fn(cpu::RowRange{0, std::min(n, per_task)});
  for (std::thread& worker : workers) worker.join();
}

#if GOPD_TORCH_CUDA
void* current_stream(const torch::Tensor& tensor) {
  return c10::cuda::getCurrentCUDAStream(tensor.device().index()).stream();
}

void check_launch(const char* op, int status) {
  if (status != 0) fail(op, "CUDA kernel launch failed with cudaError " + std::to_string(status));
}
#else
[[noreturn]] void no_cuda(const char* op) {
  fail(op, "CUDA tensors need gopd built against a LibTorch with CUDA (GOPD_TORCH_CUDA); use "
           "kernels.impl: reference or CPU tensors");
}
#endif

// Runs an op's kernels on (n, v) rows: for CUDA tensors the launcher `launch(stream)` on the
// tensor's current stream (its status checked), otherwise the CPU row kernel `rows(range)` on
// row ranges.
template <typename Launch, typename Rows>
void run_kernels(const char* op, const torch::Tensor& tensor, int64_t n, int64_t v, Launch&& launch,
                 Rows&& rows) {
  if (tensor.is_cuda()) {
#if GOPD_TORCH_CUDA
    check_launch(op, launch(current_stream(tensor)));
#else
    (void)launch;
    no_cuda(op);
#endif
  } else {
    for_row_ranges(n, v, rows);
  }
}

// ---------------------------------------------------------------------------------------
// token_logprobs

class TokenLogprobsFunction : public torch::autograd::Function<TokenLogprobsFunction> {
 public:
  // logits (N, V), tokens (N) → {logprobs (N), entropy (N)}
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& tokens, double temperature) {
    const int64_t n = logits.size(0);
    const int64_t v = logits.size(1);
    const torch::Tensor tokens_c = tokens.contiguous();
    torch::Tensor logprobs = row_floats(logits, n);
    torch::Tensor entropy = row_floats(logits, n);
    torch::Tensor lse = row_floats(logits, n);
    const cuda::Rows view = rows_view(logits);
    const float t = float(temperature);
    run_kernels(
        "token_logprobs", logits, n, v,
        [&](void* stream) {
          return cuda::token_logprobs_forward(view, n, v, tokens_c.data_ptr<int64_t>(), t,
                                              logprobs.data_ptr<float>(), entropy.data_ptr<float>(),
                                              lse.data_ptr<float>(), stream);
        },
        [&](cpu::RowRange range) {
          cpu::token_logprobs_forward(view, v, tokens_c.data_ptr<int64_t>(), t,
                                      logprobs.data_ptr<float>(), entropy.data_ptr<float>(),
                                      lse.data_ptr<float>(), range);
        });
    ctx->save_for_backward({logits, tokens_c, lse, entropy});
    ctx->saved_data["temperature"] = temperature;
    return {logprobs, entropy};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& logits = saved[0];
    const torch::Tensor& tokens = saved[1];
    const torch::Tensor& lse = saved[2];
    const torch::Tensor& entropy = saved[3];
    const float t = float(ctx->saved_data["temperature"].toDouble());
    const torch::Tensor grad_logprobs = incoming(grads[0]);
    const torch::Tensor grad_entropy = incoming(grads[1]);
    const int64_t n = logits.size(0);
    const int64_t v = logits.size(1);
    torch::Tensor grad_logits = torch::empty({n, v}, logits.options());
    const cuda::Rows view = rows_view(logits);
    const float* entropy_data = grad_entropy.defined() ? entropy.data_ptr<float>() : nullptr;
    run_kernels(
        "token_logprobs", logits, n, v,
        [&](void* stream) {
          return cuda::token_logprobs_backward(
              view, n, v, tokens.data_ptr<int64_t>(), t, lse.data_ptr<float>(), entropy_data,
              float_data(grad_logprobs), float_data(grad_entropy), grad_logits.data_ptr(), stream);
        },
        [&](cpu::RowRange range) {
          cpu::token_logprobs_backward(
              view, v, tokens.data_ptr<int64_t>(), t, lse.data_ptr<float>(), entropy_data,
              float_data(grad_logprobs), float_data(grad_entropy), grad_logits.data_ptr(), range);
        });
    return {grad_logits, torch::Tensor(), torch::Tensor()};
  }
};

// ---------------------------------------------------------------------------------------
// gopd_kl

class GopdKlFunction : public torch::autograd::Function<GopdKlFunction> {
 public:
  // student, teacher, reference (N, V) → loss (N). Without a reference, `reference` is an empty
  // placeholder (custom autograd functions reject undefined tensor inputs: LibTorch 2.11 still
  // records a device for every input).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& student,
                               const torch::Tensor& teacher, const torch::Tensor& reference_arg,
                               double lambda, double temperature) {
    const torch::Tensor reference = reference_arg.numel() > 0 ? reference_arg : torch::Tensor();
    const int64_t n = student.size(0);
    const int64_t v = student.size(1);
    torch::Tensor loss = row_floats(student, n);
    torch::Tensor lse_s = row_floats(student, n);
    torch::Tensor lse_a = row_floats(student, n);
    const cuda::Rows s = rows_view(student);
    const cuda::Rows t = rows_view(teacher);
    const cuda::Rows r = rows_view(reference);
    run_kernels(
        "gopd_kl", student, n, v,
        [&](void* stream) {
          return cuda::gopd_kl_forward(s, t, r, n, v, float(lambda), float(temperature),
                                       loss.data_ptr<float>(), lse_s.data_ptr<float>(),
                                       lse_a.data_ptr<float>(), stream);
        },
        [&](cpu::RowRange range) {
          cpu::gopd_kl_forward(s, t, r, v, float(lambda), float(temperature),
                               loss.data_ptr<float>(), lse_s.data_ptr<float>(),
                               lse_a.data_ptr<float>(), range);
        });
    ctx->save_for_backward({student, teacher, reference_arg, lse_s, lse_a, loss});
    ctx->saved_data["lambda"] = lambda;
    ctx->saved_data["temperature"] = temperature;
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& student = saved[0];
    const float lambda = float(ctx->saved_data["lambda"].toDouble());
    const float temperature = float(ctx->saved_data["temperature"].toDouble());
    const torch::Tensor grad_loss = incoming(grads[0]);
    const int64_t n = student.size(0);
    const int64_t v = student.size(1);
    torch::Tensor grad_student = torch::empty({n, v}, student.options());
    const cuda::Rows s = rows_view(student);
    const cuda::Rows t = rows_view(saved[1]);
    const cuda::Rows r = rows_view(saved[2].numel() > 0 ? saved[2] : torch::Tensor());
    run_kernels(
        "gopd_kl", student, n, v,
        [&](void* stream) {
          return cuda::gopd_kl_backward(s, t, r, n, v, lambda, temperature,
                                        saved[3].data_ptr<float>(), saved[4].data_ptr<float>(),
                                        saved[5].data_ptr<float>(), grad_loss.data_ptr<float>(),
                                        grad_student.data_ptr(), stream);
        },
        [&](cpu::RowRange range) {
          cpu::gopd_kl_backward(s, t, r, v, lambda, temperature, saved[3].data_ptr<float>(),
                                saved[4].data_ptr<float>(), saved[5].data_ptr<float>(),
                                grad_loss.data_ptr<float>(), grad_student.data_ptr(), range);
        });
    return {grad_student, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// ---------------------------------------------------------------------------------------
// gopd_kl_topk

class GopdKlTopkFunction : public torch::autograd::Function<GopdKlTopkFunction> {
 public:
  // student (N, V), ids / teacher_lp / reference_lp (N, k) → loss (N); reference_lp is an empty
  // placeholder without a reference.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& student,
                               const torch::Tensor& ids, const torch::Tensor& teacher_lp,
                               const torch::Tensor& reference_arg, double lambda,
                               double temperature) {
    const torch::Tensor reference_lp = reference_arg.numel() > 0 ? reference_arg : torch::Tensor();
    const int64_t n = student.size(0);
    const int64_t v = student.size(1);
    const int64_t k = ids.size(1);
    torch::Tensor loss = row_floats(student, n);
    torch::Tensor lse_s = row_floats(student, n);
    torch::Tensor d = torch::empty({n, k + 1}, student.options().dtype(torch::kFloat));
    const cuda::Rows s = rows_view(student);
    run_kernels(
        "gopd_kl_topk", student, n, v,
        [&](void* stream) {
          return cuda::gopd_kl_topk_forward(
              s, n, v, ids.data_ptr<int64_t>(), teacher_lp.data_ptr<float>(),
              float_data(reference_lp), k, float(lambda), float(temperature),
              loss.data_ptr<float>(), lse_s.data_ptr<float>(), d.data_ptr<float>(), stream);
        },
        [&](cpu::RowRange range) {
          cpu::gopd_kl_topk_forward(s, v, ids.data_ptr<int64_t>(), teacher_lp.data_ptr<float>(),
                                    float_data(reference_lp), k, float(lambda), float(temperature),
                                    loss.data_ptr<float>(), lse_s.data_ptr<float>(),
                                    d.data_ptr<float>(), range);
        });
    ctx->save_for_backward({student, ids, lse_s, d});
    ctx->saved_data["temperature"] = temperature;
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& student = saved[0];
    const torch::Tensor& ids = saved[1];
    const float temperature = float(ctx->saved_data["temperature"].toDouble());
    const torch::Tensor grad_loss = incoming(grads[0]);
    const int64_t n = student.size(0);
    const int64_t v = student.size(1);
    const int64_t k = ids.size(1);
    torch::Tensor grad_student = torch::empty({n, v}, student.options());
    const cuda::Rows s = rows_view(student);
    run_kernels(
        "gopd_kl_topk", student, n, v,
        [&](void* stream) {
          return cuda::gopd_kl_topk_backward(s, n, v, ids.data_ptr<int64_t>(), k, temperature,
                                             saved[2].data_ptr<float>(), saved[3].data_ptr<float>(),
                                             grad_loss.data_ptr<float>(), grad_student.data_ptr(),
                                             stream);
        },
        [&](cpu::RowRange range) {
          cpu::gopd_kl_topk_backward(s, v, ids.data_ptr<int64_t>(), k, temperature,
                                     saved[2].data_ptr<float>(), saved[3].data_ptr<float>(),
                                     grad_loss.data_ptr<float>(), grad_student.data_ptr(), range);
        });
    return {grad_student, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

torch::Tensor placeholder(const torch::Tensor& like) {
  return torch::empty({0}, like.options().dtype(torch::kFloat));
}

// Teacher and reference logits enter with the student's dtype; mixed dtypes go to fp32.
torch::Tensor unify_dtype(const torch::Tensor& tensor, torch::ScalarType dtype) {
  return tensor.defined() && tensor.scalar_type() != dtype ? tensor.to(dtype) : tensor;
}

torch::ScalarType common_dtype(const torch::Tensor& a, const torch::Tensor& b,
                               const torch::Tensor& c) {
  const torch::ScalarType dtype = a.scalar_type();
  const bool same = b.scalar_type() == dtype && (!c.defined() || c.scalar_type() == dtype);
  return same ? dtype : torch::kFloat;
}

}  // namespace

Impl parse_impl(const std::string& name) {
  if (name == "fused") return Impl::fused;
  if (name == "reference") return Impl::reference;
  throw std::invalid_argument("kernels.impl: expected fused or reference, got '" + name + "'");
}

const char* impl_name(Impl impl) { return impl == Impl::fused ? "fused" : "reference"; }

TokenLogprobs token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens,
                             double temperature, bool with_entropy, Impl impl) {
  RECORD_FUNCTION("gopd::token_logprobs", std::vector<c10::IValue>());
  const char* op = "token_logprobs";
  check_logits(op, "logits", logits, impl);
  check_tokens(op, tokens, logits);
  check_temperature(op, temperature);
  if (impl == Impl::reference) {
    return reference::token_logprobs(logits, tokens, temperature, with_entropy);
  }
  const torch::Tensor rows = as_rows(logits);  // (N, V)
  const variable_list outputs =
      TokenLogprobsFunction::apply(rows, tokens.reshape({-1}), temperature);
  TokenLogprobs result;
  result.logprobs = outputs[0].view(tokens.sizes());
  if (with_entropy) result.entropy = outputs[1].view(tokens.sizes());
  return result;
}

torch::Tensor gopd_kl(const torch::Tensor& student, const torch::Tensor& teacher,
                      const torch::Tensor& reference, double lambda, double temperature,
                      Impl impl) {
  RECORD_FUNCTION("gopd::gopd_kl", std::vector<c10::IValue>());
  const char* op = "gopd_kl";
  check_three_logits(op, student, teacher, reference, impl);
  check_temperature(op, temperature);
  if (!std::isfinite(lambda)) fail(op, "lambda must be finite");
  if (impl == Impl::reference) {
    return reference::gopd_kl(student, teacher, reference, lambda, temperature);
  }
  const torch::ScalarType dtype = common_dtype(student, teacher, reference);
  const torch::Tensor loss = GopdKlFunction::apply(
      as_rows(unify_dtype(student, dtype)), as_rows(unify_dtype(teacher, dtype).detach()),
      reference.defined() ? as_rows(unify_dtype(reference, dtype).detach()) : placeholder(student),
      lambda, temperature);
  return loss.view(student.sizes().slice(0, student.dim() - 1));
}

LogratioReward gopd_logratio_reward(const torch::Tensor& student, const torch::Tensor& teacher,
                                    const torch::Tensor& reference, const torch::Tensor& tokens,
                                    double lambda, double temperature, Impl impl) {
  RECORD_FUNCTION("gopd::gopd_logratio_reward", std::vector<c10::IValue>());
  const char* op = "gopd_logratio_reward";
  check_three_logits(op, student, teacher, reference, impl);
  check_tokens(op, tokens, student);
  check_temperature(op, temperature);
  if (!std::isfinite(lambda)) fail(op, "lambda must be finite");
  if (impl == Impl::reference) {
    return reference::gopd_logratio_reward(student, teacher, reference, tokens, lambda,
                                           temperature);
  }
  torch::NoGradGuard no_grad;
  const torch::ScalarType dtype = common_dtype(student, teacher, reference);
  const torch::Tensor s = as_rows(unify_dtype(student, dtype));
  const torch::Tensor t = as_rows(unify_dtype(teacher, dtype));
  const torch::Tensor r =
      reference.defined() ? as_rows(unify_dtype(reference, dtype)) : torch::Tensor();
  const torch::Tensor tokens_c = tokens.reshape({-1}).contiguous();
  const int64_t n = s.size(0);
  const int64_t v = s.size(1);
  LogratioReward result;
  result.advantage = row_floats(s, n);
  result.lp_student = row_floats(s, n);
  result.lp_teacher = row_floats(s, n);
  if (r.defined()) result.lp_reference = row_floats(s, n);
  run_kernels(
      op, s, n, v,
      [&](void* stream) {
        return cuda::gopd_logratio_reward(
            rows_view(s), rows_view(t), rows_view(r), n, v, tokens_c.data_ptr<int64_t>(),
            float(lambda), float(temperature), result.advantage.data_ptr<float>(),
            result.lp_student.data_ptr<float>(), result.lp_teacher.data_ptr<float>(),
            float_data_mutable(result.lp_reference), stream);
      },
      [&](cpu::RowRange range) {
        cpu::gopd_logratio_reward(
            rows_view(s), rows_view(t), rows_view(r), v, tokens_c.data_ptr<int64_t>(),
            float(lambda), float(temperature), result.advantage.data_ptr<float>(),
            result.lp_student.data_ptr<float>(), result.lp_teacher.data_ptr<float>(),
            float_data_mutable(result.lp_reference), range);
      });
  for (torch::Tensor* out : {&result.advantage, &result.lp_student, &result.lp_teacher,
                             &result.lp_reference}) {
    if (out->defined()) *out = out->view(tokens.sizes());
  }
  return result;
}

torch::Tensor gopd_kl_topk(const torch::Tensor& student, const torch::Tensor& teacher_ids,
                           const torch::Tensor& teacher_logprobs,
                           const torch::Tensor& reference_logprobs, double lambda,
                           double temperature, Impl impl) {
  RECORD_FUNCTION("gopd::gopd_kl_topk", std::vector<c10::IValue>());
  const char* op = "gopd_kl_topk";
  check_logits(op, "student", student, impl);
  check_temperature(op, temperature);
  if (!std::isfinite(lambda)) fail(op, "lambda must be finite");
  const auto leading = student.sizes().slice(0, student.dim() - 1);
  if (!teacher_ids.defined() || teacher_ids.scalar_type() != torch::kLong ||
      teacher_ids.dim() != student.dim() || teacher_ids.sizes().slice(0, student.dim() - 1) != leading) {
    fail(op, "teacher_ids must be int64 with the student's leading dimensions plus k, got " +
                 (teacher_ids.defined() ? shape_of(teacher_ids) : std::string("undefined")));
  }
  const int64_t k = teacher_ids.size(-1);
  const int64_t v = student.size(-1);
  if (k < 1 || k > v) {
    fail(op, "k = " + std::to_string(k) + " must be between 1 and the vocabulary size " +
                 std::to_string(v));
  }
  if (!teacher_logprobs.defined() || teacher_logprobs.sizes() != teacher_ids.sizes()) {
    fail(op, "teacher_logprobs must have the shape of teacher_ids " + shape_of(teacher_ids));
  }
  if (reference_logprobs.defined() && reference_logprobs.sizes() != teacher_ids.sizes()) {
    fail(op, "reference_logprobs must have the shape of teacher_ids " + shape_of(teacher_ids));
  }
  if (teacher_ids.is_cpu()) {
    const torch::Tensor ids = teacher_ids.reshape({-1, k});
    if (ids.numel() > 0 && (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= v)) {
      fail(op, "teacher_ids must lie in [0, " + std::to_string(v) + ")");
    }
    const torch::Tensor sorted = std::get<0>(ids.sort(-1));
    if (k > 1 && (sorted.slice(1, 1) == sorted.slice(1, 0, k - 1)).any().item<bool>()) {
      fail(op, "teacher_ids must be distinct within each row");
    }
  }
  if (impl == Impl::reference) {
    return reference::gopd_kl_topk(student, teacher_ids, teacher_logprobs, reference_logprobs,
                                   lambda, temperature);
  }
  const auto flat_k = [&](const torch::Tensor& x, torch::ScalarType dtype) {
    return x.defined() ? x.detach().to(dtype).reshape({-1, k}).contiguous() : placeholder(student);
  };
  const torch::Tensor loss = GopdKlTopkFunction::apply(
      as_rows(student), flat_k(teacher_ids, torch::kLong), flat_k(teacher_logprobs, torch::kFloat),
      flat_k(reference_logprobs, torch::kFloat), lambda, temperature);
  return loss.view(leading);
}

}  // namespace gopd::kernels
