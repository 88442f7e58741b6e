// What a verifier says about one response: the reward and a short detail for the output
// file (the extracted answer, or the test outcome for code).
#pragma once

#include <string>

namespace gopd::reward {

struct Verdict {
  double reward = 0.0;  // 1.0 correct, 0.0 wrong (code: fraction of tests passed, later)
  std::string detail;   // extracted answer as written, or "no answer found"
};

}  // namespace gopd::reward
