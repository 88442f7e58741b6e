// A full disk while a checkpoint is saved (simulated by tests/support/enospc_preload.cpp: writes
// to files under checkpoints/ fail with ENOSPC after a byte budget): the save fails with a
// message naming the checkpoint, the cause and the way on (exit 1, no abort), the previous
// checkpoint is intact and nothing half-written is left, and `--resume auto` without the full
// disk finishes the run with the weights of an uninterrupted run. A half line left in
// metrics.jsonl by a killed run is dropped on resume.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli_test_util.h"

namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::temp_directory_path() / ("gopd_disk_full_" + std::to_string(getpid()));

// `gopd ARGS` with `environment` ("NAME=value …") set for it; stderr into `stderr_text`.
int run_with(const std::string& environment, const std::string& args, std::string* stderr_text) {
  const std::string err = (kDir / "stderr.txt").string();
  const std::string command = "cd '" + kDir.string() + "' && env " + environment + " '" +
                              GOPD_BINARY + "' --threads 1 " + args + " > /dev/null 2> '" + err + "'";
  const int status = std::system(command.c_str());
  *stderr_text = gopd::test::read_file(err);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

uintmax_t tree_bytes(const fs::path& path) {
  uintmax_t total = 0;
  for (const auto& entry : fs::recursive_directory_iterator(path)) {
    if (entry.is_regular_file()) total += entry.file_size();
  }
  return total;
}

std::vector<std::string> entries(const fs::path& path) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(path)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class DiskFull : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(gopd::test::fresh_arith_data(kDir, "train.jsonl", "--split train"), 0);
    ASSERT_EQ(gopd::test::tokenizer_and_models(kDir, "train.jsonl", {"student"}), 0);
    const std::string d = kDir.string();
    std::ofstream(kDir / "job.yaml") << "algorithm: sft\n"
                                        "run: {name: whole, output_dir: " << d << "/runs, threads: 1}\n"
                                        "student: {path: " << d << "/student}\n"
                                        "data: {train_file: " << d << "/train.jsonl}\n"
                                        "rollout: {batch_prompts: 4}\n"
                                        "optim: {lr: 1.0e-2, micro_batch_size: 4}\n"
                                        "train: {max_steps: 4, save_every: 1, keep_last: 10}\n";
    std::string err;
    ASSERT_EQ(run_with("", "train job.yaml", &err), 0) << err;
  }
  static void TearDownTestSuite() { fs::remove_all(kDir); }
};

TEST_F(DiskFull, SaveFailsCleanlyAndResumeFinishesTheRun) {
  const fs::path whole = kDir / "runs/whole/checkpoints";
  const uintmax_t checkpoint = tree_bytes(whole / "step_1");
  ASSERT_GT(checkpoint, 1000u);
  // The disk fills at points spread over the second save (model, optimizer, RNG, state), and
  // before the first one. (The budget counts write() bytes; the tokenizer files are copied by
  // the kernel, so the fractions stay below the whole checkpoint.)
  int case_index = 0;
  for (const double fraction : {-1.0, 0.02, 0.2, 0.4, 0.6, 0.75}) {
    const std::string name = "full" + std::to_string(case_index++);
    SCOPED_TRACE(name + " at " + std::to_string(fraction));
    const uintmax_t budget = fraction < 0 ? 0 : checkpoint + uintmax_t(fraction * double(checkpoint));
    std::string err;
    const int code = run_with("LD_PRELOAD='" + std::string(GOPD_ENOSPC_PRELOAD) +
                                  "' GOPD_ENOSPC_PATH=/runs/" + name + "/checkpoints/ GOPD_ENOSPC_AFTER=" +
                                  std::to_string(budget),
                              "train job.yaml --set run.name=" + name, &err);
    EXPECT_EQ(code, 1) << err;
    const std::string failed = fraction < 0 ? "step_1" : "step_2";
    EXPECT_NE(err.find("cannot save checkpoint " + failed), std::string::npos) << err;
    EXPECT_TRUE(err.find("No space left on device") != std::string::npos ||
                err.find("disk full") != std::string::npos)
        << err;
    EXPECT_NE(err.find("--resume auto"), std::string::npos) << err;
    EXPECT_EQ(err.find("terminate called"), std::string::npos) << err;
    EXPECT_EQ(err.find("internal failure"), std::string::npos) << err;
    const fs::path checkpoints = kDir / "runs" / name / "checkpoints";
    // Only complete checkpoints: nothing partial, nothing temporary.
    const std::vector<std::string> left = entries(checkpoints);
    EXPECT_EQ(left, fraction < 0 ? std::vector<std::string>{} : std::vector<std::string>{"step_1"});
    if (fraction >= 0) {
      EXPECT_NE(err.find("(step_1) is intact"), std::string::npos) << err;
      EXPECT_EQ(gopd::test::read_file(checkpoints / "step_1/model.safetensors"),
                gopd::test::read_file(whole / "step_1/model.safetensors"));
    }
    // A killed run's half line at the end of metrics.jsonl.
    std::ofstream(kDir / "runs" / name / "metrics.jsonl", std::ios::app) << "{\"step\": 2, \"loss/sf";
    ASSERT_EQ(run_with("", "train job.yaml --set run.name=" + name + " --resume auto", &err), 0) << err;
    EXPECT_EQ(gopd::test::read_file(checkpoints / "step_4/model.safetensors"),
              gopd::test::read_file(whole / "step_4/model.safetensors"))
        << "the resumed run ends with the uninterrupted run's weights";
    const auto lines = gopd::test::read_jsonl(kDir / "runs" / name / "metrics.jsonl");
    ASSERT_EQ(lines.size(), 4u);
    for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["step"], int64_t(i) + 1);
  }
}

}  // namespace
