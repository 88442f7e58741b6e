// `gopd bench kernels`: the fused token-level ops against their LibTorch reference path, on the
// same inputs in the same run. For each op × vocabulary × dtype it prints two JSON lines (time
// of forward + backward, peak extra CPU memory), each with the reference as baseline and
// ratio = baseline / fused (> 1: the fused path is better), plus the target.
//
// Rows default to 4096. When the reference path would not fit in this machine's memory (three
// (rows × 151936) fp32 inputs are 7.5 GB before the reference's temporaries), the rows are
// halved until the estimate fits, and the line says so ("rows" vs "rows_requested").
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/bench_train.h"
#include "cli/commands.h"
#include "gopd/core/cpu_memory_tracker.h"
#include "gopd/core/error.h"
#include "gopd/core/runtime.h"
#include "gopd/kernels/ops.h"

namespace gopd::cli {
namespace {

struct KernelBenchOptions {
  int64_t rows = 4096;
  std::vector<int64_t> vocabs = {32000, 151936};
  std::vector<std::string> dtypes = {"fp32", "bf16"};
  std::vector<std::string> ops = {"token_logprobs", "token_logprobs_entropy", "gopd_kl",
                                  "gopd_logratio_reward", "gopd_kl_topk"};
  int64_t repeats = 3;
  int64_t top_k = 64;
  double lambda = 1.25;
  double memory_fraction = 0.7;
};

// The inputs one op needs: logits of up to three models (rows, vocab), sampled tokens and, for
// top-k, the teacher's top-k ids with teacher and reference log-probs.
struct BenchInputs {
  torch::Tensor student;
  torch::Tensor teacher;
  torch::Tensor reference;
  torch::Tensor tokens;
  torch::Tensor top_ids;
  torch::Tensor top_teacher_lp;
  torch::Tensor top_reference_lp;
};

int models_used(const std::string& op) {
  return op == "token_logprobs" || op == "token_logprobs_entropy" || op == "gopd_kl_topk" ? 1 : 3;
}

BenchInputs make_inputs(const std::string& op, int64_t rows, int64_t vocab,
                        torch::ScalarType dtype, int64_t top_k) {
  torch::manual_seed(1234);
  BenchInputs inputs;
  inputs.student = (torch::randn({rows, vocab}) * 3).to(dtype);
  inputs.tokens = torch::randint(0, vocab, {rows}, torch::kLong);
  if (models_used(op) == 3) {
    inputs.teacher = (torch::randn({rows, vocab}) * 3).to(dtype);
    inputs.reference = (torch::randn({rows, vocab}) * 3).to(dtype);
  }
  if (op == "gopd_kl_topk") {
    // Teacher top-k as a serving engine would send it: ids and log-probs, nothing else.
    const torch::Tensor teacher = torch::randn({rows, vocab}) * 3;
    const auto [values, ids] = teacher.topk(top_k, -1);
    const torch::Tensor lse = torch::logsumexp(teacher, -1, true);
    inputs.top_ids = ids;
    inputs.top_teacher_lp = values - lse;
    inputs.top_reference_lp = torch::log_softmax(torch::randn({rows, vocab}) * 3, -1).gather(-1, ids);
  }
  return inputs;
}

// One forward + backward (forward only for the detached reward).
void run_once(const std::string& op, const BenchInputs& inputs, kernels::Impl impl,
              double lambda) {
  if (op == "gopd_logratio_reward") {
    const kernels::LogratioReward reward = kernels::gopd_logratio_reward(
        inputs.student, inputs.teacher, inputs.reference, inputs.tokens, lambda, 1.0, impl);
    (void)reward;
    return;
  }
  torch::Tensor student = inputs.student.detach().set_requires_grad(true);
  torch::Tensor loss;
  if (op == "token_logprobs") {
    loss = kernels::token_logprobs(student, inputs.tokens, 1.0, false, impl).logprobs.sum();
  } else if (op == "token_logprobs_entropy") {
    const kernels::TokenLogprobs out = kernels::token_logprobs(student, inputs.tokens, 1.0, true, impl);
    loss = out.logprobs.sum() + out.entropy.sum();
  } else if (op == "gopd_kl") {
    loss = kernels::gopd_kl(student, inputs.teacher, inputs.reference, lambda, 1.0, impl).sum();
  } else {
    loss = kernels::gopd_kl_topk(student, inputs.top_ids, inputs.top_teacher_lp,
                                 inputs.top_reference_lp, lambda, 1.0, impl)
               .sum();
  }
  loss.backward();
}

struct Measurement {
  double milliseconds = 0;  // median over repeats
  double peak_extra_mb = 0;
};

Measurement measure(const std::string& op, const BenchInputs& inputs, kernels::Impl impl,
                    const KernelBenchOptions& options, core::CpuMemoryTracker& tracker) {
  run_once(op, inputs, impl, options.lambda);  // warm-up (and first-touch of the allocator)
  std::vector<double> times;
  double peak_extra = 0;
  for (int64_t i = 0; i < options.repeats; ++i) {
    tracker.reset_peak();
    const int64_t before = tracker.current_bytes();
    const auto start = std::chrono::steady_clock::now();
    run_once(op, inputs, impl, options.lambda);
    const auto stop = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
    peak_extra = std::max(peak_extra, double(tracker.peak_bytes() - before) / (1024.0 * 1024.0));
  }
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], peak_extra};
}

int64_t physical_memory_bytes() {
  return int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGESIZE));
}

// Inputs plus the reference path's peak of fp32 (rows, vocab) temporaries, as measured by this
// bench (3 for token_logprobs, 5.25 with entropy, 8.5 for gopd_kl, 5 for top-k) plus a margin.
int64_t estimated_bytes(const std::string& op, int64_t rows, int64_t vocab, int64_t element) {
  const double matrix = double(rows) * double(vocab);
  double temporaries = 2.0;  // gopd_logratio_reward: one log-softmax and its upcast
  if (op == "token_logprobs") temporaries = 3.5;
  if (op == "token_logprobs_entropy") temporaries = 6.0;
  if (op == "gopd_kl") temporaries = 9.5;
  if (op == "gopd_kl_topk") temporaries = 6.0;
  return int64_t(matrix * (double(models_used(op) * element) + temporaries * 4.0));
}

void run_kernel_bench(const KernelBenchOptions& options) {
  core::CpuMemoryTracker tracker;
  const int64_t budget = int64_t(options.memory_fraction * double(physical_memory_bytes()));
  for (const std::string& op : options.ops) {
    for (const int64_t vocab : options.vocabs) {
      for (const std::string& dtype_name : options.dtypes) {
        const torch::ScalarType dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat;
        const int64_t element = dtype == torch::kBFloat16 ? 2 : 4;
        int64_t rows = options.rows;
        while (rows > 1 && estimated_bytes(op, rows, vocab, element) > budget) rows /= 2;
        std::cerr << "bench kernels: " << op << " vocab " << vocab << " " << dtype_name
                  << " rows " << rows << " ..." << std::endl;
        const BenchInputs inputs = make_inputs(op, rows, vocab, dtype, options.top_k);
        const Measurement fused = measure(op, inputs, kernels::Impl::fused, options, tracker);
        const Measurement reference =
            measure(op, inputs, kernels::Impl::reference, options, tracker);
        nlohmann::json common = {{"bench", "kernels"},
                                 {"op", op},
                                 {"dtype", dtype_name},
                                 {"rows", rows},
                                 {"rows_requested", options.rows},
                                 {"vocab", vocab},
                                 {"threads", core::current_threads()},
                                 {"pass", op == "gopd_logratio_reward" ? "forward" : "forward+backward"}};
        if (op == "gopd_kl_topk") common["k"] = options.top_k;
        nlohmann::json time_line = common;
        time_line["metric"] = "time_ms";
        time_line["value"] = fused.milliseconds;
        time_line["baseline"] = reference.milliseconds;
        time_line["ratio"] = reference.milliseconds / fused.milliseconds;
        time_line["target_ratio"] = 2.0;
        time_line["meets_target"] = reference.milliseconds / fused.milliseconds >= 2.0;
        std::cout << time_line.dump() << std::endl;
        nlohmann::json memory_line = common;
        memory_line["metric"] = "peak_extra_mb";
        memory_line["value"] = fused.peak_extra_mb;
        memory_line["baseline"] = reference.peak_extra_mb;
        memory_line["ratio"] = reference.peak_extra_mb / std::max(fused.peak_extra_mb, 1e-9);
        memory_line["target_ratio"] = 4.0;
        memory_line["meets_target"] = reference.peak_extra_mb >= 4.0 * fused.peak_extra_mb;
        std::cout << memory_line.dump() << std::endl;
        if (op != "gopd_logratio_reward") {
          // The same peak without the (rows, vocab) gradient both paths must return: what each
          // path materialises on top of its result.
          const double grad_mb = double(rows) * double(vocab) * double(element) / (1024.0 * 1024.0);
          nlohmann::json beyond_line = common;
          const double fused_beyond = std::max(fused.peak_extra_mb - grad_mb, 0.0);
          const double reference_beyond = std::max(reference.peak_extra_mb - grad_mb, 0.0);
          beyond_line["metric"] = "peak_extra_mb_beyond_gradient";
          beyond_line["value"] = fused_beyond;
          beyond_line["baseline"] = reference_beyond;
          beyond_line["ratio"] = reference_beyond / std::max(fused_beyond, 1e-9);
          std::cout << beyond_line.dump() << std::endl;
        }
      }
    }
  }
}

}  // namespace

Command add_bench_command(CLI::App& parent) {
  CLI::App* bench = parent.add_subcommand("bench", "benchmarks; one JSON object per line on stdout");
  bench->require_subcommand(1);
  CLI::App* kernels_app = bench->add_subcommand(
      "kernels", "fused token-level ops vs their LibTorch reference: time and peak extra memory");
  auto options = std::make_shared<KernelBenchOptions>();
  kernels_app->add_option("--rows", options->rows, "rows (tokens) per op")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  kernels_app->add_option("--vocab", options->vocabs, "vocabulary sizes")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  kernels_app->add_option("--dtype", options->dtypes, "fp32 and/or bf16")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  kernels_app->add_option("--ops", options->ops, "ops to measure")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"token_logprobs", "token_logprobs_entropy", "gopd_kl",
                             "gopd_logratio_reward", "gopd_kl_topk"}));
  kernels_app->add_option("--repeats", options->repeats, "timed repetitions (median reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  kernels_app->add_option("--top-k", options->top_k, "k of gopd_kl_topk")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  const BenchSubcommand train = add_bench_train(bench);
  const BenchSubcommand rollout = add_bench_rollout(bench);
  return Command{bench, [options, train, rollout] {
                   if (train.app->parsed()) {
                     train.run();
                   } else if (rollout.app->parsed()) {
                     rollout.run();
                   } else {
                     run_kernel_bench(*options);
                   }
                 }};
}

}  // namespace gopd::cli
