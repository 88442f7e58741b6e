// SFT cross-entropy on response tokens (DESIGN.md "SFT"); see include/gopd/objective/sft_loss.h.
#include "gopd/objective/sft_loss.h"

#include <sstream>
#include <stdexcept>

namespace gopd::objective {
namespace {

[[noreturn]] void fail(const std::string& message) {
  throw std::invalid_argument("sft_loss: " + message);
}

std::string shape_of(const torch::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes();
  return out.str();
}

}  // namespace

LossOutput sft_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                    const torch::Tensor& mask, LossAgg agg, kernels::Impl impl) {
  if (!logits.defined() || logits.dim() != 3) {
    fail("logits must be (B, T, V), got " +
         (logits.defined() ? shape_of(logits) : std::string("undefined")));
  }
  const auto leading = logits.sizes().slice(0, 2);
  if (!targets.defined() || targets.scalar_type() != torch::kLong || targets.sizes() != leading) {
    fail("targets must be int64 with the leading (B, T) dimensions of logits " + shape_of(logits) +
         ", got " +
         (targets.defined()
              ? std::string(c10::toString(targets.scalar_type())) + " " + shape_of(targets)
              : std::string("undefined")));
  }
  if (!mask.defined() || mask.sizes() != leading) {
    fail("mask must be (B, T) = the logits' leading dimensions, got " +
         (mask.defined() ? shape_of(mask) : std::string("undefined")));
  }
  const torch::Tensor padding = mask == 0;                             // (B, T) bool
  const torch::Tensor safe_targets = targets.masked_fill(padding, 0);  // (B, T) int64
  const torch::Tensor nll =
      -kernels::token_logprobs(logits, safe_targets, 1.0, /*with_entropy=*/false, impl)
           .logprobs;  // (B, T) fp32
  LossOutput out;
  out.loss = aggregate(nll, mask, agg);
  torch::NoGradGuard no_grad;
  out.metrics["loss/sft"] = out.loss.detach();
  const torch::Tensor correct = (logits.detach().argmax(-1) == targets).to(nll.scalar_type());
  out.metrics["sft/token_accuracy"] = aggregate(correct, mask, LossAgg::token_mean);
  return out;
}

}  // namespace gopd::objective
