// `gopd train` end to end on a tiny model: a 2-step SFT run and 2-step G-OPD runs (sampled-token,
// full-vocab, top-k objectives, PPO epochs/mini-batches) change the weights, write every metric
// key per step and a loadable final checkpoint; resuming gives bit-identical weights; records
// are routed to their teacher; padded embeddings are cut to the shared tokenizer; bad jobs
// (missing model, unknown teacher, other tokenizer, bad checkpoint) exit 2 with a message
// naming the problem and leave no run directory.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"

namespace {

namespace fs = std::filesystem;

// One directory per process: ctest runs each case in its own process, possibly in parallel,
// and every process builds its own data and models.
const fs::path kDir = fs::temp_directory_path() / ("gopd_train_cli_" + std::to_string(getpid()));

int run(const std::string& args, std::string* stderr_text = nullptr) { return gopd::test::run_cli(args, kDir, stderr_text); }

using gopd::test::read_jsonl;
using gopd::test::read_file;

class TrainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(gopd::test::fresh_arith_data(kDir, "train.jsonl", "--split train"), 0);
    const std::string d = kDir.string();
    ASSERT_EQ(gopd::test::tokenizer_and_models(kDir, "train.jsonl", {"student", "teacher"}), 0);
    std::ofstream(kDir / "sft.yaml") << "algorithm: sft\n"
                                        "run: {name: sft, output_dir: " << d << "/runs, threads: 1}\n"
                                        "student: {path: " << d << "/student}\n"
                                        "data: {train_file: " << d << "/train.jsonl, eval_file: " << d << "/eval.jsonl}\n"
                                        "rollout: {batch_prompts: 8}\n"
                                        "optim: {lr: 1.0e-2, micro_batch_size: 3}\n"
                                        "train: {max_steps: 2}\n"
                                        "eval: {max_new_tokens: 8}\n";
    std::ofstream(kDir / "gopd.yaml") << "algorithm: gopd\n"
                                         "run: {name: gopd, output_dir: " << d << "/runs, threads: 1}\n"
                                         "student: {path: " << d << "/student}\n"
                                         "teachers: {math: {path: " << d << "/teacher, dtype: float32}}\n"
                                         "reference: {dtype: float32}\n"
                                         "data: {train_file: " << d << "/train.jsonl}\n"
                                         "rollout: {batch_prompts: 4, n: 2, max_new_tokens: 12}\n"
                                         "optim: {lr: 1.0e-2, micro_batch_size: 3}\n"
                                         "train: {max_steps: 2}\n";
  }
  static void TearDownTestSuite() { fs::remove_all(kDir); }
};

TEST_F(TrainCli, SftRunChangesWeightsAndLogsEveryStep) {
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "sft.yaml").string() + "'", &err), 0) << err;
  const fs::path final_model = kDir / "runs/sft/checkpoints/step_2";
  ASSERT_TRUE(fs::exists(final_model / "model.safetensors"));
  ASSERT_TRUE(fs::exists(final_model / "config.json"));
  ASSERT_TRUE(fs::exists(final_model / "tokenizer.model"));
  for (const char* file : {"optimizer.pt", "rng_state.pt", "trainer_state.json"}) {
    EXPECT_TRUE(fs::exists(final_model / file)) << file;
  }
  const nlohmann::json state = nlohmann::json::parse(read_file(final_model / "trainer_state.json"));
  EXPECT_EQ(state["step"], 2);
  EXPECT_EQ(state["cursor"], 16);  // two batches of 8 prompts
  EXPECT_NE(read_file(final_model / "model.safetensors"), read_file(kDir / "student/model.safetensors"));
  const auto lines = read_jsonl(kDir / "runs/sft/metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);  // two steps and the final eval
  for (int step = 0; step < 2; ++step) {
    for (const char* key : {"loss/sft", "sft/token_accuracy", "optim/lr", "optim/grad_norm", "perf/step_s"}) {
      ASSERT_TRUE(lines[size_t(step)].contains(key)) << key << " in " << lines[size_t(step)].dump();
    }
    EXPECT_GT(lines[size_t(step)]["loss/sft"].get<double>(), 0.0);
  }
  EXPECT_TRUE(lines[2].contains("eval/accuracy"));
}

TEST_F(TrainCli, GopdObjectivesRunAndLogTheirMetrics) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"sampled_token", {"loss/policy", "gopd/advantage_mean", "gopd/advantage_std", "gopd/reverse_kl_estimate",
                         "actor/importance_weight_mean", "actor/importance_weight_max"}},
      {"full_vocab", {"loss/gopd_kl"}},
      {"top_k", {"loss/gopd_kl"}}};
  for (const auto& [objective, keys] : cases) {
    std::string err;
    ASSERT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set gopd.objective=" + objective +
                      " --set run.name=gopd-" + objective,
                  &err),
              0)
        << err;
    const fs::path run_dir = kDir / ("runs/gopd-" + objective);
    EXPECT_NE(read_file(run_dir / "checkpoints/step_2/model.safetensors"),
              read_file(kDir / "student/model.safetensors"))
        << objective;
    const auto lines = read_jsonl(run_dir / "metrics.jsonl");
    ASSERT_EQ(lines.size(), 2u) << objective;
    std::vector<std::string> common = {"reward/accuracy", "rollout/response_length_mean", "rollout/entropy",
                                       "optim/lr", "optim/grad_norm", "perf/rollout_s", "perf/scoring_s",
                                       "perf/update_s", "perf/step_s", "perf/peak_rss_mb",
                                       "perf/update_tokens_per_s"};
    common.insert(common.end(), keys.begin(), keys.end());
    for (const auto& line : lines) {
      for (const std::string& key : common) {
        ASSERT_TRUE(line.contains(key)) << objective << ": " << key << " in " << line.dump();
        EXPECT_TRUE(std::isfinite(line[key].get<double>())) << objective << ": " << key;
      }
    }
    if (objective == "sampled_token") {
      // The sampler's and the trainer's log-probs agree: importance weights ≈ 1.
      EXPECT_NEAR(lines[0]["actor/importance_weight_mean"].get<double>(), 1.0, 1e-3);
    }
  }
}

TEST_F(TrainCli, BadJobsExitTwoWithAClearMessage) {
  std::string err;
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad1 --set teachers.math.path=" +
                    (kDir / "missing").string(),
                &err),
            2);
  EXPECT_NE(err.find("missing"), std::string::npos) << err;
  // A multi-teacher job whose records name no configured teacher.
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad2 --set teachers.code.path=" +
                    (kDir / "teacher").string(),
                &err),
            2);
  EXPECT_NE(err.find("train.jsonl:1: teacher '' is not one of the configured teachers (code, math)"),
            std::string::npos)
      << err;
  // GRPO with code rewards on arith records: no tests to run.
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad3 --set algorithm=grpo "
                "--set reward.type=code",
                &err),
            2);
  EXPECT_NE(err.find("train.jsonl:1: reward.type code needs a \"tests\" field"), std::string::npos) << err;
  // A device this machine does not have (no GPU here; no machine has 65), one that is not a
  // device name, a teacher's, bf16 autocast over bf16 weights.
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad4 --set run.device=cuda:64", &err), 2);
  EXPECT_NE(err.find("run.device: cuda:64, but"), std::string::npos) << err;
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad5 --set run.device=gpu", &err), 2);
  EXPECT_NE(err.find("run.device"), std::string::npos) << err;
  EXPECT_NE(err.find("expected auto, cpu, cuda or cuda:N"), std::string::npos) << err;
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad6 --set teachers.math.device=cuda:64",
                &err),
            2);
  EXPECT_NE(err.find("teachers.math.device: cuda:64, but"), std::string::npos) << err;
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() +
                    "' --set run.name=bad7 --set train.precision=bf16 --set student.dtype=bfloat16",
                &err),
            2);
  EXPECT_NE(err.find("train.precision: bf16 keeps fp32 master weights"), std::string::npos) << err;
  for (const char* name : {"bad1", "bad2", "bad3", "bad4", "bad5", "bad6", "bad7"}) {
    EXPECT_FALSE(fs::exists(kDir / "runs" / name)) << name << ": a failed job left its run directory";
  }
}

// The losses and statistics of a metrics line (everything but wall-clock timings).
nlohmann::json without_timings(nlohmann::json line) {
  for (auto it = line.begin(); it != line.end();) {
    it = it.key().rfind("perf/", 0) == 0 ? line.erase(it) : std::next(it);
  }
  return line;
}

TEST_F(TrainCli, ResumeIsBitIdenticalToAStraightRun) {
  const std::string config = "train '" + (kDir / "gopd.yaml").string() + "' --set train.max_steps=6 ";
  std::string err;
  // Straight: 6 steps, checkpoints at 3 and 6.
  ASSERT_EQ(run(config + "--set run.name=straight --set train.save_every=3", &err), 0) << err;
  const fs::path straight = kDir / "runs/straight";
  ASSERT_TRUE(fs::exists(straight / "checkpoints/step_3/trainer_state.json"));
  const std::string weights = read_file(straight / "checkpoints/step_6/model.safetensors");
  ASSERT_FALSE(weights.empty());
  const auto straight_lines = read_jsonl(straight / "metrics.jsonl");

  // 3 steps, then --resume auto with 6.
  ASSERT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set train.max_steps=3 --set run.name=resumed", &err), 0)
      << err;
  ASSERT_EQ(run(config + "--set run.name=resumed --resume auto", &err), 0) << err;
  EXPECT_NE(err.find("resumed from"), std::string::npos) << err;
  EXPECT_TRUE(read_file(kDir / "runs/resumed/checkpoints/step_6/model.safetensors") == weights);
  // (optimizer.pt is not compared byte for byte: LibTorch's archive orders its entries by
  // address. Wrong moments would show in the weights.)
  const auto resumed_lines = read_jsonl(kDir / "runs/resumed/metrics.jsonl");
  ASSERT_EQ(resumed_lines.size(), straight_lines.size());
  for (size_t i = 0; i < straight_lines.size(); ++i) {
    EXPECT_EQ(without_timings(resumed_lines[i]), without_timings(straight_lines[i])) << "line " << i;
  }

  // A run killed while writing its step-6 checkpoint: the partial one is ignored, the run
  // continues from step 3 and redoes steps 4-6 (their old metrics lines are dropped).
  const fs::path killed = kDir / "runs/killed";
  fs::copy(straight, killed, fs::copy_options::recursive);
  fs::rename(killed / "checkpoints/step_6", killed / "checkpoints/.partial-step_6");
  fs::remove(killed / "checkpoints/.partial-step_6/trainer_state.json");
  ASSERT_EQ(run(config + "--set run.name=killed --resume auto", &err), 0) << err;
  EXPECT_NE(err.find("step_3 (step 3"), std::string::npos) << err;
  EXPECT_TRUE(read_file(killed / "checkpoints/step_6/model.safetensors") == weights);
  EXPECT_FALSE(fs::exists(killed / "checkpoints/.partial-step_6"));
  EXPECT_EQ(read_jsonl(killed / "metrics.jsonl").size(), straight_lines.size());

  // keep_last: only the newest checkpoints stay.
  ASSERT_EQ(run(config + "--set run.name=keep --set train.save_every=2 --set train.keep_last=2", &err), 0) << err;
  EXPECT_FALSE(fs::exists(kDir / "runs/keep/checkpoints/step_2"));
  EXPECT_TRUE(fs::exists(kDir / "runs/keep/checkpoints/step_4"));
  EXPECT_TRUE(fs::exists(kDir / "runs/keep/checkpoints/step_6"));

  // Nothing to continue: a finished run, a directory that is not a checkpoint.
  EXPECT_EQ(run(config + "--set run.name=straight --resume auto", &err), 2);
  EXPECT_NE(err.find("raise train.max_steps"), std::string::npos) << err;
  EXPECT_EQ(run(config + "--set run.name=bad-resume --resume '" + (kDir / "student").string() + "'", &err), 2);
  EXPECT_NE(err.find("not a gopd training checkpoint"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(kDir / "runs/bad-resume"));
}

// Gradient accumulation: micro-batches of 3 rows (8 rows: 3 + 3 + 2, ragged) give the update of
// one micro-batch of all 8, for every loss aggregation — the same loss, and the same weights
// after the step (read through their log-probs on the training data, fp32).
TEST_F(TrainCli, MicroBatchedUpdateEqualsOneBigBatchForEveryAggregation) {
  std::ofstream(kDir / "texts.jsonl") << "{\"text\": \"Begin with 3. Add 4. What is the result?\"}\n"
                                         "{\"text\": \"12 + 7 = 19. 19 * 3 = 57. The answer is 57.\"}\n";
  for (const std::string agg : {"token_mean", "seq_mean_token_mean", "seq_mean_token_sum"}) {
    std::vector<std::vector<double>> logprobs;
    std::vector<double> losses;
    std::vector<double> grad_norms;
    // One micro-batch of all 8 rows; 3 rows; a budget of 100 padded tokens (1 row here).
    for (const std::string micro : {"micro_batch_size=8", "micro_batch_size=3", "micro_batch_tokens=100"}) {
      const std::string name = "accumulate-" + agg + "-" + std::to_string(losses.size());
      std::string err;
      ASSERT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set train.max_steps=1 --set run.name=" + name +
                        " --set train.loss_agg=" + agg + " --set optim." + micro,
                    &err),
                0)
          << err;
      const auto lines = read_jsonl(kDir / "runs" / name / "metrics.jsonl");
      ASSERT_EQ(lines.size(), 1u);
      const int64_t rows = lines[0]["perf/micro_batch_rows"].get<int64_t>();
      if (micro == "micro_batch_size=8") {
        EXPECT_EQ(rows, 8) << lines[0].dump();
      }
      if (micro == "micro_batch_tokens=100") {
        EXPECT_LT(rows, 3) << lines[0].dump();  // the padded width is ~50 tokens
      }
      losses.push_back(lines[0]["loss/policy"].get<double>());
      grad_norms.push_back(lines[0]["optim/grad_norm"].get<double>());
      const fs::path out = kDir / (name + "-logprobs.jsonl");
      ASSERT_EQ(run("logprobs --model '" + (kDir / "runs" / name / "checkpoints/step_1").string() + "' --input '" +
                        (kDir / "texts.jsonl").string() + "' --output '" + out.string() + "'",
                    &err),
                0)
          << err;
      std::vector<double> values;
      for (const auto& line : read_jsonl(out)) {
        for (const auto& value : line["logprobs"]) {
          if (!value.is_null()) values.push_back(value.get<double>());
        }
      }
      logprobs.push_back(values);
    }
    EXPECT_GT(grad_norms[0], 0.0) << agg;
    ASSERT_FALSE(logprobs[0].empty());
    for (size_t k = 1; k < losses.size(); ++k) {
      EXPECT_NEAR(losses[0], losses[k], 1e-5 * std::max(1.0, std::abs(losses[0]))) << agg << " " << k;
      EXPECT_NEAR(grad_norms[0], grad_norms[k], 1e-5 * grad_norms[0]) << agg << " " << k;
      ASSERT_EQ(logprobs[0].size(), logprobs[k].size());
      double largest = 0;
      for (size_t i = 0; i < logprobs[0].size(); ++i) {
        largest = std::max(largest, std::abs(logprobs[0][i] - logprobs[k][i]));
      }
      EXPECT_LT(largest, 1e-4) << agg << " " << k;
    }
  }
}

// The memory knobs change how a step is computed, not what it computes: recomputing the
// student's layers in backward (train.activation_checkpointing) and taking every logit from the
// hidden states 7 rows at a time (train.lm_head_chunk_tokens; ragged chunks, teachers and
// student alike) and decoding 3 samples at a time with continuous batching
// (rollout.micro_batch_size) give the step of the plain run, for the sampled-token and
// full-vocabulary objectives.
TEST_F(TrainCli, MemoryKnobsGiveTheSameStep) {
  for (const std::string objective : {"sampled_token", "full_vocab"}) {
    const std::string loss_key = objective == "sampled_token" ? "loss/policy" : "loss/gopd_kl";
    std::vector<nlohmann::json> lines;
    for (const std::string knob : {"train.lm_head_chunk_tokens=0", "train.activation_checkpointing=true",
                                   "train.lm_head_chunk_tokens=7", "rollout.micro_batch_size=3"}) {
      const std::string name = "knobs-" + objective + "-" + std::to_string(lines.size());
      std::string err;
      ASSERT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set train.max_steps=1 --set run.name=" + name +
                        " --set gopd.objective=" + objective + " --set " + knob,
                    &err),
                0)
          << err;
      EXPECT_EQ(err.find("activation checkpointing: each decoder layer") != std::string::npos,
                knob == "train.activation_checkpointing=true")
          << err;
      lines.push_back(read_jsonl(kDir / "runs" / name / "metrics.jsonl").at(0));
    }
    for (size_t k = 1; k < lines.size(); ++k) {
      for (const std::string& key : {loss_key, std::string("optim/grad_norm"), std::string("rollout/entropy")}) {
        ASSERT_TRUE(lines[0].contains(key)) << key << " " << lines[0].dump();
        const double plain = lines[0][key].get<double>();
        EXPECT_NEAR(lines[k][key].get<double>(), plain, 1e-5 * std::max(1.0, std::abs(plain)))
            << objective << " " << k << " " << key;
      }
    }
  }
}

// train.precision: bf16 on the CPU: the whole job under autocast — rollout, the π_old pass (two
// PPO epochs) and the update — with fp32 weights; the sampler and the trainer compute the same
// bf16 log-probs, so the importance weight stays 1 to bf16 rounding.
TEST_F(TrainCli, Bf16AutocastRunsTheJobWithFp32MasterWeights) {
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "gopd.yaml").string() +
                    "' --set run.name=bf16 --set train.max_steps=2 --set train.precision=bf16 --set optim.ppo_epochs=2",
                &err),
            0)
      << err;
  EXPECT_NE(err.find("student on cpu, bf16 autocast (fp32 master weights)"), std::string::npos) << err;
  const auto lines = read_jsonl(kDir / "runs/bf16/metrics.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& line : lines) {
    EXPECT_TRUE(std::isfinite(line["loss/policy"].get<double>())) << line.dump();
    EXPECT_NEAR(line["actor/importance_weight_mean"].get<double>(), 1.0, 2e-2) << line.dump();
    EXPECT_EQ(line["optim/updates"].get<int64_t>(), 2) << line.dump();
  }
  const auto config = nlohmann::json::parse(read_file(kDir / "runs/bf16/checkpoints/step_2/config.json"));
  EXPECT_EQ(config["torch_dtype"], "float32");  // saved as trained (train.save_dtype: auto)
}

// train.save_dtype: bfloat16 saves the model Hugging Face-readable in bf16 and the fp32 weights
// as trained in master/, from which a resumed run continues exactly as the straight run.
TEST_F(TrainCli, SaveDtypeWritesBf16AndResumesFromTheFp32MasterWeights) {
  const std::string config = "train '" + (kDir / "gopd.yaml").string() + "' --set train.save_dtype=bfloat16 ";
  std::string err;
  ASSERT_EQ(run(config + "--set run.name=save-straight --set train.max_steps=2", &err), 0) << err;
  ASSERT_EQ(run(config + "--set run.name=save-resumed --set train.max_steps=1", &err), 0) << err;
  const fs::path step_1 = kDir / "runs/save-resumed/checkpoints/step_1";
  EXPECT_EQ(nlohmann::json::parse(read_file(step_1 / "config.json"))["torch_dtype"], "bfloat16");
  EXPECT_EQ(nlohmann::json::parse(read_file(step_1 / "master/config.json"))["torch_dtype"], "float32");
  // The bf16 file is what loaders read: it holds BF16 tensors and is half the fp32 one's size.
  const auto bf16_size = fs::file_size(step_1 / "model.safetensors");
  const auto fp32_size = fs::file_size(step_1 / "master/model.safetensors");
  EXPECT_LT(bf16_size, fp32_size * 0.6);
  EXPECT_NE(read_file(step_1 / "model.safetensors").substr(0, 400).find("\"BF16\""), std::string::npos);
  ASSERT_EQ(run(config + "--set run.name=save-resumed --set train.max_steps=2 --resume auto", &err), 0) << err;
  const auto straight = read_jsonl(kDir / "runs/save-straight/metrics.jsonl");
  const auto resumed = read_jsonl(kDir / "runs/save-resumed/metrics.jsonl");
  ASSERT_EQ(straight.size(), 2u);
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_EQ(without_timings(resumed[1]), without_timings(straight[1]));
}

// The sampler's log-probs and the trainer's agree at a temperature other than 1 (both divide
// the logits by T before the softmax): the truncated importance weight is 1 over the batch.
TEST_F(TrainCli, ImportanceWeightIsOneAtTemperatureBelowOne) {
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "gopd.yaml").string() +
                    "' --set run.name=temperature --set train.max_steps=1 --set rollout.temperature=0.7",
                &err),
            0)
      << err;
  const auto lines = read_jsonl(kDir / "runs/temperature/metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NEAR(lines[0]["actor/importance_weight_mean"].get<double>(), 1.0, 1e-4) << lines[0].dump();
  EXPECT_NEAR(lines[0]["actor/importance_weight_max"].get<double>(), 1.0, 1e-3) << lines[0].dump();
  EXPECT_GT(lines[0]["gopd/advantage_std"].get<double>(), 0.0) << lines[0].dump();
}

// A batch mixing a λ = 1 teacher (its reference skipped) with a λ = 1.25 teacher whose reward
// and KL are 0 at step 1 (the student itself, against the student's initial weights): the
// reward of the λ = 1 rows is log π_T − log π_old, so the batch's reward mean is minus its
// reverse-KL estimate (mean of log π_old − log π_T) — reading the skipped reference as the
// teacher would give exactly 0.
TEST_F(TrainCli, MixedLambdaBatchReportsTheRewardOfItsLambdaOneRows) {
  gopd::test::write_routed_records(kDir / "train.jsonl", kDir / "mixed.jsonl", {"plain", "itself"});
  const std::string d = kDir.string();
  std::ofstream(kDir / "mixed.yaml") << "algorithm: gopd\n"
                                        "run: {name: mixed, output_dir: " << d << "/runs, threads: 1}\n"
                                        "student: {path: " << d << "/student}\n"
                                        "teachers:\n"
                                        "  plain: {path: " << d << "/teacher, dtype: float32, lambda: 1.0}\n"
                                        "  itself: {path: " << d << "/student, dtype: float32, lambda: 1.25}\n"
                                        "reference: {dtype: float32}\n"
                                        "data: {train_file: " << d << "/mixed.jsonl, shuffle: false}\n"
                                        "rollout: {batch_prompts: 4, n: 2, max_new_tokens: 12}\n"
                                        "optim: {lr: 1.0e-2, micro_batch_size: 3}\n"
                                        "train: {max_steps: 1}\n";
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "mixed.yaml").string() + "'", &err), 0) << err;
  const auto lines = read_jsonl(kDir / "runs/mixed/metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["teacher/plain/responses"], 4) << lines[0].dump();
  EXPECT_NEAR(lines[0]["teacher/itself/reverse_kl_estimate"].get<double>(), 0.0, 1e-5) << lines[0].dump();
  const double kl = lines[0]["gopd/reverse_kl_estimate"].get<double>();
  EXPECT_GT(std::abs(kl), 1e-3) << lines[0].dump();
  EXPECT_NEAR(lines[0]["gopd/reward_mean"].get<double>(), -kl, 1e-5) << lines[0].dump();
}

TEST_F(TrainCli, PpoEpochsAndMiniBatchesMakeSeveralClippedUpdates) {
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "gopd.yaml").string() +
                    "' --set run.name=ppo --set optim.ppo_epochs=2 --set optim.mini_batches=2",
                &err),
            0)
      << err;
  const auto lines = read_jsonl(kDir / "runs/ppo/metrics.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& line : lines) {
    EXPECT_EQ(line["optim/updates"], 4) << line.dump();
    ASSERT_TRUE(line.contains("actor/clip_fraction")) << line.dump();
    ASSERT_TRUE(line.contains("actor/ratio_mean")) << line.dump();
  }
  // The first pass of each batch starts at π_old: the ratio is 1 there, then moves (lr 1e-2).
  EXPECT_GT(lines[0]["actor/clip_fraction"].get<double>() + std::abs(lines[0]["actor/ratio_mean"].get<double>() - 1.0), 0.0);
}

TEST_F(TrainCli, RecordsAreScoredByTheirOwnTeacher) {
  // Records alternate between a "self" teacher (the student's own initial weights: KL 0 at the
  // first step) and "other" (a different random model), with different λ.
  gopd::test::write_routed_records(kDir / "train.jsonl", kDir / "routed.jsonl", {"self", "other"});
  const std::string d = kDir.string();
  std::ofstream(kDir / "routed.yaml") << "algorithm: gopd\n"
                                         "run: {name: routed, output_dir: " << d << "/runs, threads: 1}\n"
                                         "student: {path: " << d << "/student}\n"
                                         "teachers:\n"
                                         "  self: {path: " << d << "/student, dtype: float32, lambda: 1.0}\n"
                                         "  other: {path: " << d << "/teacher, dtype: float32}\n"
                                         "reference: {dtype: float32}\n"
                                         "data: {train_file: " << d << "/routed.jsonl, shuffle: false}\n"
                                         "rollout: {batch_prompts: 4, n: 2, max_new_tokens: 12}\n"
                                         "optim: {lr: 1.0e-2, micro_batch_size: 3}\n"
                                         "train: {max_steps: 1}\n";
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "routed.yaml").string() + "'", &err), 0) << err;
  EXPECT_NE(err.find("teacher 'self'"), std::string::npos) << err;
  const auto lines = read_jsonl(kDir / "runs/routed/metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  const auto& line = lines[0];
  ASSERT_TRUE(line.contains("teacher/other/responses")) << line.dump();
  EXPECT_EQ(line["teacher/self/responses"], 4) << line.dump();
  EXPECT_EQ(line["teacher/other/responses"], 4) << line.dump();
  EXPECT_NEAR(line["teacher/self/reverse_kl_estimate"].get<double>(), 0.0, 1e-5) << line.dump();
  EXPECT_GT(line["teacher/other/reverse_kl_estimate"].get<double>(), 1e-3) << line.dump();  // random models: near-uniform, but clearly apart
}

TEST_F(TrainCli, PaddedEmbeddingsAreCutToTheSharedTokenizer) {
  const std::string d = kDir.string();
  ASSERT_EQ(run(gopd::test::tiny_model_args(d + "/tok", d + "/padded_teacher", 3) + " --vocab-size 448"), 0);
  std::string err;
  ASSERT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=padded --set train.max_steps=1" +
                    " --set teachers.math.path=" + d + "/padded_teacher",
                &err),
            0)
      << err;
  EXPECT_NE(err.find("logits are cut to the tokenizer's 400 tokens"), std::string::npos) << err;
  const auto lines = read_jsonl(kDir / "runs/padded/metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(std::isfinite(lines[0]["loss/policy"].get<double>())) << lines[0].dump();
}

TEST_F(TrainCli, TeachersWithAnotherTokenizerAreRejected) {
  const std::string d = kDir.string();
  ASSERT_EQ(run("data --task code --n 64 --difficulty 1 --out '" + d + "/code.jsonl'"), 0);
  // The same size trained on other text: real token differences.
  ASSERT_EQ(run("tokenizer train --input '" + d + "/code.jsonl' --vocab-size 400 --chat-format chatml --out '" + d + "/tok_code'"), 0);
  // Another size.
  ASSERT_EQ(run("tokenizer train --input '" + d + "/train.jsonl' --vocab-size 350 --chat-format chatml --out '" + d + "/tok_small'"), 0);
  for (const std::string& tokenizer : {std::string("tok_code"), std::string("tok_small")}) {
    ASSERT_EQ(run(gopd::test::tiny_model_args(d + "/" + tokenizer, d + "/teacher_" + tokenizer, 0)), 0);
  }
  std::string err;
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad-vocab1 --set teachers.math.path=" +
                    d + "/teacher_tok_code",
                &err),
            2);
  EXPECT_NE(err.find("but the student's is"), std::string::npos) << err;
  EXPECT_NE(err.find("the tokenizers differ"), std::string::npos) << err;
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad-vocab2 --set teachers.math.path=" +
                    d + "/teacher_tok_small",
                &err),
            2);
  EXPECT_NE(err.find("tokenizer has 350 tokens but the student's"), std::string::npos) << err;
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad-vocab3 --set student.path=" + d + "/nowhere",
                &err),
            2);
  EXPECT_NE(err.find("nowhere"), std::string::npos) << err;
  for (const char* name : {"bad-vocab1", "bad-vocab2", "bad-vocab3"}) {
    EXPECT_FALSE(fs::exists(kDir / "runs" / name)) << name;
  }
}

}  // namespace
