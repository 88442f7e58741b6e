// Rewards of sampled responses for GRPO/LENS: which verifier each record gets (and the clear
// error when a record cannot be verified), the format reward kept apart from correctness, and
// code verified in the sandbox from a background thread, results in job order, hostile programs
// (fork bomb, memory bomb, output flood, sleeping past the timeout) scored 0.
#include <gtest/gtest.h>

#include "gopd/core/error.h"
#include "gopd/reward/code_sandbox.h"
#include "gopd/reward/rollout_rewards.h"

namespace {

using namespace gopd;
using nlohmann::json;

const json kTests = json::parse(R"({"kind": "call", "entry_point": "f",
                                    "cases": [{"args": [2], "expected": 5}, {"args": [0], "expected": 1}]})");

TEST(RolloutRewards, SpecsFollowTheRewardTypeAndRejectUnverifiableRecords) {
  EXPECT_EQ(reward::reward_spec("math", "7", json(), json(), "d.jsonl:1").kind, reward::RewardSpec::Kind::kMath);
  const reward::RewardSpec task = reward::reward_spec("task", "7", "arith", json(), "d.jsonl:2");
  EXPECT_EQ(task.kind, reward::RewardSpec::Kind::kTask);
  EXPECT_EQ(task.task, "arith");
  // A code task under reward.type task goes to the sandbox.
  const reward::RewardSpec code_task = reward::reward_spec("task", "", "code", kTests, "d.jsonl:3");
  EXPECT_EQ(code_task.kind, reward::RewardSpec::Kind::kCode);
  ASSERT_TRUE(code_task.tests);
  EXPECT_EQ(code_task.tests->cases.size(), 2u);
  const auto message = [](const auto& make) {
    try {
      make();
    } catch (const core::Error& error) {
      EXPECT_EQ(static_cast<int>(error.code()), 2);
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([] { reward::reward_spec("code", "7", json(), json(), "d.jsonl:4"); }),
            "d.jsonl:4: reward.type code needs a \"tests\" field");
  EXPECT_EQ(message([] { reward::reward_spec("math", " ", json(), json(), "d.jsonl:5"); }),
            "d.jsonl:5: reward.type math needs an \"answer\"");
  EXPECT_EQ(message([] { reward::reward_spec("task", "7", json(), json(), "d.jsonl:6"); }),
            "d.jsonl:6: reward.type task needs a \"task\" field naming a built-in task");
  EXPECT_NE(message([] { reward::reward_spec("task", "7.5", "arith", json(), "d.jsonl:7"); }).find("d.jsonl:7"),
            std::string::npos);
  EXPECT_NE(message([] { reward::reward_spec("code", "", json(), json::parse(R"({"kind": "call"})"), "d.jsonl:8"); })
                .find("d.jsonl:8: "),
            std::string::npos);
}

TEST(RolloutRewards, FormatRewardIsAddedButIsNotCorrectness) {
  const reward::RewardSpec math = reward::reward_spec("math", "12", json(), json(), "d:1");
  core::RewardConfig config;
  config.format_weight = 0.1;
  const std::vector<reward::RewardJob> jobs = {{&math, "so the answer is \\boxed{12}"},
                                               {&math, "the answer is \\boxed{13}"},
                                               {&math, "twelve"}};
  const std::vector<reward::RewardResult> results = reward::score_async(jobs, config).get();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].correct, 1.0);
  EXPECT_EQ(results[0].format, 1.0);
  EXPECT_DOUBLE_EQ(results[0].reward, 1.1);
  EXPECT_EQ(results[1].correct, 0.0);
  EXPECT_EQ(results[1].format, 1.0);
  EXPECT_DOUBLE_EQ(results[1].reward, 0.1);
  EXPECT_EQ(results[2].format, 0.0);
  EXPECT_EQ(results[2].reward, 0.0);
}

TEST(RolloutRewards, CodeIsVerifiedInTheSandboxInJobOrder) {
  if (!reward::bubblewrap_available()) GTEST_SKIP() << "bubblewrap is not installed";
  const reward::RewardSpec code = reward::reward_spec("code", "", json(), kTests, "d:1");
  const reward::RewardSpec math = reward::reward_spec("math", "3", json(), json(), "d:2");
  core::RewardConfig config;
  config.workers = 2;
  config.code.timeout_s = 2.0;
  config.code.cpu_seconds = 1;
  const std::vector<reward::RewardJob> jobs = {
      {&code, "```python\ndef f(x):\n    return 2 * x + 1\n```"},
      {&math, "\\boxed{3}"},
      {&code, "```python\ndef f(x):\n    while True:\n        pass\n```"},
      {&code, "def f(x):\n    return x"},
      // Hostile programs in the training loop's reward path: each scores 0, the batch finishes.
      {&code, "```python\nimport os\nwhile True:\n    os.fork()\n```"},
      {&code, "```python\nx = bytearray(1 << 34)\ndef f(x):\n    return 2 * x + 1\n```"},
      {&code, "```python\nimport sys\nsys.stdout.write('y' * (100 << 20))\ndef f(x):\n    return 2 * x + 1\n```"},
      {&code, "```python\nimport time\ntime.sleep(30)\ndef f(x):\n    return 2 * x + 1\n```"}};
  const std::vector<reward::RewardResult> results = reward::score_async(jobs, config).get();
  ASSERT_EQ(results.size(), 8u);
  for (size_t i = 4; i < 8; ++i) EXPECT_EQ(results[i].reward, 0.0) << i << ": " << results[i].detail;
  EXPECT_NE(results[7].detail.find("timeout"), std::string::npos) << results[7].detail;
  EXPECT_EQ(results[0].correct, 1.0) << results[0].detail;
  EXPECT_EQ(results[0].format, 1.0);
  EXPECT_EQ(results[1].correct, 1.0);
  EXPECT_EQ(results[2].correct, 0.0);
  EXPECT_NE(results[2].detail.find("timeout"), std::string::npos) << results[2].detail;
  EXPECT_EQ(results[3].correct, 0.0);
  EXPECT_EQ(results[3].format, 0.0);  // no fenced block
}

}  // namespace
