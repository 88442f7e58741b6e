// Multi-process training on CPU (c10d, Gloo): `gopd launch --nproc 2` against one process with
// the same global batch and seeds for sft, gopd (sampled-token with two mini-batches, and
// full-vocab), grpo and lens — per-step metrics and final weights agree within tolerance; a run
// of 2 ranks resumed by 1 (and 1 by 2) continues where it stopped, ZeRO-1 on and off agree;
// two `gopd train` processes started by hand with torchrun's variables give what the launcher
// gives; a rank killed mid-step stops the job within 60 s with a message naming it and leaves
// no process behind; kill -9 of the whole job at 20 random points, each resumed, ends with the
// weights of an uninterrupted run.
//
// Tolerances. The ranks' gradients are summed in another order than one process's micro-batch
// accumulation, and each rank pads its rows to its own widest, so sums differ at float
// rounding (~1e-7 relative). Metrics that are ratios of sums come out within ~1e-5 relative
// (checked: 1e-3 relative + 1e-5). Weights: AdamW divides each element's step by √v, so an
// element whose gradient is at rounding level moves by up to lr per step in either run; the
// largest difference is bounded by 2·lr·steps and in practice ~1e-4 at lr 1e-2 over 3 steps
// (checked: 2e-3).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"

namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::temp_directory_path() / ("gopd_dist_cli_" + std::to_string(getpid()));

int run(const std::string& args, std::string* stderr_text = nullptr) {
  return gopd::test::run_cli(args, kDir, stderr_text);
}

using gopd::test::max_weight_difference;
using gopd::test::read_jsonl;

constexpr double kWeightTolerance = 2e-3;

class DistCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(gopd::test::fresh_arith_data(kDir, "noisy.jsonl", "--noise 0.2"), 0);
    ASSERT_EQ(gopd::test::tokenizer_and_models(kDir, "noisy.jsonl", {"student", "teacher"}), 0);
    const std::string d = kDir.string();
    const std::string common = "run: {output_dir: " + d + "/runs, threads: 1}\n"
                               "student: {path: " + d + "/student}\n"
                               "data: {train_file: " + d + "/noisy.jsonl, eval_file: " + d + "/eval.jsonl}\n"
                               "eval: {max_new_tokens: 6}\n"
                               "train: {max_steps: 3, check_sync_every: 1}\n";
    std::ofstream(kDir / "sft.yaml") << common << "algorithm: sft\n"
                                     << "rollout: {batch_prompts: 8}\n"
                                        "optim: {lr: 1.0e-2, micro_batch_size: 3}\n";
    std::ofstream(kDir / "gopd.yaml") << common << "algorithm: gopd\n"
                                      << "teachers: {math: {path: " << d << "/teacher, dtype: float32}}\n"
                                         "reference: {dtype: float32}\n"
                                         "rollout: {batch_prompts: 4, n: 2, max_new_tokens: 12}\n"
                                         "optim: {lr: 1.0e-2, micro_batch_size: 3}\n";
    std::ofstream(kDir / "grpo.yaml") << common << "algorithm: grpo\n"
                                      << "rollout: {batch_prompts: 4, n: 4, max_new_tokens: 10}\n"
                                         "reward: {type: task, format_weight: 0.1}\n"
                                         "grpo: {kl_beta: 0.05}\n"
                                         "reference: {dtype: float32}\n"
                                         "optim: {lr: 1.0e-2, micro_batch_size: 5}\n";
    // LENS transfers only what a purified prompt's rollouts get right: its student is a briefly
    // fine-tuned copy that answers easy sums in the task's format and is right now and then.
    ASSERT_EQ(run("data --task arith --n 96 --difficulty 1 --noise 0.2 --out '" + d + "/easy.jsonl'"), 0);
    std::ofstream(kDir / "base.yaml") << "algorithm: sft\n"
                                         "run: {name: base, output_dir: " << d << "/runs, threads: 1}\n"
                                         "student: {path: " << d << "/student}\n"
                                         "data: {train_file: " << d << "/easy.jsonl}\n"
                                         "rollout: {batch_prompts: 16}\n"
                                         "optim: {lr: 1.0e-2, micro_batch_size: 16, weight_decay: 0.0}\n"
                                         "train: {max_steps: 60}\n";
    std::string err;
    ASSERT_EQ(run("train '" + (kDir / "base.yaml").string() + "'", &err), 0) << err;
    std::ofstream(kDir / "lens.yaml") << "algorithm: lens\n"
                                         "run: {output_dir: " << d << "/runs, threads: 1}\n"
                                         "student: {path: " << d << "/runs/base/checkpoints/step_60}\n"
                                         "data: {train_file: " << d << "/easy.jsonl}\n"
                                         "train: {max_steps: 3, check_sync_every: 1}\n"
                                         "rollout: {batch_prompts: 4, n: 4, max_new_tokens: 24}\n"
                                         "reward: {type: task}\n"
                                         "lens: {score: reference, gamma: 0.1, tau: 0.5}\n"
                                         "reference: {path: " << d << "/teacher, dtype: float32}\n"
                                         "optim: {lr: 1.0e-3, micro_batch_size: 5, ppo_epochs: 2}\n";
  }
  static void TearDownTestSuite() { fs::remove_all(kDir); }

  static std::string config(const std::string& name) { return "'" + (kDir / (name + ".yaml")).string() + "'"; }
  static fs::path final_model(const std::string& run_name, int step = 3) {
    return kDir / "runs" / run_name / "checkpoints" / ("step_" + std::to_string(step)) / "model.safetensors";
  }
};

bool compared_key(const std::string& key) {
  if (key.rfind("perf/", 0) == 0 || key.rfind("dist/", 0) == 0) return false;
  return true;
}

// Every step's metrics of two runs agree (same keys, values within 1e-3 relative + 1e-5).
void expect_same_metrics(const fs::path& one, const fs::path& two) {
  // The step lines (a run that was resumed past its end also has its old final eval line).
  const auto steps = [](const fs::path& path) {
    std::vector<nlohmann::json> lines;
    for (const nlohmann::json& line : read_jsonl(path))
      if (line.contains("optim/lr")) lines.push_back(line);
    return lines;
  };
  const auto left = steps(one);
  const auto right = steps(two);
  ASSERT_EQ(left.size(), right.size());
  for (size_t i = 0; i < left.size(); ++i) {
    for (const auto& [key, value] : left[i].items()) {
      if (!compared_key(key) || !value.is_number()) continue;
      ASSERT_TRUE(right[i].contains(key)) << key << " at line " << i;
      const double a = value.get<double>();
      const double b = right[i][key].get<double>();
      EXPECT_NEAR(a, b, 1e-5 + 1e-3 * std::fabs(a)) << key << " at line " << i;
    }
  }
}

class DistAlgorithms : public DistCli, public ::testing::WithParamInterface<std::pair<std::string, std::string>> {};

TEST_P(DistAlgorithms, TwoRanksMatchOneRank) {
  const auto& [file, extra] = GetParam();
  const std::string name = file + (extra.empty() ? "" : "-variant");
  std::string err;
  ASSERT_EQ(run("train " + config(file) + " --set run.name=" + name + "-1 " + extra, &err), 0) << err;
  ASSERT_EQ(run("launch --nproc 2 -- train " + config(file) + " --set run.name=" + name + "-2 " + extra, &err), 0)
      << err;
  expect_same_metrics(kDir / "runs" / (name + "-1") / "metrics.jsonl", kDir / "runs" / (name + "-2") / "metrics.jsonl");
  const double difference = max_weight_difference(final_model(name + "-1"), final_model(name + "-2"));
  EXPECT_LE(difference, kWeightTolerance);
  // The weights did move: the comparison is not between two untouched copies.
  const fs::path start = file == "lens" ? kDir / "runs/base/checkpoints/step_60/model.safetensors"
                                        : kDir / "student/model.safetensors";
  EXPECT_GT(max_weight_difference(final_model(name + "-1"), start), 10 * difference);
  const auto lines = read_jsonl(kDir / "runs" / (name + "-2") / "metrics.jsonl");
  EXPECT_EQ(lines.front()["dist/world_size"], 2);
  if (file == "lens") {
    int64_t transferred = 0;
    for (const auto& line : lines) transferred += line.value("lens/transferred", int64_t(0));
    EXPECT_GT(transferred, 0) << "LENS transferred nothing: the test would not cover transfers";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Algorithms, DistAlgorithms,
    ::testing::Values(std::make_pair(std::string("sft"), std::string()),
                      // 3 prompts × 2 samples in 2 mini-batches over 2 ranks: the first global
                      // mini-batch takes prompt 0 (rank 0) and one row of prompt 1 (rank 1).
                      std::make_pair(std::string("gopd"),
                                     std::string("--set optim.mini_batches=2 --set rollout.batch_prompts=3")),
                      std::make_pair(std::string("gopd"), std::string()),
                      std::make_pair(std::string("grpo"), std::string()),
                      std::make_pair(std::string("lens"), std::string())),
    [](const auto& info) {
      return info.param.first + (info.param.second.empty() ? "" : "_two_mini_batches");
    });

TEST_F(DistCli, FullVocabTwoRanksMatchOneRank) {
  std::string err;
  const std::string set = " --set gopd.objective=full_vocab --set run.name=";
  ASSERT_EQ(run("train " + config("gopd") + set + "fv-1", &err), 0) << err;
  ASSERT_EQ(run("launch --nproc 2 -- train " + config("gopd") + set + "fv-2", &err), 0) << err;
  expect_same_metrics(kDir / "runs/fv-1/metrics.jsonl", kDir / "runs/fv-2/metrics.jsonl");
  EXPECT_LE(max_weight_difference(final_model("fv-1"), final_model("fv-2")), kWeightTolerance);
}

// The all-reduce overlapped with backward (gradient hooks, buckets started as they complete)
// against the reference path (everything after backward): the same sums, so the same bytes —
// with several micro-batches per mini-batch (the hook adds the accumulated gradient), two
// mini-batches and recomputed layers.
TEST_F(DistCli, OverlappedAllReduceGivesTheReferenceBytes) {
  const std::string set = " --set optim.mini_batches=2 --set train.activation_checkpointing=true --set run.name=";
  std::string err;
  ASSERT_EQ(run("launch --nproc 2 -- train " + config("gopd") + set + "overlap", &err), 0) << err;
  ASSERT_EQ(run("launch --nproc 2 -- train " + config("gopd") + set + "no-overlap --set optim.overlap_allreduce=false", &err),
            0)
      << err;
  const std::string overlapped = gopd::test::read_file(final_model("overlap"));
  EXPECT_FALSE(overlapped.empty());
  EXPECT_EQ(overlapped, gopd::test::read_file(final_model("no-overlap")));
  EXPECT_NE(overlapped, gopd::test::read_file(kDir / "student/model.safetensors"));
  // The hooks did start the all-reduce during backward (on rank 0, which always has rows).
  for (const auto& line : read_jsonl(kDir / "runs/overlap/metrics.jsonl")) {
    if (!line.contains("optim/lr")) continue;
    EXPECT_GT(line["perf/allreduce_overlapped_fraction"].get<double>(), 0.0) << line.dump();
  }
  for (const auto& line : read_jsonl(kDir / "runs/no-overlap/metrics.jsonl")) {
    if (line.contains("optim/lr")) {
      EXPECT_EQ(line["perf/allreduce_overlapped_fraction"].get<double>(), 0.0);
    }
  }
}

// 5 records, 4 prompts a step: step 2 holds one prompt, so rank 1 has none and only joins the
// update's collectives (with ppo_epochs 2 and 2 mini-batches, all of them empty for it).
TEST_F(DistCli, ARankWithoutPromptsJoinsTheUpdate) {
  {
    std::ifstream in(kDir / "noisy.jsonl");
    std::ofstream out(kDir / "five.jsonl");
    std::string text;
    for (int i = 0; i < 5 && std::getline(in, text); ++i) out << text << "\n";
  }
  const std::string set = " --set data.train_file=" + (kDir / "five.jsonl").string() +
                          " --set train.max_steps=2 --set optim.ppo_epochs=2 --set optim.mini_batches=2 --set run.name=";
  std::string err;
  ASSERT_EQ(run("train " + config("gopd") + set + "short-1", &err), 0) << err;
  ASSERT_EQ(run("launch --nproc 2 -- train " + config("gopd") + set + "short-2", &err), 0) << err;
  expect_same_metrics(kDir / "runs/short-1/metrics.jsonl", kDir / "runs/short-2/metrics.jsonl");
  EXPECT_LE(max_weight_difference(final_model("short-1", 2), final_model("short-2", 2)), kWeightTolerance);
}

// 2 ranks with ZeRO-1 stop at step 2; 1 rank continues to step 4 (and the other way round);
// both end near a straight one-rank run of 4 steps. ZeRO-1 on and off agree.
TEST_F(DistCli, ResumesAcrossWorldSizesAndZeroShardsTheSameUpdate) {
  std::string err;
  const std::string four = " --set train.max_steps=4 --set train.save_every=1 --set run.name=";
  ASSERT_EQ(run("train " + config("gopd") + four + "straight", &err), 0) << err;

  ASSERT_EQ(run("launch --nproc 2 -- train " + config("gopd") +
                    " --set optim.shard_optimizer=true --set train.max_steps=2 --set run.name=two-then-one",
                &err),
            0)
      << err;
  ASSERT_EQ(run("train " + config("gopd") + four + "two-then-one --resume auto", &err), 0) << err;
  EXPECT_NE(err.find("resumed from"), std::string::npos) << err;
  EXPECT_LE(max_weight_difference(final_model("straight", 4), final_model("two-then-one", 4)), kWeightTolerance);

  ASSERT_EQ(run("train " + config("gopd") + " --set train.max_steps=2 --set run.name=one-then-two", &err), 0) << err;
  ASSERT_EQ(run("launch --nproc 2 -- train " + config("gopd") + four + "one-then-two --resume auto", &err), 0)
      << err;
  EXPECT_NE(err.find("resumed from"), std::string::npos) << err;
  EXPECT_LE(max_weight_difference(final_model("straight", 4), final_model("one-then-two", 4)), kWeightTolerance);
  expect_same_metrics(kDir / "runs/straight/metrics.jsonl", kDir / "runs/one-then-two/metrics.jsonl");

  ASSERT_EQ(run("launch --nproc 2 -- train " + config("gopd") + " --set optim.shard_optimizer=true --set run.name=zero",
                &err),
            0)
      << err;
  ASSERT_EQ(run("launch --nproc 2 -- train " + config("gopd") + " --set run.name=nozero", &err), 0) << err;
  const double difference = max_weight_difference(final_model("zero"), final_model("nozero"));
  EXPECT_LE(difference, 1e-5);  // the same elementwise AdamW; only the clip norm's sum order differs
  const auto zero_lines = read_jsonl(kDir / "runs/zero/metrics.jsonl");
  const auto plain_lines = read_jsonl(kDir / "runs/nozero/metrics.jsonl");
  EXPECT_LT(zero_lines[0]["perf/optimizer_state_mb"].get<double>(),
            0.6 * plain_lines[0]["perf/optimizer_state_mb"].get<double>());
}

// The children of `parent` (from /proc).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string text;
    std::getline(stat, text);
    const size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent && state != 'Z') found.push_back(pid_t(std::stol(name)));
  }
  return found;
}

using gopd::test::start;
using gopd::test::wait_for;

bool alive(pid_t pid) { return kill(pid, 0) == 0 && fs::exists("/proc/" + std::to_string(pid)); }

// Waits until metrics.jsonl of `run_name` has `lines` lines (or `seconds` pass).
bool wait_for_lines(const std::string& run_name, size_t lines, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(kDir / "runs" / run_name / "metrics.jsonl");
    size_t count = 0;
    for (std::string text; std::getline(in, text);) ++count;
    if (count >= lines) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST_F(DistCli, HandStartedRanksMatchTheLauncher) {
  std::string err;
  ASSERT_EQ(run("launch --nproc 2 -- train " + config("gopd") + " --set run.name=launched", &err), 0) << err;
  const std::string args = "train " + config("gopd") + " --set run.name=by-hand";
  const pid_t one = start("RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29731", args, kDir / "r1.log");
  const pid_t zero = start("RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29731", args, kDir / "r0.log");
  EXPECT_EQ(wait_for(zero, 120), 0) << gopd::test::read_file(kDir / "r0.log");
  EXPECT_EQ(wait_for(one, 120), 0) << gopd::test::read_file(kDir / "r1.log");
  // The same processes doing the same sums: identical numbers.
  EXPECT_EQ(gopd::test::read_file(final_model("launched")), gopd::test::read_file(final_model("by-hand")));
  const auto launched = read_jsonl(kDir / "runs/launched/metrics.jsonl");
  const auto by_hand = read_jsonl(kDir / "runs/by-hand/metrics.jsonl");
  ASSERT_EQ(launched.size(), by_hand.size());
  for (size_t i = 0; i < launched.size(); ++i)
    for (const auto& [key, value] : launched[i].items())
      if (key.rfind("perf/", 0) != 0) {
        EXPECT_EQ(value, by_hand[i][key]) << key;
      }
}

TEST_F(DistCli, AKilledRankStopsTheJobWithinAMinute) {
  const std::string args = "train " + config("gopd") + " --set train.max_steps=100000 --set train.check_sync_every=0";
  // Under the launcher: the launcher names the rank, stops the other, exits non-zero.
  const pid_t launcher = start("", "launch --nproc 2 -- " + args + " --set run.name=killed-launch", kDir / "launch.log");
  ASSERT_TRUE(wait_for_lines("killed-launch", 3, 120)) << gopd::test::read_file(kDir / "launch.log");
  const std::vector<pid_t> ranks = children_of(launcher);
  ASSERT_EQ(ranks.size(), 2u);
  // The rank processes' RANK: find rank 1 by its environment.
  pid_t rank_one = -1;
  for (const pid_t pid : ranks) {
    std::istringstream environment(gopd::test::read_file("/proc/" + std::to_string(pid) + "/environ"));
    for (std::string variable; std::getline(environment, variable, '\0');)
      if (variable == "RANK=1") rank_one = pid;
  }
  ASSERT_NE(rank_one, -1);
  const auto killed_at = std::chrono::steady_clock::now();
  kill(rank_one, SIGKILL);
  const int code = wait_for(launcher, 60);
  EXPECT_NE(code, 0);
  EXPECT_NE(code, -2) << "the launcher still runs 60 s after a rank died";
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count(), 60.0);
  const std::string log = gopd::test::read_file(kDir / "launch.log");
  EXPECT_NE(log.find("rank 1 was killed"), std::string::npos) << log;
  for (const pid_t pid : ranks) EXPECT_FALSE(alive(pid)) << "rank process " << pid << " was left behind";
  if (code == -2) kill(-launcher, SIGKILL);

  // Started by hand: the surviving rank fails at its next collective, naming itself.
  const std::string environment = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29733 RANK=";
  const pid_t one = start(environment + "1", args + " --set run.name=killed-hand", kDir / "h1.log");
  const pid_t zero = start(environment + "0", args + " --set run.name=killed-hand", kDir / "h0.log");
  ASSERT_TRUE(wait_for_lines("killed-hand", 3, 120)) << gopd::test::read_file(kDir / "h0.log");
  kill(-one, SIGKILL);
  const int zero_code = wait_for(zero, 60);
  EXPECT_NE(zero_code, 0);
  EXPECT_NE(zero_code, -2) << "rank 0 still runs 60 s after rank 1 died";
  const std::string zero_log = gopd::test::read_file(kDir / "h0.log");
  EXPECT_NE(zero_log.find("rank 0 of 2"), std::string::npos) << zero_log;
  if (zero_code == -2) kill(-zero, SIGKILL);
  wait_for(one, 5);
}

// kill -9 of the whole job (launcher and ranks) at 20 random moments of training and saving;
// each time the job is started again with --resume auto; at the end the weights are those of an
// uninterrupted run, byte for byte (same world size, seeds and threads).
TEST_F(DistCli, KillNineAtTwentyRandomPointsResumesToTheSameWeights) {
  const std::string args = "train " + config("gopd") +
                           " --set train.max_steps=120 --set train.save_every=1 --set train.keep_last=2 "
                           "--set rollout.max_new_tokens=24 --set eval.max_new_tokens=2 --set run.name=";
  std::string err;
  ASSERT_EQ(run("launch --nproc 2 -- " + args + "uninterrupted", &err), 0) << err;
  // Odd attempts are killed a random moment after the run has logged two more steps (while it
  // trains or writes its checkpoint), even ones a random moment after the start (while the
  // ranks load, meet or resume).
  std::mt19937 random(20261207);
  std::uniform_int_distribution<int> startup_ms(50, 600);
  std::uniform_int_distribution<int> training_ms(0, 200);
  int kills = 0;
  for (int attempt = 0; attempt < 20; ++attempt) {
    const pid_t job = start("", "launch --nproc 2 -- " + args + "interrupted --resume auto", kDir / "kill9.log");
    if (attempt % 2 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(startup_ms(random)));
    } else {
      ASSERT_TRUE(wait_for_lines("interrupted", size_t(2 * attempt + 2), 60)) << gopd::test::read_file(kDir / "kill9.log");
      std::this_thread::sleep_for(std::chrono::milliseconds(training_ms(random)));
    }
    const std::vector<pid_t> ranks = children_of(job);
    kill(-job, SIGKILL);  // the launcher's process group: the launcher (its ranks die with it)
    for (const pid_t rank : ranks) kill(rank, SIGKILL);
    if (wait_for(job, 30) == -1) ++kills;
  }
  EXPECT_EQ(kills, 20) << "every attempt is killed before the run ends";
  ASSERT_EQ(run("launch --nproc 2 -- " + args + "interrupted --resume auto", &err), 0) << err;
  EXPECT_EQ(gopd::test::read_file(final_model("uninterrupted", 120)), gopd::test::read_file(final_model("interrupted", 120)));
  const auto straight = read_jsonl(kDir / "runs/uninterrupted/metrics.jsonl");
  const auto resumed = read_jsonl(kDir / "runs/interrupted/metrics.jsonl");
  ASSERT_EQ(straight.size(), resumed.size());
  for (size_t i = 0; i < straight.size(); ++i) {
    EXPECT_EQ(straight[i].value("step", -1), resumed[i].value("step", -1)) << i;
    EXPECT_EQ(straight[i].value("loss/policy", 0.0), resumed[i].value("loss/policy", 0.0)) << i;
  }
}

}  // namespace
