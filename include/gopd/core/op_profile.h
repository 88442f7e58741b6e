// Where a step's time goes: seconds inside LibTorch operators and gopd's fused kernels against
// the rest (Python-free as gopd is, the rest is its own C++: batching, bookkeeping, waiting).
// Off unless enabled; `gopd bench train` turns it on to report the share of a training step
// spent outside tensor operations. Counts the outermost operator of each call on threads that
// opted in (the trainer's thread, where forward and CPU backward run), so nested ops are not
// counted twice. While on, every operator call pays a RecordFunction callback (~1 µs).
#pragma once

#include <cstdint>

namespace gopd::core {

struct OpSeconds {
  double matmul = 0.0;  // mm / addmm / bmm / matmul / linear and their backward nodes
  double fused = 0.0;   // gopd's fused kernels (token log-probs, G-OPD KL, decode step, lm head)
  double other = 0.0;   // every other tensor operator (elementwise, softmax, copies, optimizer)
  int64_t calls = 0;
  double total() const { return matmul + fused + other; }
};

// Installs the (process-wide) callback; disable removes it (totals are kept).
void enable_op_profile();
void disable_op_profile();
bool op_profile_enabled();
// Counts the calling thread's operators from now on (a no-op until enable_op_profile).
void count_ops_on_this_thread();
// Totals since enable_op_profile, all counted threads.
OpSeconds op_seconds();

}  // namespace gopd::core
