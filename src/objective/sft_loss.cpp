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

void check_targets(const torch::Tensor& targets, const torch::Tensor& mask,
                   c10::IntArrayRef leading, const std::string& of) {
  if (!targets.defined() || targets.scalar_type() != torch::kLong || targets.sizes() != leading) {
    fail("targets must be int64 with the leading (B, T) dimensions of " + of + ", got " +
         (targets.defined()
              ? std::string(c10::toString(targets.scalar_type())) + " " + shape_of(targets)
              : std::string("undefined")));
  }
  if (!mask.defined() || mask.sizes() != leading) {
    fail("mask must be (B, T) = the leading dimensions of " + of + ", got " +
         (mask.defined() ? shape_of(mask) : std::string("undefined")));
  }
}

LossOutput output_of(const torch::Tensor& nll, const torch::Tensor& correct,
                     const torch::Tensor& mask, LossAgg agg) {
  LossOutput out;
  out.loss = aggregate(nll, mask, agg);
  torch::NoGradGuard no_grad;
  out.metrics["loss/sft"] = out.loss.detach();
  out.metrics["sft/token_accuracy"] =
      aggregate(correct.to(nll.scalar_type()), mask, LossAgg::token_mean);
  return out;
}

}  // namespace

LossOutput sft_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                    const torch::Tensor& mask, LossAgg agg, kernels::Impl impl) {
  if (!logits.defined() || logits.dim() != 3) {
    fail("logits must be (B, T, V), got " +
         (logits.defined() ? shape_of(logits) : std::string("undefined")));
  }
  check_targets(targets, mask, logits.sizes().slice(0, 2), "logits " + shape_of(logits));
  const torch::Tensor padding = mask == 0;                             // (B, T) bool
  const torch::Tensor safe_targets = targets.masked_fill(padding, 0);  // (B, T) int64
  const torch::Tensor nll =
      -kernels::token_logprobs(logits, safe_targets, 1.0, /*with_entropy=*/false, impl)
           .logprobs;  // (B, T) fp32
  return output_of(nll, logits.detach().argmax(-1) == targets, mask, agg);
}

LossOutput sft_loss(const kernels::LogitHead& head, const torch::Tensor& targets,
                    const torch::Tensor& mask, LossAgg agg, kernels::Impl impl) {
  if (!head.defined() || head.hidden.dim() != 3) {
    fail("the head's hidden states must be (B, T, H)");
  }
  check_targets(targets, mask, head.hidden.sizes().slice(0, 2),
                "the head's hidden states " + shape_of(head.hidden));
  const torch::Tensor flat_targets = targets.reshape({-1}).to(head.hidden.device());
  const torch::Tensor flat_safe =
      targets.masked_fill(mask == 0, 0).reshape({-1}).to(head.hidden.device());
  const std::vector<torch::Tensor> rows = kernels::map_rows(
      head, [=](const torch::Tensor& logits, int64_t begin, int64_t end) {
        const torch::Tensor logprobs =
            kernels::token_logprobs(logits, flat_safe.slice(0, begin, end), 1.0, false, impl)
                .logprobs;
        const torch::Tensor correct = logits.detach().argmax(-1) == flat_targets.slice(0, begin, end);
        return std::vector<torch::Tensor>{logprobs, correct};
      });
  return output_of(-rows[0], rows[1], mask, agg);
}

}  // namespace gopd::objective
