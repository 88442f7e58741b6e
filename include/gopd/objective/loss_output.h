// LossOutput: what every objective hands the trainer (DESIGN.md data flow "Objective
// ──LossOutput──▶ Trainer"). The trainer calls loss.backward() and logs the metrics; metrics stay
// tensors until a log step, so computing a loss never forces a device sync.
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

namespace gopd::objective {

struct LossOutput {
  torch::Tensor loss;  // () fp32, requires grad: the scalar to back-propagate
  // Detached () scalars under namespaced keys ("loss/policy", "actor/clip_fraction", "gopd/…").
  std::map<std::string, torch::Tensor> metrics;
};

}  // namespace gopd::objective
