// `gopd train` with algorithm grpo and lens on tiny random models: GRPO logs its group metrics
// with a KL penalty and several clipped updates; LENS purifies low-success prompts (tokens of
// the user's text only, ⌈γ·|x|⌉ of them, written to lens_dump.jsonl) when its reference
// differs from the policy, and purifies nothing at step 1 when π_ref is the initial policy;
// GRPO on the code task runs every response in the sandbox from the training loop; a record
// the reward cannot check stops the job with exit 2 before anything is written.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <csignal>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"

namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::temp_directory_path() / ("gopd_rlvr_cli_" + std::to_string(getpid()));

int run(const std::string& args, std::string* stderr_text = nullptr) {
  return gopd::test::run_cli(args, kDir, stderr_text);
}

using gopd::test::read_jsonl;

class RlvrCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(gopd::test::fresh_arith_data(kDir, "noisy.jsonl", "--noise 0.2"), 0);
    const std::string d = kDir.string();
    ASSERT_EQ(run("data --task code --n 8 --difficulty 1 --out '" + d + "/code.jsonl'"), 0);
    std::ofstream(kDir / "text.jsonl") << std::ifstream(kDir / "noisy.jsonl").rdbuf() << std::ifstream(kDir / "code.jsonl").rdbuf();
    ASSERT_EQ(gopd::test::tokenizer_and_models(kDir, "text.jsonl", {"student", "other"}), 0);
    std::ofstream(kDir / "grpo.yaml") << "algorithm: grpo\n"
                                         "run: {name: grpo, output_dir: " << d << "/runs, threads: 1}\n"
                                         "student: {path: " << d << "/student}\n"
                                         "data: {train_file: " << d << "/noisy.jsonl, eval_file: " << d << "/eval.jsonl}\n"
                                         "rollout: {batch_prompts: 3, n: 4, max_new_tokens: 10}\n"
                                         "reward: {type: task, format_weight: 0.1}\n"
                                         "optim: {lr: 1.0e-2, micro_batch_size: 5}\n"
                                         "train: {max_steps: 2}\n"
                                         "eval: {max_new_tokens: 8}\n";
  }
  static void TearDownTestSuite() { fs::remove_all(kDir); }
};

void expect_finite_keys(const nlohmann::json& line, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    ASSERT_TRUE(line.contains(key)) << key << " in " << line.dump();
    EXPECT_TRUE(std::isfinite(line[key].get<double>())) << key;
  }
}

TEST_F(RlvrCli, GrpoLogsGroupMetricsWithKlAndClippedUpdates) {
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "grpo.yaml").string() +
                    "' --set grpo.kl_beta=0.05 --set optim.ppo_epochs=2 --set grpo.clip_high=0.28",
                &err),
            0)
      << err;
  const auto lines = read_jsonl(kDir / "runs/grpo/metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);  // two steps and the final eval
  for (int step = 0; step < 2; ++step) {
    const nlohmann::json& line = lines[size_t(step)];
    expect_finite_keys(line, {"reward/mean", "reward/accuracy", "reward/format_mean",
                              "grpo/zero_reward_prompt_fraction", "grpo/all_correct_prompt_fraction",
                              "loss/policy", "loss/kl_penalty", "actor/kl", "actor/clip_fraction",
                              "actor/ratio_mean", "rollout/entropy", "rollout/response_length_mean",
                              "perf/rollout_s", "perf/scoring_s", "perf/reward_wait_s", "perf/update_s"});
    EXPECT_EQ(line["optim/updates"], 2);
    EXPECT_GE(line["reward/mean"].get<double>(), 0.0);
    EXPECT_FALSE(line.contains("lens/purified_fraction"));
  }
  // π_θ = π_ref at the first update: k3 = 0 there; the second update has moved the policy.
  EXPECT_NEAR(lines[0]["actor/kl"].get<double>(), 0.0, 0.05);
  // The sampler and the trainer agree on one machine: the truncated importance weights over the
  // batch are 1 up to float noise.
  for (int step = 0; step < 2; ++step) {
    EXPECT_NEAR(lines[size_t(step)]["actor/importance_weight_mean"].get<double>(), 1.0, 1e-4);
    EXPECT_NEAR(lines[size_t(step)]["actor/importance_weight_max"].get<double>(), 1.0, 1e-3);
  }
  EXPECT_TRUE(lines[2].contains("eval/accuracy"));
  EXPECT_TRUE(fs::exists(kDir / "runs/grpo/checkpoints/step_2/model.safetensors"));
}

TEST_F(RlvrCli, LensPurifiesOnlyTheUsersTextWhenTheReferenceDiffers) {
  std::string err;
  // π_ref = another model: the interference scores are non-zero from step 1. The random
  // student fails everything, so every prompt is low-success.
  ASSERT_EQ(run("train '" + (kDir / "grpo.yaml").string() + "' --set algorithm=lens --set run.name=lens " +
                    "--set lens.score=reference --set reference.path=" + (kDir / "other").string() +
                    " --set lens.gamma=0.1 --set lens.dump_every=1",
                &err),
            0)
      << err;
  const auto lines = read_jsonl(kDir / "runs/lens/metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  for (int step = 0; step < 2; ++step) {
    const nlohmann::json& line = lines[size_t(step)];
    expect_finite_keys(line, {"lens/low_success_fraction", "lens/purified_fraction", "lens/tokens_removed",
                              "lens/success_before", "lens/success_after", "lens/helped_fraction",
                              "lens/transferred", "lens/zero_reward_prompt_fraction", "perf/lens_s"});
    if (line["grpo/zero_reward_prompt_fraction"].get<double>() == 1.0) {
      EXPECT_EQ(line["lens/low_success_fraction"].get<double>(), 1.0);
    }
    EXPECT_GT(line["lens/purified_fraction"].get<double>(), 0.0) << line.dump();
    EXPECT_GE(line["lens/tokens_removed"].get<double>(), 1.0);
  }
  // The dump: every purified prompt, its removed tokens (from the user's text, never the chat
  // template) and the purified prompt without them.
  const auto dump = read_jsonl(kDir / "runs/lens/lens_dump.jsonl");
  ASSERT_FALSE(dump.empty());
  std::map<std::string, std::string> prompts;  // id → the record's prompt text
  for (const auto& record : read_jsonl(kDir / "noisy.jsonl")) prompts[record["id"]] = record["prompt"];
  for (const auto& entry : dump) {
    ASSERT_TRUE(entry.contains("removed")) << entry.dump();
    ASSERT_FALSE(entry["removed"].empty());
    const std::string& text = prompts.at(entry["id"].get<std::string>());
    const std::string prompt = entry["prompt"];
    EXPECT_NE(prompt.find("<|im_start|>user"), std::string::npos) << prompt;
    for (const auto& token : entry["removed"]) {
      std::string piece = token["text"];
      piece.erase(0, piece.find_first_not_of(' '));
      EXPECT_NE(text.find(piece), std::string::npos) << "removed '" << piece << "' is not in the user's text: " << text;
      EXPECT_GT(token["score"].get<double>(), 0.0);
    }
    const std::string purified = entry["purified_prompt"];
    EXPECT_NE(purified.find("<|im_start|>user"), std::string::npos) << purified;
    EXPECT_NE(purified.find("<|im_start|>assistant"), std::string::npos) << purified;
    EXPECT_LT(purified.size(), prompt.size());
  }
}

// A LENS run killed after its step-2 checkpoint was cut off: resuming from step 1 redoes step 2
// and logs it once — lens_dump.jsonl is trimmed to the checkpoint like metrics.jsonl, and both
// end as the straight run's.
TEST_F(RlvrCli, LensDumpIsTrimmedOnResumeLikeTheMetrics) {
  const std::string config =
      "train '" + (kDir / "grpo.yaml").string() +
      "' --set algorithm=lens --set lens.score=reference --set reference.path=" +
      (kDir / "other").string() + " --set lens.gamma=0.1 --set lens.dump_every=1 " +
      "--set train.save_every=1 ";
  std::string err;
  ASSERT_EQ(run(config + "--set run.name=lens-straight", &err), 0) << err;
  const fs::path straight = kDir / "runs/lens-straight";
  const auto straight_dump = read_jsonl(straight / "lens_dump.jsonl");
  ASSERT_FALSE(straight_dump.empty());
  bool step_two = false;
  for (const auto& entry : straight_dump) step_two = step_two || entry["step"] == 2;
  ASSERT_TRUE(step_two) << "the fixture must dump at step 2 for this test to mean anything";
  const fs::path killed = kDir / "runs/lens-killed";
  fs::copy(straight, killed, fs::copy_options::recursive);
  fs::remove_all(killed / "checkpoints/step_2");
  ASSERT_EQ(run(config + "--set run.name=lens-killed --resume auto", &err), 0) << err;
  EXPECT_NE(err.find("(step 1"), std::string::npos) << err;
  EXPECT_EQ(read_jsonl(killed / "lens_dump.jsonl"), straight_dump);
  EXPECT_EQ(read_jsonl(killed / "metrics.jsonl").size(),
            read_jsonl(straight / "metrics.jsonl").size());
}

// Every line of a JSONL log but the last is whole JSON; the last may be cut off only if the
// file does not end with a newline (a write killed midway). Returns the number of whole lines.
size_t expect_whole_lines_but_the_last(const fs::path& path) {
  const std::string text = gopd::test::read_file(path);
  size_t whole = 0;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const bool last = end == std::string::npos;
    if (nlohmann::json::accept(line)) {
      ++whole;
    } else {
      EXPECT_TRUE(last) << path << ": a broken line that is not the last: " << line;
    }
    if (last) break;
    start = end + 1;
  }
  return whole;
}

// kill -9 of a LENS run at random moments (while it rolls out, trains, appends its logs or saves
// a checkpoint), each followed by `--resume auto`: metrics.jsonl and lens_dump.jsonl never hold
// more than a cut-off last line, and the resumed run repairs both, ending with the straight
// run's dump and one metrics line per step.
TEST_F(RlvrCli, LensLogsSurviveKillNineAndResumeRepairsThem) {
  const std::string config =
      "--threads 1 train '" + (kDir / "grpo.yaml").string() +
      "' --set algorithm=lens --set lens.score=reference --set reference.path=" + (kDir / "other").string() +
      " --set lens.gamma=0.1 --set lens.dump_every=1 --set train.save_every=1 --set train.max_steps=40 "
      "--set train.keep_last=2 ";
  std::string err;
  ASSERT_EQ(run(config + "--set run.name=kill9-straight", &err), 0) << err;
  const auto straight_dump = read_jsonl(kDir / "runs/kill9-straight/lens_dump.jsonl");
  ASSERT_GE(straight_dump.size(), 4u) << "the fixture must dump at several steps";
  const fs::path killed = kDir / "runs/kill9";
  std::mt19937 random(20261207);
  std::uniform_int_distribution<int> delay_ms(0, 150);
  int kills = 0;
  for (int attempt = 0; attempt < 6; ++attempt) {
    const pid_t job = gopd::test::start("", config + "--set run.name=kill9 --resume auto", kDir / "kill9.log");
    ASSERT_GT(job, 0) << "fork failed";
    // Wait until the run has logged a few more steps, then a random moment more.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline &&
           expect_whole_lines_but_the_last(killed / "metrics.jsonl") < size_t(5 * attempt + 2)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(random)));
    kill(-job, SIGKILL);
    const int code = gopd::test::wait_for(job, 30);
    ASSERT_NE(code, -2) << "the killed job is still running";
    if (code == -1) ++kills;
    expect_whole_lines_but_the_last(killed / "metrics.jsonl");
    expect_whole_lines_but_the_last(killed / "lens_dump.jsonl");
  }
  EXPECT_EQ(kills, 6) << "every attempt is killed before the run ends";
  ASSERT_EQ(run(config + "--set run.name=kill9 --resume auto", &err), 0) << err;
  EXPECT_EQ(read_jsonl(killed / "lens_dump.jsonl"), straight_dump);
  // One line per step (and the final eval's), as in the straight run, with its numbers.
  const auto lines = read_jsonl(killed / "metrics.jsonl");
  const auto straight_lines = read_jsonl(kDir / "runs/kill9-straight/metrics.jsonl");
  ASSERT_EQ(lines.size(), straight_lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["step"], straight_lines[i]["step"]) << i;
    EXPECT_EQ(lines[i].value("loss/policy", 0.0), straight_lines[i].value("loss/policy", 0.0)) << i;
    EXPECT_EQ(lines[i].value("lens/purified_fraction", 0.0), straight_lines[i].value("lens/purified_fraction", 0.0))
        << i;
  }
}

TEST_F(RlvrCli, LensWithTheInitialPolicyPurifiesNothingBeforeThePolicyMoves) {
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "grpo.yaml").string() +
                    "' --set algorithm=lens --set run.name=lens-init --set train.max_steps=1",
                &err),
            0)
      << err;
  const auto lines = read_jsonl(kDir / "runs/lens-init/metrics.jsonl");
  ASSERT_GE(lines.size(), 1u);
  EXPECT_GT(lines[0]["lens/low_success_fraction"].get<double>(), 0.0);
  EXPECT_EQ(lines[0]["lens/purified_fraction"].get<double>(), 0.0);  // all scores are 0 at step 1
  EXPECT_EQ(lines[0]["lens/transferred"].get<int64_t>(), 0);
}

TEST_F(RlvrCli, GrpoOnCodeRunsResponsesInTheSandbox) {
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "grpo.yaml").string() + "' --set run.name=grpo-code --set reward.type=code " +
                    "--set data.train_file=" + (kDir / "code.jsonl").string() + " --set data.eval_file=" +
                    (kDir / "code.jsonl").string() + " --set reward.code.timeout_s=2 --set reward.code.cpu_seconds=1",
                &err),
            0)
      << err;
  const auto lines = read_jsonl(kDir / "runs/grpo-code/metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  expect_finite_keys(lines[0], {"reward/mean", "reward/accuracy", "perf/reward_wait_s"});
  EXPECT_TRUE(lines[2].contains("eval/accuracy"));
}

TEST_F(RlvrCli, EvalScoresCodeRecordsInTheSandbox) {
  std::string err;
  const fs::path out = kDir / "eval-code";
  ASSERT_EQ(run("eval --model '" + (kDir / "student").string() + "' --data '" + (kDir / "code.jsonl").string() +
                    "' --samples 1 --max-new-tokens 8 --out '" + out.string() + "'",
                &err),
            0)
      << err;
  const auto samples = read_jsonl(out / "samples.jsonl");
  ASSERT_EQ(samples.size(), 8u);
  for (const auto& sample : samples) {
    // The code verifier's detail ("0/5 passed; case 1 failed" and the like), not the math one's.
    EXPECT_NE(sample["detail"].get<std::string>().find("passed"), std::string::npos) << sample.dump();
  }
}

TEST_F(RlvrCli, RecordsTheRewardCannotCheckStopTheJob) {
  std::string err;
  std::ofstream(kDir / "no_answer.jsonl") << "{\"prompt\": \"What is 2 + 3?\", \"answer\": \"5\"}\n"
                                             "{\"prompt\": \"What is 4 + 4?\"}\n";
  EXPECT_EQ(run("train '" + (kDir / "grpo.yaml").string() + "' --set run.name=bad --set reward.type=math " +
                    "--set data.train_file=" + (kDir / "no_answer.jsonl").string(),
                &err),
            2);
  EXPECT_NE(err.find("no_answer.jsonl:2: reward.type math needs an \"answer\""), std::string::npos) << err;
  EXPECT_EQ(run("train '" + (kDir / "grpo.yaml").string() + "' --set run.name=bad --set reward.type=code", &err), 2);
  EXPECT_NE(err.find("noisy.jsonl:1: reward.type code needs a \"tests\" field"), std::string::npos) << err;
  EXPECT_EQ(run("train '" + (kDir / "grpo.yaml").string() + "' --set run.name=bad --set rollout.n=1", &err), 2);
  EXPECT_NE(err.find("rollout.n"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(kDir / "runs/bad"));
}

}  // namespace
