// Mixed precision for the student (train.precision: bf16): LibTorch's autocast on the student's
// device type for the lifetime of a guard — matmuls and linear layers in bf16, softmax-like ops
// and everything the model already computes in fp32 (RMSNorm, rotary, attention softmax) in
// fp32, parameters and their gradients in their own dtype (fp32 master weights). Guards nest;
// leaving the outermost clears autocast's cache of bf16 weight copies, so a guard must never
// span an optimizer step (the cached copies would be stale).
#pragma once

#include <torch/torch.h>

namespace gopd::model {

class AutocastGuard {
 public:
  // `enabled` false: autocast off for the guard's lifetime (nothing to do outside any guard).
  AutocastGuard(c10::DeviceType device, bool enabled, torch::ScalarType dtype = torch::kBFloat16);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool active_ = false;
  bool previous_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kBFloat16;
};

// Whether autocast is on for `device` on this thread, and in which dtype (what a recomputation
// in backward must restore).
bool autocast_enabled(c10::DeviceType device);
torch::ScalarType autocast_dtype(c10::DeviceType device);

}  // namespace gopd::model
