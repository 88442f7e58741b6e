// Learning rate per optimizer step (optim section): linear warmup from 0, then constant,
// linear decay or cosine decay to min_lr_ratio · lr at the last step.
#pragma once

#include <cstdint>

#include "gopd/core/config.h"

namespace gopd::train {

// `step` counts from 0; `total_steps` ≥ 1 is the number of optimizer steps of the run.
double learning_rate(const core::OptimConfig& optim, int64_t step, int64_t total_steps);

}  // namespace gopd::train
