// `gopd train` end to end on a tiny model: a 2-step SFT run and 2-step G-OPD runs (sampled-token,
// full-vocab, top-k objectives) change the weights, write every metric key per step and a
// loadable final model directory; bad jobs exit 2 with a message naming the problem.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

// One directory per process: ctest runs each case in its own process, possibly in parallel,
// and every process builds its own data and models.
const fs::path kDir = fs::temp_directory_path() / ("gopd_train_cli_" + std::to_string(getpid()));

int run(const std::string& args, std::string* stderr_text = nullptr) {
  const std::string err = (kDir / "stderr.txt").string();
  const std::string command = std::string("cd '") + GOPD_SOURCE_DIR + "' && '" + GOPD_BINARY +
                              "' " + args + " > /dev/null 2> '" + err + "'";
  const int status = std::system(command.c_str());
  if (stderr_text != nullptr) {
    std::ifstream input(err);
    std::stringstream text;
    text << input.rdbuf();
    *stderr_text = text.str();
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream input(path);
  for (std::string line; std::getline(input, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::string read_file(const fs::path& path) {
  std::ifstream input(path, std::ios::binary);
  std::stringstream text;
  text << input.rdbuf();
  return text.str();
}

class TrainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(kDir);
    fs::create_directories(kDir);
    const std::string d = kDir.string();
    ASSERT_EQ(run("data --task arith --n 64 --difficulty 2 --split train --out '" + d + "/train.jsonl'"), 0);
    ASSERT_EQ(run("data --task arith --n 4 --difficulty 2 --split eval --out '" + d + "/eval.jsonl'"), 0);
    ASSERT_EQ(run("tokenizer train --input '" + d + "/train.jsonl' --vocab-size 400 --chat-format chatml --out '" + d + "/tok'"), 0);
    for (const std::string& name : {std::string("student"), std::string("teacher")}) {
      ASSERT_EQ(run("init-model --arch qwen3 --hidden 32 --layers 2 --heads 4 --kv-heads 2 --intermediate 64 --tokenizer '" +
                    d + "/tok' --out '" + d + "/" + name + "' --seed " + (name == "student" ? "1" : "2")),
                0);
    }
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
  const fs::path final_model = kDir / "runs/sft/checkpoints/final";
  ASSERT_TRUE(fs::exists(final_model / "model.safetensors"));
  ASSERT_TRUE(fs::exists(final_model / "config.json"));
  ASSERT_TRUE(fs::exists(final_model / "tokenizer.model"));
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
    EXPECT_NE(read_file(run_dir / "checkpoints/final/model.safetensors"),
              read_file(kDir / "student/model.safetensors"))
        << objective;
    const auto lines = read_jsonl(run_dir / "metrics.jsonl");
    ASSERT_EQ(lines.size(), 2u) << objective;
    std::vector<std::string> common = {"reward/accuracy", "rollout/response_length_mean", "rollout/entropy",
                                       "optim/lr", "optim/grad_norm", "perf/rollout_s", "perf/scoring_s",
                                       "perf/update_s", "perf/step_s"};
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
  EXPECT_EQ(run("train '" + (kDir / "gopd.yaml").string() + "' --set run.name=bad3 --set algorithm=grpo", &err), 2);
  EXPECT_NE(err.find("not available"), std::string::npos) << err;
  for (const char* name : {"bad1", "bad2", "bad3"}) {
    EXPECT_FALSE(fs::exists(kDir / "runs" / name)) << name << ": a failed job left its run directory";
  }
}

}  // namespace
