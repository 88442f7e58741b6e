// AdamW's update, the arithmetic of torch::optim::AdamW::step with one change on the CPU: the
// square root of the second moment is IEEE 754's correctly rounded one. ATen sends a CPU
// float tensor's sqrt to MKL's vector math library, whose result depends on the processor:
// on an AMD EPYC about one element in six is one ulp off the correctly rounded root, on an
// Intel Xeon taking MKL's AVX2 path none is, and MKL_CBWR=COMPATIBLE gives a third answer
// again. Every other op of the step is one of ATen's own kernels, which give the same bits on
// any x86-64 with the same ATEN_CPU_CAPABILITY. So with this root the same run gives the same
// weights on an Intel and an AMD machine (tests/e2e/golden_runs_test.cpp). Off the CPU the
// step is torch's to the bit (CUDA's sqrt is correctly rounded).
#pragma once

#include <torch/optim/adamw.h>

namespace gopd::kernels {

// Element-wise square root, correctly rounded on every machine (ATen's on a GPU). A reduced
// precision input (bf16, fp16) is rooted in fp32 and rounded back, as ATen does.
torch::Tensor correctly_rounded_sqrt(const torch::Tensor& x);

// One AdamW step over every parameter of `optimizer` that has a gradient, at each group's
// options (lr, betas, eps, weight_decay, amsgrad), its state kept where torch::optim::AdamW
// keeps it, so checkpoints (optimizer.pt) and torch's own step() read and continue it.
// `reference_sqrt` takes ATen's sqrt instead: the step is then torch's, bit for bit (the
// parity test).
void adamw_step(torch::optim::AdamW& optimizer, bool reference_sqrt = false);

}  // namespace gopd::kernels
