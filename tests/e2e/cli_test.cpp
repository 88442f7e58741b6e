// End-to-end tests of the `gopd` executable: exit codes, exact error lines, and the files
// the commands write (or do not write, on failure).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

namespace {

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string read_all(const std::filesystem::path& path) {
  std::ifstream input(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 (std::string("gopd_cli_") +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(directory_);
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  // Runs `gopd ARGS` from the source directory (so configs/ paths resolve).
  Result gopd(const std::string& args) {
    const std::string out = (directory_ / "stdout").string();
    const std::string err = (directory_ / "stderr").string();
    const std::string command = std::string("cd '") + GOPD_SOURCE_DIR + "' && '" + GOPD_BINARY +
                                "' " + args + " > '" + out + "' 2> '" + err + "'";
    const int status = std::system(command.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = read_all(out);
    result.err = read_all(err);
    return result;
  }

  std::string path(const std::string& name) const { return (directory_ / name).string(); }

  std::string write(const std::string& name, const std::string& content) {
    std::ofstream(path(name), std::ios::binary) << content;
    return path(name);
  }

  std::filesystem::path directory_;
};

std::vector<nlohmann::json> read_jsonl(const std::string& file) {
  std::vector<nlohmann::json> lines;
  std::ifstream input(file);
  for (std::string line; std::getline(input, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// Output paths as a user types them: a trailing slash, an existing empty directory, an existing
// model directory (replaced), a file in the way and "." (exit 2, nothing written).
TEST_F(Cli, InitModelTakesEveryOutputPathAUserWouldType) {
  const std::string data = path("train.jsonl");
  ASSERT_EQ(gopd("data --task arith --n 40 --out '" + data + "'").exit_code, 0);
  const Result tokenizer = gopd("tokenizer train --input '" + data + "' --vocab-size 320 --out '" + path("tok/") + "'");
  ASSERT_EQ(tokenizer.exit_code, 0) << tokenizer.err;
  const std::string flags = "init-model --arch qwen3 --hidden 16 --layers 1 --heads 2 --kv-heads 1 --intermediate 32 "
                            "--tokenizer '" + path("tok/") + "' ";
  for (const std::string out : {"tiny/", "tiny/", "empty", "./dotted//"}) {
    if (out == "empty") std::filesystem::create_directories(path("empty"));
    const Result result = gopd(flags + "--out '" + path(out) + "'");
    EXPECT_EQ(result.exit_code, 0) << out << ": " << result.err;
    EXPECT_TRUE(std::filesystem::exists(path(out) + "/model.safetensors")) << out;
  }
  // Nothing left beside them: no .tmp. or .old. directories.
  for (const auto& entry : std::filesystem::directory_iterator(directory_)) {
    EXPECT_EQ(entry.path().filename().string().find(".old."), std::string::npos) << entry.path();
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  }
  write("a_file", "x");
  const Result file = gopd(flags + "--out '" + path("a_file") + "'");
  EXPECT_EQ(file.exit_code, 2);
  EXPECT_NE(file.err.find("exists and is not a directory"), std::string::npos) << file.err;
  const Result dot = gopd(flags + "--out .");
  EXPECT_EQ(dot.exit_code, 2);
  EXPECT_NE(dot.err.find("not . or .."), std::string::npos) << dot.err;
}

TEST_F(Cli, VersionReportsTorchCudaAndThreads) {
  const Result result = gopd("--version --threads 1");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("gopd 0.1.0\n"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("libtorch 2."), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("\ndevices cpu"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("cuda not available"), std::string::npos) << result.out;
#if GOPD_EXPECT_CUDA_KERNELS
  // Built against pip's CUDA LibTorch with nvcc present: the CUDA dispatch is compiled in.
  EXPECT_NE(result.out.find(" with CUDA 1"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("cuda kernels compiled for sm_"), std::string::npos) << result.out;
#endif
  EXPECT_NE(result.out.find("threads 1\n"), std::string::npos) << result.out;
}

TEST_F(Cli, HelpListsSubcommands) {
  const Result result = gopd("--help");
  EXPECT_EQ(result.exit_code, 0);
  for (const char* name : {"config", "data", "reward", "--log-level", "--version"}) {
    EXPECT_NE(result.out.find(name), std::string::npos) << name;
  }
}

TEST_F(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(gopd("frobnicate").exit_code, 2);
  EXPECT_EQ(gopd("").exit_code, 2);
  const Result level = gopd("config check configs/quickstart.yaml --log-level loud");
  EXPECT_EQ(level.exit_code, 2);
  EXPECT_EQ(level.err,
            "error: --log-level: expected one of trace, debug, info, warn, error, off, got "
            "\"loud\"\n");
}

TEST_F(Cli, ConfigCheckAndShow) {
  const Result ok = gopd("config check configs/quickstart.yaml --log-level warn");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "configs/quickstart.yaml: ok (algorithm gopd)\n");

  const Result shown = gopd("config show configs/quickstart.yaml --set optim.lr=0.001");
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("lr: 0.001\n"), std::string::npos) << shown.out;
  const std::string resolved = write("resolved.yaml", shown.out);
  const Result again = gopd("config show '" + resolved + "'");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, shown.out);

  const std::string broken = write("broken.yaml",
                                   "student: {path: s}\nteachers: {math: t}\n"
                                   "data: {train_file: d.jsonl}\noptim:\n  lr: fast\n");
  const Result bad = gopd("config check '" + broken + "'");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err,
            "error: " + broken + ":5:7: optim.lr: expected a positive number, got \"fast\"\n");
  EXPECT_EQ(bad.out, "");

  const Result bad_set = gopd("config check configs/quickstart.yaml --set rollout.n=zero");
  EXPECT_EQ(bad_set.exit_code, 2);
  EXPECT_EQ(bad_set.err,
            "error: --set rollout.n=zero: rollout.n: expected an integer >= 1, got \"zero\"\n");
}

TEST_F(Cli, DataIsDeterministicAndSplitsAreDisjoint) {
  for (const char* task : {"arith", "code"}) {
    SCOPED_TRACE(task);
    const std::string common = std::string("data --task ") + task + " --n 150 --difficulty 2 ";
    ASSERT_EQ(gopd(common + "--seed 1 --out '" + path("a.jsonl") + "'").exit_code, 0);
    ASSERT_EQ(gopd(common + "--seed 1 --out '" + path("b.jsonl") + "'").exit_code, 0);
    ASSERT_EQ(gopd(common + "--seed 2 --out '" + path("c.jsonl") + "'").exit_code, 0);
    ASSERT_EQ(gopd(common + "--seed 2 --split eval --out '" + path("e.jsonl") + "'").exit_code, 0);
    EXPECT_EQ(read_all(path("a.jsonl")), read_all(path("b.jsonl")));
    EXPECT_NE(read_all(path("a.jsonl")), read_all(path("c.jsonl")));
    std::set<std::string> train;
    for (const auto& record : read_jsonl(path("a.jsonl"))) train.insert(record["prompt"]);
    EXPECT_EQ(train.size(), 150u);
    const auto eval = read_jsonl(path("e.jsonl"));
    EXPECT_EQ(eval.size(), 150u);
    for (const auto& record : eval) EXPECT_EQ(train.count(record["prompt"]), 0u);
    // --exclude: a second train file that avoids the first one's problems.
    ASSERT_EQ(gopd(common + "--seed 2 --exclude '" + path("a.jsonl") + "' --out '" +
                   path("x.jsonl") + "'")
                  .exit_code,
              0);
    for (const auto& record : read_jsonl(path("x.jsonl"))) {
      EXPECT_EQ(train.count(record["prompt"]), 0u);
    }
  }
}

TEST_F(Cli, DataRejectsBadOptionsWithoutWriting) {
  const Result result =
      gopd("data --task arith --n 5 --difficulty 9 --out '" + path("never.jsonl") + "'");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(result.err, "error: --difficulty: expected an integer in [1, 5], got 9\n");
  EXPECT_FALSE(std::filesystem::exists(path("never.jsonl")));
  EXPECT_EQ(gopd("data --task poetry --n 5 --out '" + path("never.jsonl") + "'").exit_code, 2);
}

TEST_F(Cli, RewardScoresMathResponses) {
  const std::string input =
      write("responses.jsonl",
            "{\"response\": \"so it is \\\\boxed{\\\\frac{1}{2}}\", \"answer\": \"0.5\"}\n"
            "\n"
            "{\"response\": \"The answer is 100.\", \"answer\": \"10\", \"id\": 7}\n"
            "{\"response\": \"#### 1,000\", \"answer\": 1000}\n");
  const Result result =
      gopd("reward --type math --input '" + input + "' --output '" + path("scored.jsonl") + "'");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto scored = read_jsonl(path("scored.jsonl"));
  ASSERT_EQ(scored.size(), 3u);
  EXPECT_EQ(scored[0]["reward"], 1.0);
  EXPECT_EQ(scored[0]["detail"], "\\frac{1}{2}");
  EXPECT_EQ(scored[1]["reward"], 0.0);
  EXPECT_EQ(scored[1]["id"], 7);  // input fields are kept
  EXPECT_EQ(scored[2]["reward"], 1.0);
  EXPECT_NE(result.err.find("scored 3 responses with the math verifier: mean reward 0.6667"),
            std::string::npos)
      << result.err;
}

TEST_F(Cli, RewardNamesTheBadLineAndWritesNothing) {
  const std::string input = write("responses.jsonl",
                                  "{\"response\": \"\\\\boxed{1}\", \"answer\": \"1\"}\n"
                                  "{\"response\": \"\\\\boxed{2}\", \"answer\": \"2\"\n");
  const Result result =
      gopd("reward --type math --input '" + input + "' --output '" + path("scored.jsonl") + "'");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(result.err, "error: " + input +
                            ":2: malformed JSON at column 41: expected one JSON object per line\n");
  EXPECT_FALSE(std::filesystem::exists(path("scored.jsonl")));

  const std::string missing = write("missing.jsonl", "{\"response\": \"x\"}\n");
  const Result no_answer = gopd("reward --type math --input '" + missing + "'");
  EXPECT_EQ(no_answer.exit_code, 2);
  EXPECT_EQ(no_answer.err, "error: " + missing + ":1: missing field \"answer\"\n");
}

TEST_F(Cli, RewardScoresTaskResponses) {
  const std::string input =
      write("task.jsonl",
            "{\"response\": \"3 + 4 = 7. The answer is \\\\boxed{7}.\", \"answer\": \"7\", "
            "\"task\": \"arith\"}\n"
            "{\"response\": \"\\\\boxed{7.0}\", \"answer\": \"7\", \"task\": \"arith\"}\n");
  const Result result = gopd("reward --type task --input '" + input + "'");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::stringstream lines(result.out);
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_EQ(nlohmann::json::parse(first)["reward"], 1.0);
  EXPECT_EQ(nlohmann::json::parse(second)["reward"], 0.0);  // exact integers only
}

}  // namespace
