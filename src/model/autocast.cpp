// The autocast guard (see autocast.h): the same bookkeeping as torch.autocast's __enter__ and
// __exit__ — previous state restored, nesting counted, the weight-cast cache cleared on leaving
// the outermost guard.
#include "gopd/model/autocast.h"

#include <ATen/autocast_mode.h>

namespace gopd::model {

AutocastGuard::AutocastGuard(c10::DeviceType device, bool enabled, torch::ScalarType dtype)
    : device_(device) {
  previous_enabled_ = at::autocast::is_autocast_enabled(device_);
  previous_dtype_ = at::autocast::get_autocast_dtype(device_);
  // Off inside an autocast region (a frozen fp32 model scored during the student's forward):
  // switched off for the guard's lifetime; off outside any: nothing to do.
  active_ = enabled || previous_enabled_;
  if (!active_) return;
  at::autocast::set_autocast_enabled(device_, enabled);
  if (enabled) at::autocast::set_autocast_dtype(device_, dtype);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, previous_enabled_);
  at::autocast::set_autocast_dtype(device_, previous_dtype_);
}

bool autocast_enabled(c10::DeviceType device) { return at::autocast::is_autocast_enabled(device); }

torch::ScalarType autocast_dtype(c10::DeviceType device) {
  return at::autocast::get_autocast_dtype(device);
}

}  // namespace gopd::model
