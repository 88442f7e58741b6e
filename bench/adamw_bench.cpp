// AdamW's step with the correctly rounded square root (kernels/adamw.h, what training runs)
// against the same step with ATen's sqrt (torch::optim::AdamW's arithmetic, MKL's vector math
// on the CPU), on the parameters of a small model (a 1024×1024 and a 4096×1024 matrix, a
// 1024-vector and an odd 1001×77), fp32 on the CPU, the threads LibTorch has. Prints one JSON
// line: the best step time of each over the repetitions, and how many elements of the updated
// weights differ between the two (the last bits of the root; none on a processor whose MKL
// root is correctly rounded).
//
//   adamw_bench [--repetitions N]   (default 20)
#include <torch/torch.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gopd/kernels/adamw.h"

namespace {

std::vector<torch::Tensor> parameters() {
  torch::manual_seed(1);
  std::vector<torch::Tensor> out;
  for (const auto& shape :
       std::vector<std::vector<int64_t>>{{1024, 1024}, {4096, 1024}, {1024}, {1001, 77}}) {
    out.push_back(torch::randn(shape).requires_grad_());
    out.back().mutable_grad() = torch::randn(shape);
  }
  return out;
}

// Best step time in ms over `repetitions` steps, the first (state allocation) untimed.
double best_ms(std::vector<torch::Tensor>& params, bool reference_sqrt, int repetitions) {
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
  gopd::kernels::adamw_step(optimizer, reference_sqrt);
  double best = 1e300;
  for (int r = 0; r < repetitions; ++r) {
    const auto start = std::chrono::steady_clock::now();
    gopd::kernels::adamw_step(optimizer, reference_sqrt);
    best = std::min(
        best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int repetitions = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repetitions") == 0 && i + 1 < argc) {
      repetitions = std::max(1, std::stoi(argv[++i]));
    } else {
      std::cerr << "usage: adamw_bench [--repetitions N]\n";
      return 2;
    }
  }
  std::vector<torch::Tensor> ours = parameters();
  std::vector<torch::Tensor> theirs = parameters();
  const double measured = best_ms(ours, false, repetitions);
  const double baseline = best_ms(theirs, true, repetitions);
  int64_t elements = 0;
  int64_t differing = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    elements += ours[i].numel();
    differing += ours[i].ne(theirs[i]).sum().item<int64_t>();
  }
  nlohmann::json line = {{"bench", "adamw_step"},
                         {"metric", "ms"},
                         {"value", measured},
                         {"baseline", baseline},
                         {"ratio", baseline / measured},
                         {"parameters", elements},
                         {"threads", torch::get_num_threads()},
                         {"repetitions", repetitions},
                         {"weights_differing_from_baseline", differing}};
  std::cout << line.dump() << std::endl;
  return 0;
}
