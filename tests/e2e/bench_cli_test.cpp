// `gopd bench train` end to end at a very small size: one JSON object per line on stdout, each
// with the measured value and, where there is one, the baseline measured in the same run.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

TEST(BenchCli, TrainPrintsPhaseTimesTheReferenceSavingAndObjectiveMemory) {
  const fs::path out = fs::temp_directory_path() / ("gopd_bench_cli_" + std::to_string(getpid()) + ".jsonl");
  const std::string command = std::string("'") + GOPD_BINARY +
                              "' bench train --threads 1 --hidden 32 --layers 1 --steps 1 --batch-prompts 2 --n 2 "
                              "--max-new-tokens 6 --rows 64 --vocab 1000 --repeats 1 > '" +
                              out.string() + "' 2> /dev/null";
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command;
  std::map<std::string, std::vector<nlohmann::json>> by_bench;
  std::ifstream input(out);
  for (std::string text; std::getline(input, text);) {
    const nlohmann::json line = nlohmann::json::parse(text);  // every stdout line is JSON
    by_bench[line.at("bench").get<std::string>()].push_back(line);
  }
  fs::remove(out);
  ASSERT_EQ(by_bench["train_step"].size(), 2u);
  for (const auto& line : by_bench["train_step"]) {
    for (const char* key : {"rollout_ms", "scoring_ms", "update_ms", "step_ms", "rollout_tokens_per_s", "peak_rss_mb"}) {
      ASSERT_TRUE(line.contains(key)) << key << " in " << line.dump();
      EXPECT_GT(line[key].get<double>(), 0.0) << key << " in " << line.dump();
    }
  }
  EXPECT_EQ(by_bench["train_step"][0]["reference_pass"], true);
  EXPECT_EQ(by_bench["train_step"][1]["reference_pass"], false);
  ASSERT_EQ(by_bench["reference_pass_skip"].size(), 1u);
  EXPECT_GT(by_bench["reference_pass_skip"][0]["baseline"].get<double>(), 0.0);
  ASSERT_EQ(by_bench["full_vocab_objective"].size(), 2u);
  for (const auto& line : by_bench["full_vocab_objective"]) {
    EXPECT_GT(line["value"].get<double>(), 0.0) << line.dump();
    EXPECT_GT(line["baseline"].get<double>(), 0.0) << line.dump();
  }
}

}  // namespace
