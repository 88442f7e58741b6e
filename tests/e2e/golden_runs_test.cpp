// Golden runs: a few steps of every algorithm and objective (sft; opd; gopd sampled-token with
// PPO epochs and mini-batches, full-vocab, top-k; two routed teachers with mixed λ; grpo with a
// KL penalty; lens with transfers, crpo and crpo_literal) on tiny models, compared byte for byte
// with what the code wrote when they were recorded: every metrics.jsonl line (wall-clock
// timings and memory excluded), lens_dump.jsonl, and the SHA-256 of the final
// model.safetensors. A change to the trainer that is meant to leave behaviour alone must leave
// these alone; one that changes numbers on purpose records them again and says why:
//
//   GOPD_GOLDEN_RECORD=1 build/gopd_e2e_tests --gtest_filter='GoldenRuns.*'
//
// Reproducible across x86-64 machines, Intel or AMD: every gopd process of this test runs on one
// thread with ATen's kernels pinned to their AVX2 build (ATEN_CPU_CAPABILITY) and MKL to its
// processor-independent code path (MKL_CBWR=COMPATIBLE; MKL ignores MKL_CBWR=AVX2 on an AMD
// processor, and its AVX2 GEMMs on an Intel one round differently from those it picks on an
// AMD one), and AdamW takes the correctly rounded square root (kernels/adamw.h), not MKL's
// vector-math one, whose last bit depends on the processor even in COMPATIBLE mode.
// scripts/golden_cpus.sh checks this: it runs these tests with every gopd process under
// qemu-user emulating an Intel Haswell, an Intel Skylake server and an AMD EPYC
// (GOPD_GOLDEN_CPU=<qemu CPU model>).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"

namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::temp_directory_path() / ("gopd_golden_" + std::to_string(getpid()));
const fs::path kGolden = fs::path(GOPD_SOURCE_DIR) / "tests/golden";

// Each gopd process runs natively, or under qemu-user emulating GOPD_GOLDEN_CPU (a qemu CPU
// model: Haswell-v4, Skylake-Server, EPYC, ...), which shows that another processor gives the
// same bits.
int run(const std::string& args, std::string* stderr_text = nullptr) {
  const char* cpu = std::getenv("GOPD_GOLDEN_CPU");
  const std::string launcher =
      cpu != nullptr && *cpu != '\0' ? "qemu-x86_64 -cpu '" + std::string(cpu) + "'" : "";
  return gopd::test::run_cli(args, kDir, stderr_text, launcher);
}

// SHA-256 of a file, by coreutils' sha256sum ("" if it cannot be read).
using gopd::test::read_file;

std::string sha256_of(const fs::path& path) {
  std::string hex;
  if (FILE* pipe = popen(("sha256sum '" + path.string() + "' 2>/dev/null").c_str(), "r")) {
    char buffer[65] = {};
    if (std::fread(buffer, 1, 64, pipe) == 64) hex.assign(buffer, 64);
    pclose(pipe);
  }
  return hex;
}

// metrics.jsonl without the keys that measure the machine (perf/: timings, speeds, peak RSS).
std::string deterministic_metrics(const fs::path& path) {
  std::string out;
  for (nlohmann::json line : gopd::test::read_jsonl(path)) {
    for (auto it = line.begin(); it != line.end();) {
      it = it.key().rfind("perf/", 0) == 0 ? line.erase(it) : std::next(it);
    }
    out += line.dump() + "\n";
  }
  return out;
}

class GoldenRuns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("ATEN_CPU_CAPABILITY", "avx2", 1);
    setenv("MKL_CBWR", "COMPATIBLE", 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("MKL_NUM_THREADS", "1", 1);
    fs::remove_all(kDir);
    fs::create_directories(kDir);
    const std::string d = kDir.string();
    ASSERT_EQ(
        run("data --task arith --n 96 --difficulty 1 --noise 0.2 --out '" + d + "/train.jsonl'"),
        0);
    ASSERT_EQ(
        run("data --task arith --n 4 --difficulty 1 --split eval --out '" + d + "/eval.jsonl'"), 0);
    ASSERT_EQ(run("tokenizer train --input '" + d +
                  "/train.jsonl' --vocab-size 400 --chat-format chatml --out '" + d + "/tok'"),
              0);
    ASSERT_EQ(run("init-model --arch qwen3 --hidden 48 --layers 2 --heads 4 --kv-heads 2 "
                  "--intermediate 96 "
                  "--tokenizer '" +
                  d + "/tok' --out '" + d + "/init' --seed 1"),
              0);
    ASSERT_EQ(run(gopd::test::tiny_model_args(d + "/tok", d + "/other", 2)), 0);
    // A briefly fine-tuned copy of the student: it answers in the task's format and is right by
    // chance now and then, so GRPO groups have successes and LENS transfers some.
    std::ofstream(kDir / "base.yaml")
        << "algorithm: sft\n"
           "run: {name: base, output_dir: "
        << d
        << "/runs, threads: 1}\n"
           "student: {path: "
        << d
        << "/init}\n"
           "data: {train_file: "
        << d
        << "/train.jsonl}\n"
           "rollout: {batch_prompts: 16}\n"
           "optim: {lr: 1.0e-2, micro_batch_size: 16, weight_decay: 0.0}\n"
           "train: {max_steps: 60}\n";
    std::string err;
    ASSERT_EQ(run("train '" + (kDir / "base.yaml").string() + "'", &err), 0) << err;
    // Records alternating between two teachers, for the routed job.
    gopd::test::write_routed_records(kDir / "train.jsonl", kDir / "routed.jsonl",
                                     {"tuned", "other"});
  }
  static void TearDownTestSuite() { fs::remove_all(kDir); }

  // Runs the job `name` (its run section, then `body` with $D = the fixture directory; the
  // tuned student is $D/runs/base/checkpoints/step_60) and compares it with its golden run.
  static void check(const std::string& name, std::string body) {
    const std::string d = kDir.string();
    for (size_t at = body.find("$D"); at != std::string::npos;
         at = body.find("$D", at + d.size())) {
      body.replace(at, 2, d);
    }
    const fs::path config = kDir / (name + ".yaml");
    std::ofstream(config) << "run: {name: " << name << ", output_dir: " << d
                          << "/runs, threads: 1, seed: 7}\n"
                          << body;
    std::string err;
    ASSERT_EQ(run("train '" + config.string() + "'", &err), 0) << err;
    const fs::path run_dir = kDir / "runs" / name;
    const std::string metrics = deterministic_metrics(run_dir / "metrics.jsonl");
    const std::string dump =
        fs::exists(run_dir / "lens_dump.jsonl") ? read_file(run_dir / "lens_dump.jsonl") : "";
    const std::string weights = sha256_of(run_dir / "checkpoints/step_3/model.safetensors") + "\n";
    ASSERT_FALSE(metrics.empty());
    ASSERT_EQ(weights.size(), 65u) << run_dir << ": no final model.safetensors";
    const fs::path golden = kGolden / name;
    if (std::getenv("GOPD_GOLDEN_RECORD") != nullptr) {
      fs::create_directories(golden);
      std::ofstream(golden / "metrics.jsonl") << metrics;
      std::ofstream(golden / "model.sha256") << weights;
      if (!dump.empty()) std::ofstream(golden / "lens_dump.jsonl") << dump;
      GTEST_SKIP() << "recorded " << golden;
    }
    ASSERT_TRUE(fs::exists(golden / "metrics.jsonl")) << golden << ": no golden run recorded";
    EXPECT_EQ(metrics, read_file(golden / "metrics.jsonl"))
        << name << ": metrics differ from " << golden;
    EXPECT_EQ(weights, read_file(golden / "model.sha256"))
        << name << ": final weights differ from " << golden;
    EXPECT_EQ(dump,
              fs::exists(golden / "lens_dump.jsonl") ? read_file(golden / "lens_dump.jsonl") : "")
        << name << ": lens_dump.jsonl differs from " << golden;
  }
};

TEST_F(GoldenRuns, Sft) {
  check("sft",
        "algorithm: sft\n"
        "student: {path: $D/init}\n"
        "data: {train_file: $D/train.jsonl, eval_file: $D/eval.jsonl}\n"
        "rollout: {batch_prompts: 8}\n"
        "optim: {lr: 1.0e-2, micro_batch_size: 3}\n"
        "train: {max_steps: 3, eval_every: 2}\n"
        "eval: {max_new_tokens: 8, samples: 2, temperature: 1.0}\n");
}

TEST_F(GoldenRuns, OpdSampledToken) {
  check("opd",
        "algorithm: opd\n"
        "student: {path: $D/init}\n"
        "teachers: {math: {path: $D/runs/base/checkpoints/step_60, dtype: float32}}\n"
        "data: {train_file: $D/train.jsonl}\n"
        "rollout: {batch_prompts: 4, n: 2, max_new_tokens: 16}\n"
        "optim: {lr: 1.0e-2, micro_batch_size: 3}\n"
        "train: {max_steps: 3}\n");
}

TEST_F(GoldenRuns, GopdSampledTokenPpo) {
  check("gopd_ppo",
        "algorithm: gopd\n"
        "student: {path: $D/init}\n"
        "teachers: {math: {path: $D/runs/base/checkpoints/step_60, dtype: float32}}\n"
        "reference: {dtype: float32}\n"
        "gopd: {lambda: 1.25}\n"
        "data: {train_file: $D/train.jsonl}\n"
        "rollout: {batch_prompts: 4, n: 2, max_new_tokens: 16, temperature: 0.8}\n"
        "optim: {lr: 1.0e-2, micro_batch_size: 3, ppo_epochs: 2, mini_batches: 2}\n"
        "train: {max_steps: 3}\n");
}

TEST_F(GoldenRuns, GopdFullVocab) {
  check("gopd_full_vocab",
        "algorithm: gopd\n"
        "student: {path: $D/init}\n"
        "teachers: {math: {path: $D/runs/base/checkpoints/step_60, dtype: float32}}\n"
        "reference: {dtype: float32}\n"
        "gopd: {lambda: 1.5, objective: full_vocab}\n"
        "data: {train_file: $D/train.jsonl}\n"
        "rollout: {batch_prompts: 4, n: 2, max_new_tokens: 16}\n"
        "optim: {lr: 1.0e-2, micro_batch_size: 3}\n"
        "train: {max_steps: 3, loss_agg: seq_mean_token_mean}\n");
}

TEST_F(GoldenRuns, GopdTopK) {
  check("gopd_top_k",
        "algorithm: gopd\n"
        "student: {path: $D/init}\n"
        "teachers: {math: {path: $D/runs/base/checkpoints/step_60, dtype: float32}}\n"
        "reference: {path: $D/other, dtype: float32}\n"
        "gopd: {lambda: 1.25, objective: top_k, top_k: 8}\n"
        "data: {train_file: $D/train.jsonl}\n"
        "rollout: {batch_prompts: 4, n: 2, max_new_tokens: 16}\n"
        "optim: {lr: 1.0e-2, micro_batch_size: 5, ppo_epochs: 2}\n"
        "train: {max_steps: 3}\n");
}

TEST_F(GoldenRuns, RoutedTeachersWithMixedLambda) {
  check("routed",
        "algorithm: gopd\n"
        "student: {path: $D/init}\n"
        "teachers:\n"
        "  tuned: {path: $D/runs/base/checkpoints/step_60, dtype: float32, lambda: 1.0}\n"
        "  other: {path: $D/other, dtype: float32, lambda: 1.25}\n"
        "reference: {dtype: float32}\n"
        "data: {train_file: $D/routed.jsonl}\n"
        "rollout: {batch_prompts: 4, n: 2, max_new_tokens: 16}\n"
        "optim: {lr: 1.0e-2, micro_batch_size: 3}\n"
        "train: {max_steps: 3, loss_agg: seq_mean_token_sum}\n");
}

TEST_F(GoldenRuns, GrpoWithKlAndEpochs) {
  check("grpo",
        "algorithm: grpo\n"
        "student: {path: $D/runs/base/checkpoints/step_60}\n"
        "reference: {path: $D/runs/base/checkpoints/step_60, dtype: float32}\n"
        "data: {train_file: $D/train.jsonl, eval_file: $D/eval.jsonl}\n"
        "rollout: {batch_prompts: 4, n: 4, max_new_tokens: 24}\n"
        "reward: {type: task, format_weight: 0.1}\n"
        "grpo: {kl_beta: 0.05, clip_high: 0.28}\n"
        "optim: {lr: 1.0e-3, micro_batch_size: 5, ppo_epochs: 2}\n"
        "train: {max_steps: 3}\n"
        "eval: {max_new_tokens: 24, samples: 2, temperature: 1.0}\n");
}

TEST_F(GoldenRuns, LensCrpo) {
  check("lens",
        "algorithm: lens\n"
        "student: {path: $D/runs/base/checkpoints/step_60}\n"
        "reference: {path: $D/other, dtype: float32}\n"
        "data: {train_file: $D/train.jsonl}\n"
        "rollout: {batch_prompts: 4, n: 4, max_new_tokens: 24}\n"
        "reward: {type: task}\n"
        "lens: {score: reference, gamma: 0.1, tau: 0.5, dump_every: 1}\n"
        "optim: {lr: 1.0e-3, micro_batch_size: 5, ppo_epochs: 2}\n"
        "train: {max_steps: 3}\n");
}

TEST_F(GoldenRuns, LensCrpoLiteral) {
  check("lens_literal",
        "algorithm: lens\n"
        "student: {path: $D/runs/base/checkpoints/step_60}\n"
        "reference: {path: $D/other, dtype: float32}\n"
        "data: {train_file: $D/train.jsonl}\n"
        "rollout: {batch_prompts: 4, n: 4, max_new_tokens: 24}\n"
        "reward: {type: task}\n"
        "lens: {score: reference, gamma: 0.1, tau: 0.5, weight_scheme: crpo_literal, keep_failure: false}\n"
        "grpo: {kl_beta: 0.02}\n"
        "optim: {lr: 1.0e-3, micro_batch_size: 5}\n"
        "train: {max_steps: 3}\n");
}

}  // namespace
