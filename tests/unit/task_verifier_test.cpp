// Tests for the synthetic-task checkers: "arith" accepts the gold integer in tolerated
// spellings only, and unknown task names fail with exit code 2 and a message naming them.
#include "gopd/reward/task_verifier.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gopd/core/error.h"

namespace gopd::reward {
namespace {

struct ArithCase {
  const char* response;
  const char* gold;
  bool expected;
};

TEST(TaskVerifierTest, ArithTable) {
  const std::vector<ArithCase> cases = {
      {"3 + 4 = 7, 7 * 2 = 14. The answer is 14.", "14", true},
      {"\\boxed{14}", "14", true},
      {"#### 14", "14", true},
      {"The answer is +14", "14", true},
      {"The answer is  14  ", "14", true},
      {"#### 1,234", "1234", true},
      {"\\boxed{1{,}234}", "1234", true},
      {"\\boxed{-5}", "-5", true},
      {"\\boxed{\xE2\x88\x92"
       "5}",
       "-5", true},
      {"\\boxed{0}", "-0", true},
      {"\\boxed{52.0}", "52", false},  // exactness is the point of the task
      {"\\boxed{52 apples}", "52", false},
      {"\\boxed{$52$}", "52", false},
      {"\\boxed{5}", "-5", false},
      {"\\boxed{12,34}", "1234", false},
      {"\\boxed{140}", "14", false},
      {"\\boxed{}", "14", false},
      {"14", "14", false},  // no final-answer marker
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const ArithCase& c = cases[i];
    SCOPED_TRACE("case " + std::to_string(i) + ": response \"" + c.response + "\" gold \"" +
                 c.gold + "\"");
    EXPECT_EQ(verify_task("arith", c.response, c.gold).reward, c.expected ? 1.0 : 0.0);
  }
}

TEST(TaskVerifierTest, ArithDetail) {
  EXPECT_EQ(verify_task("arith", "The answer is 1,234.", "1234").detail, "1,234");
  EXPECT_EQ(verify_task("arith", "no idea", "1234").detail, "no answer found");
}

// Runs `call`, which must throw gopd::core::Error with exit code 2; returns its message.
template <typename Call>
std::string bad_input_message(Call call) {
  try {
    call();
  } catch (const core::Error& error) {
    EXPECT_EQ(error.exit_code(), 2);
    EXPECT_EQ(error.code(), core::ExitCode::kBadInput);
    return error.what();
  }
  ADD_FAILURE() << "expected gopd::core::Error";
  return "";
}

TEST(TaskVerifierTest, UnknownTaskIsBadInput) {
  EXPECT_EQ(bad_input_message([] { verify_task("sudoku", "\\boxed{1}", "1"); }),
            "unknown task \"sudoku\" (known: arith)");
  EXPECT_THROW(verify_task("Arith", "\\boxed{1}", "1"), core::Error);
}

TEST(TaskVerifierTest, CodeTaskPointsToTheCodeVerifier) {
  std::string message = bad_input_message([] { verify_task("code", "print(1)", "1"); });
  EXPECT_EQ(message.rfind("unknown task \"code\" (known: arith)", 0), 0u);
  EXPECT_NE(message.find("code verifier"), std::string::npos);
}

TEST(TaskVerifierTest, NonIntegerGoldIsBadInput) {
  std::string message = bad_input_message([] { verify_task("arith", "\\boxed{1}", "1.5"); });
  EXPECT_NE(message.find("gold answer \"1.5\" is not an integer"), std::string::npos);
  EXPECT_THROW(verify_task("arith", "\\boxed{1}", ""), core::Error);
}

}  // namespace
}  // namespace gopd::reward
