// Learning-rate schedules (torchtitan/verl conventions: warmup is linear from lr/warmup at step 0
// to lr at step warmup − 1; decay runs over the remaining steps).
#include "gopd/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace gopd::train {

double learning_rate(const core::OptimConfig& optim, int64_t step, int64_t total_steps) {
  if (optim.warmup_steps > 0 && step < optim.warmup_steps) {
    return optim.lr * double(step + 1) / double(optim.warmup_steps);
  }
  if (optim.schedule == "constant") return optim.lr;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - optim.warmup_steps - 1);
  const double progress =
      std::clamp(double(step - optim.warmup_steps) / double(decay_steps), 0.0, 1.0);
  const double floor = optim.min_lr_ratio;
  const double shape = optim.schedule == "cosine" ? 0.5 * (1.0 + std::cos(M_PI * progress))
                                                  : 1.0 - progress;
  return optim.lr * (floor + (1.0 - floor) * shape);
}

}  // namespace gopd::train
