// Implements op_profile.h with a global RecordFunction callback that times the outermost
// operator of each counted thread.
#include "gopd/core/op_profile.h"

#include <ATen/record_function.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>

namespace gopd::core {
namespace {

std::atomic<bool> enabled{false};
std::atomic<int64_t> matmul_ns{0}, fused_ns{0}, other_ns{0}, calls{0};
thread_local bool counted = false;
thread_local int depth = 0;
thread_local std::chrono::steady_clock::time_point started;

bool is_matmul(const char* name) {
  for (const char* word : {"mm", "matmul", "linear", "Mm", "MatMul", "Linear", "addmv", "Addmv"}) {
    if (std::strstr(name, word) != nullptr) return true;
  }
  return false;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction&) {
  if (counted && depth++ == 0) started = std::chrono::steady_clock::now();
  return nullptr;
}

void on_end(const at::RecordFunction& function, at::ObserverContext*) {
  if (!counted || depth == 0 || --depth != 0) return;
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count();
  const char* name = function.name();
  if (std::strncmp(name, "gopd::", 6) == 0) {
    fused_ns += ns;
  } else if (is_matmul(name)) {
    matmul_ns += ns;
  } else {
    other_ns += ns;
  }
  ++calls;
}

std::mutex handle_mutex;
at::CallbackHandle handle = 0;

}  // namespace

void enable_op_profile() {
  const std::lock_guard<std::mutex> lock(handle_mutex);
  if (enabled) return;
  handle = at::addGlobalCallback(at::RecordFunctionCallback(on_start, on_end)
                                     .needsInputs(false)
                                     .needsOutputs(false)
                                     .scopes({at::RecordScope::FUNCTION,
                                              at::RecordScope::BACKWARD_FUNCTION,
                                              at::RecordScope::USER_SCOPE}));
  enabled = true;
}

void disable_op_profile() {
  const std::lock_guard<std::mutex> lock(handle_mutex);
  if (!enabled) return;
  at::removeCallback(handle);
  enabled = false;
}

bool op_profile_enabled() { return enabled; }

void count_ops_on_this_thread() { counted = true; }

OpSeconds op_seconds() {
  OpSeconds seconds;
  seconds.matmul = double(matmul_ns.load()) * 1e-9;
  seconds.fused = double(fused_ns.load()) * 1e-9;
  seconds.other = double(other_ns.load()) * 1e-9;
  seconds.calls = calls.load();
  return seconds;
}

}  // namespace gopd::core
