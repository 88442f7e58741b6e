// AdamW's update with a correctly rounded square root: see adamw.h.
#include "gopd/kernels/adamw.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace gopd::kernels {
namespace {

template <typename Scalar>
void sqrt_elements(const Scalar* in, Scalar* out, int64_t count) {
  // Element by element, so any split over threads gives the same bits.
  at::parallel_for(0, count, int64_t(1) << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = std::sqrt(in[i]);
  });
}

}  // namespace

torch::Tensor correctly_rounded_sqrt(const torch::Tensor& x) {
  if (!x.device().is_cpu()) return x.sqrt();
  const bool wide = x.scalar_type() == torch::kFloat64;
  const torch::Tensor in = x.to(wide ? torch::kFloat64 : torch::kFloat32).contiguous();
  torch::Tensor out = torch::empty_like(in);
  if (wide) {
    sqrt_elements(in.data_ptr<double>(), out.data_ptr<double>(), in.numel());
  } else {
    sqrt_elements(in.data_ptr<float>(), out.data_ptr<float>(), in.numel());
  }
  return out.to(x.scalar_type());
}

void adamw_step(torch::optim::AdamW& optimizer, bool reference_sqrt) {
  torch::NoGradGuard no_grad;
  const auto root = [&](const torch::Tensor& t) {
    return reference_sqrt ? t.sqrt() : correctly_rounded_sqrt(t);
  };
  for (auto& group : optimizer.param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    for (torch::Tensor& parameter : group.params()) {
      if (!parameter.grad().defined()) continue;
      const torch::Tensor& grad = parameter.grad();  // same shape as the parameter
      if (options.weight_decay() != 0) parameter.mul_(1 - options.lr() * options.weight_decay());
      auto& slot = optimizer.state()[parameter.unsafeGetTensorImpl()];
      if (!slot) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
        if (options.amsgrad()) {
          fresh->max_exp_avg_sq(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
        }
        slot = std::move(fresh);
      }
      auto& state = static_cast<torch::optim::AdamWParamState&>(*slot);
      state.step(state.step() + 1);
      const auto [beta1, beta2] = options.betas();
      const double bias_correction1 = 1 - std::pow(beta1, state.step());
      const double bias_correction2 = 1 - std::pow(beta2, state.step());
      state.exp_avg().mul_(beta1).add_(grad, 1 - beta1);
      state.exp_avg_sq().mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      torch::Tensor second = state.exp_avg_sq();
      if (options.amsgrad()) {
        torch::max_out(state.max_exp_avg_sq(), state.exp_avg_sq(), state.max_exp_avg_sq());
        second = state.max_exp_avg_sq();
      }
      // The root is a fresh tensor: scaled in place, one parameter-sized buffer per step.
      const torch::Tensor denominator =
          root(second).div_(std::sqrt(bias_correction2)).add_(options.eps());
      parameter.addcdiv_(state.exp_avg(), denominator, -options.lr() / bias_correction1);
    }
  }
}

}  // namespace gopd::kernels
