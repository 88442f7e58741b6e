// Fuzz target: the math verifier on fuzzed model responses and gold answers. Model output is
// hostile input: nothing it contains may throw, crash or hang the verifier. Input:
// "<response>\0<gold>". Beyond no exception at all: an answer is equivalent to itself.
#include "fuzz_util.h"
#include "gopd/reward/math_verifier.h"

namespace reward = gopd::reward;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = gopd::fuzz::split_input(data, size, 2);
  const std::string& response = parts[0];
  const std::string& gold = parts[1];
  try {
    (void)reward::verify_math(response, gold);
    const auto answer = reward::extract_final_answer(response);
    if (answer) {
      (void)reward::normalize_answer(*answer);
      (void)reward::answers_equivalent(*answer, gold);
      if (!reward::normalize_answer(*answer).empty() && !reward::answers_equivalent(*answer, *answer)) {
        gopd::fuzz::fail("an answer is not equivalent to itself: " + *answer);
      }
    }
  } catch (const std::exception& error) {
    gopd::fuzz::fail(std::string("the math verifier threw on model output: ") + error.what());
  }
  return 0;
}
